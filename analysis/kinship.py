"""Kinship of models from their sampled weights: all pairs at once as blocked matrix products.

For models sharing coordinates and a reference θ₀, deltas δ = θ − θ₀ (θ₀ = None: raw weights). Every
metric is a cheap function of a few pairwise sufficient statistics, so one pass of matrix products over
blocks of models gives them all, on CUDA or CPU, with memory bounded by the block size:

- the raw Gram matrix G = X Xᵀ (float64 products and sums) holds the delta statistics of *every*
  reference at once: δi·δj = G_ij − G_ir − G_jr + G_rr, so a group of models whose pairs have many
  different common ancestors needs one Gram product, not one per ancestor;
- the top-k magnitude masks depend on θ₀, so they are built per reference, for that reference's models.

Metrics are a registry: `KINSHIP_METRICS`. The same code runs on CPU and CUDA; only `device` differs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class KinshipConfig:
    block: int = 256  # models per block: memory is ~ 2 blocks × coordinates × 8 bytes plus the n × n results
    slab: int = 1 << 15  # coordinates per slab of a product at most: keeps float32 mask counts exact
    slab_bytes: int = 1 << 28  # converted copies of all rows' slab at most (float64 for the Gram matrix)
    topk_fraction: float = 0.2  # share of largest |δ| per model: the top-k overlap set and the TIES trim mask


@dataclass(frozen=True)
class PairStats:
    """Sufficient statistics of pairs: (p,) vectors, or (bi, bj) / (bi, 1) / (1, bj) that broadcast."""

    n: float  # coordinates
    gram: torch.Tensor  # float64: δi · δj
    sq_i: torch.Tensor  # float64: |δi|²
    sq_j: torch.Tensor
    sum_i: torch.Tensor  # float64: Σ δi
    sum_j: torch.Tensor
    both: torch.Tensor | None = None  # coordinates in both top-k masks
    signed: torch.Tensor | None = None  # agreeing minus conflicting signs inside both masks
    k_i: torch.Tensor | None = None  # mask sizes
    k_j: torch.Tensor | None = None


KINSHIP_METRICS: dict[str, Callable[[PairStats], torch.Tensor]] = {}
MASK_METRICS = frozenset({"sign_conflict", "topk_overlap"})  # need the top-k masks (two more products)
# Relative size (in |δ|² / (|θ|² + |θ₀|²)) under which a delta from the raw Gram matrix is rounding noise:
# float64 sums over 2^18 coordinates err by ~1e-13 of that scale; a half-precision copy's delta is ~1e-8.
ZERO_DELTA = 1e-10


def kinship_metric(
    name: str,
) -> Callable[[Callable[[PairStats], torch.Tensor]], Callable[[PairStats], torch.Tensor]]:
    """Register a metric: a function of `PairStats` returning a float64 tensor of the stats' shape."""

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


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' picks CUDA when present; 'cuda' without CUDA is an error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but CUDA is not available")
    if device not in ("cuda", "cpu"):
        raise ValueError(f"unknown device {device!r}; choose auto, cuda or cpu")
    return torch.device(device)


def topk_threshold(magnitudes: torch.Tensor, fraction: float) -> torch.Tensor:
    """Per row of |δ| (b, d), the smallest among its top `fraction` values: (b, 1). On the CPU by numpy's
    introselect (a tenth of torch.topk's time for a large k), the same value either way."""
    k = max(1, round(fraction * magnitudes.shape[1]))
    if magnitudes.device.type == "cpu":
        col = magnitudes.shape[1] - k
        return torch.from_numpy(np.partition(magnitudes.numpy(), col, axis=1)[:, col : col + 1].copy())
    return torch.topk(magnitudes, k, dim=1, sorted=False).values.min(dim=1, keepdim=True).values


def topk_signs(deltas: torch.Tensor, fraction: float) -> torch.Tensor:
    """Signs (+1/-1, int8) of each row's top-k |δ| (non-zero) coordinates, 0 elsewhere: (b, n)."""
    mag = deltas.abs()  # (b, n)
    keep = mag >= topk_threshold(mag, fraction)  # (b, n); a zero δ has sign 0 whether kept or not
    del mag
    return torch.sign(deltas).to(torch.int8) * keep  # (b, n)


