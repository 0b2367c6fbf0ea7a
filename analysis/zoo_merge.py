"""Merge methods on state dicts (pure functions): linear and TIES, as mergekit defines them."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from analysis.zoo_model import StateDict


def merge_linear(base_sd: StateDict | None, sds: Sequence[StateDict], weights: Sequence[float]) -> StateDict:
    """Weighted average of the models' weights (normalised weights); `base_sd` is unused but accepted
    so every merge method has one signature."""
    del base_sd
    total = float(sum(weights))
    return {
        name: sum((w / total) * sd[name].float() for sd, w in zip(sds, weights, strict=True))  # type: ignore[misc]
        for name in sds[0]
    }


def merge_ties(
    base_sd: StateDict, sds: Sequence[StateDict], weights: Sequence[float], *, density: float = 0.5
) -> StateDict:
    """TIES merging (Yadav et al. 2023): trim each task vector to its top-`density` magnitudes,
    elect a sign per coordinate by weighted mass, and average the agreeing entries onto the base."""
    out: StateDict = {}
    for name, base in base_sd.items():
        base = base.float()
        deltas = torch.stack([sd[name].float() - base for sd in sds])  # (n_models, *shape)
        flat = deltas.reshape(len(sds), -1)  # (n_models, n_coords)
        k = max(1, round(density * flat.shape[1]))
        thresh = flat.abs().kthvalue(flat.shape[1] - k + 1, dim=1, keepdim=True).values  # (n_models, 1)
        trimmed = torch.where(flat.abs() >= thresh, flat, torch.zeros_like(flat))
        w = torch.tensor(list(weights), dtype=torch.float32)[:, None]  # (n_models, 1)
        sign = torch.sign((w * trimmed).sum(0))  # (n_coords,)
        agree = (torch.sign(trimmed) == sign) & (trimmed != 0)
        num = (w * trimmed * agree).sum(0)
        den = (w * agree).sum(0).clamp_min(1e-12)
        out[name] = base + (num / den).reshape(base.shape)
    return out
