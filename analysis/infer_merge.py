"""Linear merges from weight distances alone: is a model a convex combination of earlier ones?

A linear merge θ_m = Σ wᵢ θᵢ (wᵢ ≥ 0, Σ wᵢ = 1) lies in the convex hull of its parents. Distances give
the Gram matrix of the candidates seen from the model, H_ij = ⟨θᵢ − θ_m, θⱼ − θ_m⟩ (law of cosines), so
the least-squares weights on the simplex need no coordinates; a merge's residual is ~0 (float rounding),
a fine-tune's is close to its distance to the nearest candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

Matrix = Callable[[Sequence[str]], np.ndarray]  # ids -> (n, n) distances, NaN where unknown


@dataclass(frozen=True)
class MergeFit:
    """Parents of a linear merge with their weights, and the fit's residual relative to the nearest candidate."""

    parents: tuple[str, ...]
    weights: tuple[float, ...]
    relative_residual: float  # ‖θ_m − Σ wᵢ θᵢ‖ / min_i ‖θ_m − θᵢ‖


def gram_from_distances(d: np.ndarray) -> np.ndarray | None:
    """H_ij = ⟨θᵢ − θ_v, θⱼ − θ_v⟩ from the distance matrix of (v, candidates...); None when one is missing.

    `d` is (n + 1, n + 1) with v first; NaN marks a missing distance.
    """
    if np.isnan(d).any():
        return None
    d2 = d**2  # (n + 1, n + 1)
    return (d2[1:, :1] + d2[:1, 1:] - d2[1:, 1:]) / 2  # (n, n)


def simplex_fit(h: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights w ≥ 0, Σw = 1 minimising wᵀHw, and the residual √(wᵀHw).

    H = LLᵀ (Cholesky; H is a Gram matrix, so a tiny ridge is enough when it is singular) and the sum
    constraint is a heavily weighted extra row of a non-negative least-squares problem.
    """
    from scipy.optimize import nnls

    n = h.shape[0]
    scale = max(float(np.max(np.diag(h))), 1e-300)
    a = _cholesky_factor(h, scale).T  # (n, n): ‖a w‖² ≈ wᵀHw
    mu = 1e3 * np.sqrt(scale)
    a_aug = np.vstack([a, mu * np.ones((1, n))])  # (n + 1, n)
    b_aug = np.zeros(n + 1)
    b_aug[-1] = mu
    w, _ = nnls(a_aug, b_aug, maxiter=50 * n)
    w = w / w.sum() if w.sum() > 0 else np.full(n, 1.0 / n)
    return w, float(np.sqrt(max(w @ h @ w, 0.0)))


def _cholesky_factor(h: np.ndarray, scale: float) -> np.ndarray:
    """Lower-triangular L with LLᵀ = H + ridge·I, the ridge growing from 1e-13·scale until H factors."""
    ridge = 1e-13 * scale
    while True:
        try:
            return np.linalg.cholesky(h + ridge * np.eye(h.shape[0]))
        except np.linalg.LinAlgError:
            ridge *= 100


def best_pair(h: np.ndarray) -> tuple[int, int, float, float]:
    """The pair (i, j) and share t of j whose segment passes closest to the model, and that residual."""
    hii = np.diag(h)[:, None]  # (n, 1)
    hjj = np.diag(h)[None, :]  # (1, n)
    den = hii + hjj - 2 * h  # (n, n): ‖θᵢ − θⱼ‖²
    t = np.clip(np.divide(hii - h, den, out=np.zeros_like(h), where=den > 0), 0.0, 1.0)  # (n, n)
    res2 = (1 - t) ** 2 * hii + 2 * t * (1 - t) * h + t**2 * hjj  # (n, n)
    np.fill_diagonal(res2, np.inf)
    i, j = np.unravel_index(int(np.argmin(res2)), res2.shape)
    return int(i), int(j), float(t[i, j]), float(np.sqrt(max(res2[i, j], 0.0)))


def fit_linear_merge(
    v: str,
    cands: Sequence[str],
    matrix: Matrix,
    *,
    max_residual: float,
    min_weight: float,
    triple_pool: int = 20,
) -> MergeFit | None:
    """The smallest set of candidates whose convex hull holds v (relative residual under `max_residual`).

    Tried in order: every pair, every triple of the `triple_pool` nearest, then the support of the fit
    on all candidates, pruned while it still fits. Merges of merges make several sets fit exactly; the
    smallest, then the closest fit, wins.
    """
    h = gram_from_distances(matrix([v, *cands])) if len(cands) >= 2 else None
    if h is None:
        return None
    nearest = float(np.sqrt(max(np.min(np.diag(h)), 0.0)))
    if nearest <= 0:
        return None  # v duplicates a candidate: a copy, not a merge
    limit = max_residual * nearest
    w, res = simplex_fit(h)
    if res >= limit:
        return None
    i, j, t, res2 = best_pair(h)
    if res2 < limit and min(t, 1 - t) >= min_weight:
        return MergeFit((cands[i], cands[j]), (1 - t, t), res2 / nearest)
    best: tuple[float, list[int], np.ndarray] | None = None
    for trio in combinations(range(min(triple_pool, len(cands))), 3):
        idx = list(trio)
        wt, rt = simplex_fit(h[np.ix_(idx, idx)])
        if rt < limit and min(wt) >= min_weight and (best is None or rt < best[0]):
            best = (rt, idx, wt)
    if best is None:
        best = _pruned_support(h, w, limit, min_weight)
    if best is None:
        return None
    rt, idx, wt = best
    return MergeFit(tuple(cands[k] for k in idx), tuple(float(x) for x in wt), rt / nearest)


def _pruned_support(
    h: np.ndarray, w: np.ndarray, limit: float, min_weight: float
) -> tuple[float, list[int], np.ndarray] | None:
    """The full fit's support, dropping members while the rest still fits."""
    keep = [int(k) for k in np.argsort(-w) if w[k] >= min_weight]
    while len(keep) > 2:
        trials = [(simplex_fit(h[np.ix_(s, s)]), s) for s in ([x for x in keep if x != k] for k in keep)]
        (_, r), s = min(trials, key=lambda x: x[0][1])
        if r >= limit:
            break
        keep = s
    if len(keep) < 2:
        return None
    ws, r = simplex_fit(h[np.ix_(keep, keep)])
    return (r, keep, ws) if r < limit and min(ws) >= min_weight else None
