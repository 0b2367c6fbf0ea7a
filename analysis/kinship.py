"""Kinship of models from their sampled weights: all pairs at once as blocked matrix products.

For models sharing coordinates and a reference θ₀, deltas δ = θ − θ₀ (θ₀ = None: raw weights). Every
metric is a cheap function of a few pairwise sufficient statistics (Gram matrix of deltas in float64,
counts of top-k magnitude masks), so one pass of matrix products over blocks of models gives them all,
on CUDA or CPU, with memory bounded by the block size. Metrics are a registry: `KINSHIP_METRICS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class KinshipConfig:
    block: int = 256  # models per block: memory is ~ 2 blocks × coordinates × 4 bytes plus one float64 slab
    slab: int = 1 << 15  # coordinates per float64 slab of the Gram product
    topk_fraction: float = 0.2  # share of largest |δ| per model: the top-k overlap set and the TIES trim mask


@dataclass(frozen=True)
class PairStats:
    """Sufficient statistics for a block of pairs (rows i, columns j)."""

    n: int  # coordinates
    gram: torch.Tensor  # (bi, bj) float64: δi · δj
    sq_i: torch.Tensor  # (bi, 1) float64: |δi|²
    sq_j: torch.Tensor  # (1, bj)
    sum_i: torch.Tensor  # (bi, 1) float64: Σ δi
    sum_j: torch.Tensor  # (1, bj)
    both: torch.Tensor | None = None  # (bi, bj): coordinates in both top-k masks
    signed: torch.Tensor | None = None  # (bi, bj): agreeing minus conflicting signs inside both masks
    k_i: torch.Tensor | None = None  # (bi, 1): mask sizes
    k_j: torch.Tensor | None = None  # (1, bj)


KINSHIP_METRICS: dict[str, Callable[[PairStats], torch.Tensor]] = {}
MASK_METRICS = frozenset({"sign_conflict", "topk_overlap"})  # need the top-k masks (two more products)


def kinship_metric(
    name: str,
) -> Callable[[Callable[[PairStats], torch.Tensor]], Callable[[PairStats], torch.Tensor]]:
    """Register a metric: a function of `PairStats` returning a (bi, bj) float64 tensor."""

    def register(fn: Callable[[PairStats], torch.Tensor]) -> Callable[[PairStats], torch.Tensor]:
        KINSHIP_METRICS[name] = fn
        return fn

    return register


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.full_like(num, float("nan")))


@kinship_metric("pearson")
def pearson(s: PairStats) -> torch.Tensor:
    """Pearson correlation of the deltas (the 'model kinship' of Hu et al. 2024)."""
    cov = s.gram - s.sum_i * s.sum_j / s.n
    var_i = (s.sq_i - s.sum_i**2 / s.n).clamp_min(0)
    var_j = (s.sq_j - s.sum_j**2 / s.n).clamp_min(0)
    return _safe_div(cov, (var_i * var_j).sqrt()).clamp(-1, 1)


@kinship_metric("cosine")
def cosine(s: PairStats) -> torch.Tensor:
    """Cosine similarity of the deltas."""
    return _safe_div(s.gram, (s.sq_i * s.sq_j).sqrt()).clamp(-1, 1)


@kinship_metric("l2")
def l2(s: PairStats) -> torch.Tensor:
    """Euclidean distance of the weights (equal to that of the deltas: they share θ₀)."""
    return (s.sq_i + s.sq_j - 2 * s.gram).clamp_min(0).sqrt()


@kinship_metric("sign_conflict")
def sign_conflict(s: PairStats) -> torch.Tensor:
    """TIES sign-conflict rate: among coordinates in both models' top-k |δ|, the share of opposite signs."""
    assert s.both is not None and s.signed is not None
    return _safe_div((s.both - s.signed) / 2, s.both)


@kinship_metric("topk_overlap")
def topk_overlap(s: PairStats) -> torch.Tensor:
    """Jaccard overlap of the two models' top-k |δ| coordinate sets."""
    assert s.both is not None and s.k_i is not None and s.k_j is not None
    return _safe_div(s.both, s.k_i + s.k_j - s.both)


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks CUDA when present; 'cuda' without CUDA is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but CUDA is not available")
    if device not in ("cuda", "cpu"):
        raise ValueError(f"unknown device {device!r}; choose auto, cuda or cpu")
    return torch.device(device)


def topk_threshold(deltas: torch.Tensor, fraction: float) -> torch.Tensor:
    """Per row, the smallest |δ| among its top `fraction` coordinates: (b, 1)."""
    k = max(1, round(fraction * deltas.shape[1]))
    return torch.topk(deltas.abs(), k, dim=1, sorted=False).values.min(dim=1, keepdim=True).values


