"""In-project merge operations on state dicts, following mergekit 0.1.5's semantics (see
`analysis.merge_methods` for the registry that names them). Pure torch functions, no I/O.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import torch

from analysis.zoo_merge import merge_linear, merge_ties
from analysis.zoo_model import StateDict


def _deltas(base: torch.Tensor, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.stack([t.float() - base for t in tensors])  # (n_models, *shape)


def merge_task_arithmetic(
    base_sd: StateDict, sds: Sequence[StateDict], weights: Sequence[float], *, lam: float = 1.0
) -> StateDict:
    """θ₀ + λ Σ wᵢ δᵢ (Ilharco et al. 2023), as mergekit's task_arithmetic (normalize: false)."""
    w = torch.tensor(list(weights), dtype=torch.float32)
    out: StateDict = {}
    for name, base in base_sd.items():
        base = base.float()
        d = _deltas(base, [sd[name] for sd in sds])  # (n_models, *shape)
        out[name] = base + lam * torch.tensordot(w, d, dims=1)
    return out


def _dare_mask(shape: torch.Size, density: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < density).float()


def merge_dare_ties(
    base_sd: StateDict,
    sds: Sequence[StateDict],
    weights: Sequence[float],
    *,
    density: float = 0.5,
    seed: int = 0,
) -> StateDict:
    """DARE (Yu et al. 2024) then TIES sign election, summed like mergekit's dare_ties (normalize: false).

    The random drop is seeded by (seed, tensor name, model index), so a merge is reproducible.
    """
    w = torch.tensor(list(weights), dtype=torch.float32)
    out: StateDict = {}
    for name, base in base_sd.items():
        base = base.float()
        d = _deltas(base, [sd[name] for sd in sds])  # (n_models, *shape)
        kept = []
        for i, di in enumerate(d):
            mask = _dare_mask(di.shape, density, zlib.crc32(f"{seed}/{name}/{i}".encode()))
            masked = di * mask
            before, after = di.abs().sum(), masked.abs().sum()
            kept.append(masked * (before / after) if before > 1e-7 and after > 1e-7 else masked)
        wd = torch.stack(kept) * w.view(-1, *([1] * base.dim()))  # (n_models, *shape)
        majority = torch.where(wd.sum(0) >= 0, 1.0, -1.0)
        agree = torch.sign(wd) == majority
        out[name] = base + (wd * agree).sum(0)
    return out


def _slerp(t: float, a: torch.Tensor, b: torch.Tensor, dot_threshold: float = 0.9995) -> torch.Tensor:
    """Spherical interpolation of tensor a towards b, each taken as one vector; near-parallel ones linearly."""
    x, y = a.flatten().float(), b.flatten().float()  # (n,)
    nx, ny = x.norm().clamp_min(1e-8), y.norm().clamp_min(1e-8)
    dot = float(((x / nx) * (y / ny)).sum().clamp(-1, 1))
    if abs(dot) > dot_threshold:
        return ((1 - t) * x + t * y).reshape(a.shape)
    theta = math.acos(dot)
    ca, cb = math.sin((1 - t) * theta) / math.sin(theta), math.sin(t * theta) / math.sin(theta)
    return (ca * x + cb * y).reshape(a.shape)


def merge_slerp(
    base_sd: StateDict | None, sds: Sequence[StateDict], weights: Sequence[float], *, t: float = 0.5
) -> StateDict:
    """SLERP from sds[0] (t = 0) to sds[1] (t = 1), tensor by tensor as mergekit does; weights unused."""
    del base_sd, weights
    if len(sds) != 2:
        raise ValueError(f"slerp merges exactly two models, got {len(sds)}")
    a, b = sds
    return {name: _slerp(t, a[name], b[name]) for name in a}


__all__ = ["merge_dare_ties", "merge_linear", "merge_slerp", "merge_task_arithmetic", "merge_ties"]