def _blocks(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def _slabs(n_rows: int, n_coords: int, config: KinshipConfig, bytes_per_value: int) -> list[tuple[int, int]]:
    """Coordinate slabs for products over all rows at once: at most `config.slab` coordinates and
    `config.slab_bytes` of converted values per slab."""
    width = max(
        min(1024, config.slab), min(config.slab, config.slab_bytes // max(1, n_rows * bytes_per_value))
    )
    return _blocks(n_coords, width)


def _triangle(acc: torch.Tensor, a: torch.Tensor, spans: list[tuple[int, int]]) -> None:
    """acc += a @ a.T (n, n), on the upper triangle of row blocks only (the lower one is mirrored later)."""
    for bi, (i0, i1) in enumerate(spans):
        for j0, j1 in spans[bi:]:
            acc[i0:i1, j0:j1] += a[i0:i1] @ a[j0:j1].T


def _mirror(acc: torch.Tensor, spans: list[tuple[int, int]]) -> torch.Tensor:
    for bi, (i0, i1) in enumerate(spans):
        for j0, j1 in spans[bi + 1 :]:
            acc[j0:j1, i0:i1] = acc[i0:i1, j0:j1].T
    return acc


def gram_matrix(x: torch.Tensor, *, config: KinshipConfig, device: torch.device) -> torch.Tensor:
    """The raw Gram matrix x @ x.T (n, n) with float64 products and sums, on the CPU.

    Slab by slab of coordinates, every row's slab is converted once (n × slab float64 at a time) and
    multiplied in blocks of rows, upper triangle only."""
    n = x.shape[0]
    g = torch.zeros(n, n, dtype=torch.float64, device=device)  # (n, n)
    spans = _blocks(n, config.block)
    for s0, s1 in _slabs(n, x.shape[1], config, 12):
        _triangle(g, x[:, s0:s1].to(device).double(), spans)  # (n, slab) float64
    return _mirror(g, spans).cpu()


def row_dots(x: torch.Tensor, v: torch.Tensor | None, *, config: KinshipConfig) -> torch.Tensor:
    """x @ v in float64 (v None: the row sums), by blocks of rows and slabs of coordinates: (n,)."""
    out = torch.zeros(x.shape[0], dtype=torch.float64)  # (n,)
    for i0, i1 in _blocks(x.shape[0], config.block):
        for s in range(0, x.shape[1], config.slab):
            part = x[i0:i1, s : s + config.slab].double()  # (b, slab)
            out[i0:i1] += part.sum(1) if v is None else part @ v[s : s + config.slab].double()
    return out


def mask_counts(
    x: torch.Tensor,
    rows: torch.Tensor | None,
    reference: torch.Tensor | None,
    *,
    config: KinshipConfig,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-k |δ| mask statistics of every pair of `rows` of x (all when None; m of them), with deltas
    from `reference` (d,): coordinates in both masks (m, m), agreeing minus conflicting signs there
    (m, m), mask sizes (m,). The signs of all m rows are kept: as float32 when they fit in
    `config.slab_bytes` (the products then need no conversion), else as int8 (a quarter of x)."""
    m = x.shape[0] if rows is None else len(rows)
    ref = None if reference is None else reference.to(device, torch.float32)
    spans = _blocks(m, config.block)
    store = torch.float32 if m * x.shape[1] * 4 <= config.slab_bytes else torch.int8
    sign = torch.empty(m, x.shape[1], dtype=store, device=device)  # (m, d)
    # top-k rows a few at a time: its float32 copies (~20 bytes a value) stay within config.slab_bytes,
    # and on the CPU within ~1 MB a copy, where staying in cache makes it several times faster
    budget = config.slab_bytes // 20 if device.type == "cuda" else 1 << 18
    chunk = max(1, min(config.block, budget // max(1, x.shape[1])))
    for i0, i1 in _blocks(m, chunk):
        d = (x[i0:i1] if rows is None else x[rows[i0:i1]]).to(device, torch.float32)  # (b, d)
        if ref is not None:
            d = d - ref
        sign[i0:i1] = topk_signs(d, config.topk_fraction)
        del d
    # float32 products per slab are exact for 0/±1 values: a slab's counts stay below 2^24
    both = torch.zeros(m, m, dtype=torch.float64, device=device)  # (m, m)
    signed = torch.zeros_like(both)  # (m, m)
    sizes = torch.zeros(m, dtype=torch.float64, device=device)  # (m,)
    b = torch.zeros(m, m, dtype=torch.float32, device=device)  # (m, m): one slab's counts
    for s0, s1 in _slabs(m, sign.shape[1], config, 8):
        sf = sign[:, s0:s1].float()  # (m, slab)
        mask = sf.abs()  # (m, slab)
        sizes += mask.sum(1).double()
        b.zero_()
        _triangle(b, mask, spans)
        both += b.double()
        b.zero_()
        _triangle(b, sf, spans)
        signed += b.double()
    return _mirror(both, spans).cpu(), _mirror(signed, spans).cpu(), sizes.cpu()


def delta_stats(
    g: torch.Tensor,
    sums: torch.Tensor,
    n: float,
    i: torch.Tensor,
    j: torch.Tensor,
    cross: torch.Tensor | None = None,
    ref_sq: float = 0.0,
    ref_sum: float = 0.0,
) -> PairStats:
    """Statistics of the deltas δ = θ − θ₀ of pairs (i[p], j[p]) from the raw Gram matrix g (n, n) and
    row sums (n,); `cross` (n,) = θ · θ₀, `ref_sq` = |θ₀|², `ref_sum` = Σ θ₀ (cross None: raw weights)."""
    gram = g[i, j]  # (p,)
    sq_i, sq_j = g[i, i], g[j, j]  # (p,)
    sum_i, sum_j = sums[i], sums[j]  # (p,)
    if cross is not None:
        gram = gram - cross[i] - cross[j] + ref_sq
        # a delta within rounding of zero (|δ|² ≤ ZERO_DELTA·(|θ|² + |θ₀|²)) is zero: a copy of θ₀ has no
        # direction, so its Pearson and cosine stay undefined instead of fitting rounding noise
        zero_i = (sq_i - 2 * cross[i] + ref_sq) <= ZERO_DELTA * (sq_i + ref_sq)
        zero_j = (sq_j - 2 * cross[j] + ref_sq) <= ZERO_DELTA * (sq_j + ref_sq)
        sq_i, sq_j = (sq_i - 2 * cross[i] + ref_sq).clamp_min(0), (sq_j - 2 * cross[j] + ref_sq).clamp_min(0)
        sum_i, sum_j = sum_i - ref_sum, sum_j - ref_sum
        zero = zero_i | zero_j
        gram = torch.where(zero, 0.0, gram)
        sq_i, sum_i = torch.where(zero_i, 0.0, sq_i), torch.where(zero_i, 0.0, sum_i)
        sq_j, sum_j = torch.where(zero_j, 0.0, sq_j), torch.where(zero_j, 0.0, sum_j)
    return PairStats(n, gram, sq_i, sq_j, sum_i, sum_j)


def _metrics(
    x: torch.Tensor,
    g: torch.Tensor,
    sums: torch.Tensor,
    i: torch.Tensor,
    j: torch.Tensor,
    reference: int | torch.Tensor | None,
    *,
    config: KinshipConfig,
    device: torch.device,
    names: tuple[str, ...],
) -> dict[str, torch.Tensor]:
    """The metrics of pairs (i, j) with θ₀ a row of x (int), a vector (d,), or None (raw weights)."""
    cross, ref_sq, ref_sum, ref_vec = None, 0.0, 0.0, None
    if isinstance(reference, int):
        cross, ref_sq, ref_sum = g[:, reference], float(g[reference, reference]), float(sums[reference])
        ref_vec = x[reference]  # (d,)
    elif reference is not None:
        ref_vec, v = reference, reference.double()  # (d,)
        cross = row_dots(x, v, config=config)  # (n,)
        ref_sq, ref_sum = float(v @ v), float(v.sum())
    stats = delta_stats(g, sums, float(x.shape[1]), i, j, cross, ref_sq, ref_sum)
    if any(m in MASK_METRICS for m in names):
        members, local = torch.unique(torch.cat([i, j]), return_inverse=True)  # (m,), (2p,)
        li, lj = local[: len(i)], local[len(i) :]
        rows = None if len(members) == x.shape[0] else members  # all rows: no copy of x
        both, signed, sizes = mask_counts(x, rows, ref_vec, config=config, device=device)
        stats = PairStats(stats.n, stats.gram, stats.sq_i, stats.sq_j, stats.sum_i, stats.sum_j,
                          both[li, lj], signed[li, lj], sizes[li], sizes[lj])  # fmt: skip
    return {m: KINSHIP_METRICS[m](stats) for m in names}


def pair_metrics(
    x: torch.Tensor,
    pairs: Mapping[int | None, tuple[torch.Tensor, torch.Tensor]],
    *,
    config: KinshipConfig | None = None,
    device: str | torch.device = "auto",
    metrics: tuple[str, ...] | None = None,
    gram: torch.Tensor | None = None,
    on_reference: Callable[[], None] | None = None,
) -> dict[int | None, dict[str, torch.Tensor]]:
    """Metrics for chosen pairs of rows of x (n_models, n_coords), each set of pairs with its own θ₀.

    `pairs` maps θ₀'s row in x (None: raw weights) to index tensors (i, j) of shape (p,); the result maps
    it to each metric's (p,) float64 values on the CPU. One raw Gram product (or `gram`, when the caller
    has it) serves every reference; the mask metrics add, per reference, the masks of the models in its
    pairs. `on_reference` is called after each reference (for progress).
    """
    config = config or KinshipConfig()
    dev = resolve_device(device)
    names = metrics or tuple(KINSHIP_METRICS)
    g = gram_matrix(x, config=config, device=dev) if gram is None else gram  # (n, n)
    sums = row_dots(x, None, config=config)  # (n,)
    out = {}
    for ref, (i, j) in pairs.items():
        out[ref] = _metrics(x, g, sums, i, j, ref, config=config, device=dev, names=names)
        if on_reference is not None:
            on_reference()
    return out


def all_pairs(
    weights: torch.Tensor,
    reference: torch.Tensor | None = None,
    *,
    config: KinshipConfig | None = None,
    device: str | torch.device = "auto",
    metrics: tuple[str, ...] | None = None,
) -> dict[str, torch.Tensor]:
    """Every registered metric for every pair of rows of `weights` (n_models, n_coords), as (n, n) float64
    matrices on the CPU; deltas from `reference` (n_coords,), or raw weights when None."""
    config = config or KinshipConfig()
    dev = resolve_device(device)
    names = metrics or tuple(KINSHIP_METRICS)
    n = weights.shape[0]
    i, j = torch.triu_indices(n, n)  # (p,) each, diagonal included
    g = gram_matrix(weights, config=config, device=dev)  # (n, n)
    sums = row_dots(weights, None, config=config)  # (n,)
    res = _metrics(weights, g, sums, i, j, reference, config=config, device=dev, names=names)
    out = {}
    for m, v in res.items():
        full = torch.empty(n, n, dtype=torch.float64)  # (n, n)
        full[i, j], full[j, i] = v, v
        out[m] = full
    if "l2" in out:
        out["l2"].fill_diagonal_(0.0)  # exact: a model is at distance 0 from itself, whatever the rounding
    return out


def excess_kurtosis(values: torch.Tensor) -> float:
    """Excess kurtosis of a weight vector (float64): fine-tuning changes it monotonically, orienting edges."""
    return float(excess_kurtosis_rows(values.reshape(1, -1))[0])


def excess_kurtosis_rows(x: torch.Tensor, block_values: int = 1 << 17) -> torch.Tensor:
    """Excess kurtosis of each row of x (n, d), in float64: (n,); NaN for a constant row. Rows go a few
    at a time (`block_values` values, 1 MB in float64): temporaries that stay in cache are ~5× faster."""
    out = []
    for i0, i1 in _blocks(x.shape[0], max(1, block_values // max(1, x.shape[1]))):
        c = x[i0:i1].double()  # (b, d)
        c = c - c.mean(1, keepdim=True)
        c2 = c * c
        var, m4 = c2.mean(1), (c2 * c2).mean(1)  # (b,)
        out.append(
            torch.where(var > 0, m4 / var.clamp_min(1e-300) ** 2 - 3, torch.full_like(var, float("nan")))
        )
    return torch.cat(out)