def topk_masks(deltas: torch.Tensor, threshold: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-k |δ| (non-zero) coordinates of each row, as +1/-1/0 signs and a 0/1 mask (float32)."""
    mag = deltas.abs()  # (b, n)
    mask = (mag >= threshold) & (mag > 0)  # (b, n)
    return (torch.sign(deltas) * mask).to(torch.float32), mask.to(torch.float32)


def _gram64(a: torch.Tensor, b: torch.Tensor, slab: int) -> torch.Tensor:
    """a @ b.T with float64 products and accumulation, in coordinate slabs to bound memory."""
    out = torch.zeros(a.shape[0], b.shape[0], dtype=torch.float64, device=a.device)  # (bi, bj)
    for s in range(0, a.shape[1], slab):
        out += a[:, s : s + slab].double() @ b[:, s : s + slab].double().T
    return out


def pair_stats(
    di: torch.Tensor,
    dj: torch.Tensor,
    config: KinshipConfig,
    masks_i: tuple[torch.Tensor, torch.Tensor] | None = None,
    masks_j: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> PairStats:
    """Statistics of every pair between two blocks of deltas (bi, n) and (bj, n)."""
    gram = _gram64(di, dj, config.slab)
    sq_i = (di.double() ** 2).sum(1, keepdim=True)
    sq_j = (dj.double() ** 2).sum(1, keepdim=True).T
    sum_i = di.double().sum(1, keepdim=True)
    sum_j = dj.double().sum(1, keepdim=True).T
    both = signed = k_i = k_j = None
    if masks_i is not None and masks_j is not None:
        (sign_i, mask_i), (sign_j, mask_j) = masks_i, masks_j
        both = (mask_i @ mask_j.T).double()  # exact: counts < 2^24 per slab-free float32 sum
        signed = (sign_i @ sign_j.T).double()
        k_i, k_j = mask_i.double().sum(1, keepdim=True), mask_j.double().sum(1, keepdim=True).T
    return PairStats(di.shape[1], gram, sq_i, sq_j, sum_i, sum_j, both, signed, k_i, k_j)


def all_pairs(
    weights: torch.Tensor,
    reference: torch.Tensor | None = None,
    *,
    config: KinshipConfig | None = None,
    device: str = "auto",
    metrics: tuple[str, ...] | None = None,
) -> dict[str, torch.Tensor]:
    """Every registered metric for every pair of rows of `weights` (n_models, n_coords), on CPU float64 results.

    Blocks of `config.block` models are moved to the device in turn; only the upper triangle of blocks
    is computed and mirrored.
    """
    config = config or KinshipConfig()
    dev = resolve_device(device)
    names = metrics or tuple(KINSHIP_METRICS)
    n = weights.shape[0]
    out = {m: torch.full((n, n), float("nan"), dtype=torch.float64) for m in names}  # (n, n) each
    ref = None if reference is None else reference.to(dev, torch.float32)
    starts = list(range(0, n, config.block))

    masks = any(m in MASK_METRICS for m in names)
    thresholds: dict[int, torch.Tensor] = {}  # per block, computed once: top-k is the costly part

    def block(s: int) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        d = weights[s : s + config.block].to(dev, torch.float32)  # (b, n_coords)
        if ref is not None:
            d = d - ref
        if not masks:
            return d, None
        if s not in thresholds:
            thresholds[s] = topk_threshold(d, config.topk_fraction)
        return d, topk_masks(d, thresholds[s])

    for i in starts:
        di, mi = block(i)
        for j in starts:
            if j < i:
                continue
            dj, mj = (di, mi) if j == i else block(j)
            stats = pair_stats(di, dj, config, mi, mj)
            for m in names:
                v = KINSHIP_METRICS[m](stats).cpu()  # (bi, bj)
                out[m][i : i + di.shape[0], j : j + dj.shape[0]] = v
                out[m][j : j + dj.shape[0], i : i + di.shape[0]] = v.T
    if "l2" in out:
        out["l2"].fill_diagonal_(0.0)  # exact: a model is at distance 0 from itself, whatever the rounding
    return out


def excess_kurtosis(values: torch.Tensor) -> float:
    """Excess kurtosis of a weight vector (float64): fine-tuning changes it monotonically, orienting edges."""
    x = values.double().flatten()
    x = x - x.mean()
    var = (x**2).mean()
    return float((x**4).mean() / var**2 - 3) if var > 0 else float("nan")
