"""Copied coordinates: which earlier models a model takes sampled values from exactly.

Fine-tuning moves (almost) every weight, so a model that equals another at a large share of the sampled
coordinates copied them. A LoRA adapter equals its base on every tensor it does not target; a TIES or
DARE merge equals its base where every task vector was trimmed, and each parent where only that
parent's trimmed, sign-elected value survived. Sources are picked as a small set cover of the copied
coordinates; coordinates a candidate only shares through its own sources are credited to those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Coords:
    """A model's sampled values on coordinates shared by its shape group (`group`)."""

    group: str
    values: np.ndarray  # (n_coords,) float32
    bits: int = 23  # mantissa bits of the stored dtype: equality is tested to one unit in the last place


@dataclass(frozen=True)
class CopySources:
    """The models a child copies coordinates from, each with the share of coordinates credited to it."""

    sources: tuple[tuple[str, float], ...]


def copy_masks(child: Coords, cands: Sequence[Coords]) -> np.ndarray:
    """(n_cands, n_coords) bool: where each candidate equals the child, to about one ulp of the coarser dtype."""
    x = child.values[None, :]  # (1, n_coords)
    xs = np.stack([c.values for c in cands])  # (n_cands, n_coords)
    tol = np.array([2.0 ** -(min(child.bits, c.bits) + 1) for c in cands])[:, None]  # (n_cands, 1)
    return np.abs(xs - x) <= tol * (np.abs(xs) + np.abs(x))


def cover_sources(masks: np.ndarray, own: Sequence[Sequence[int]], min_gain: float) -> list[int]:
    """A small set of candidates that covers the copied coordinates (greedy set cover).

    A chosen source whose coordinates the other chosen ones and its own sources (`own[j]`) already cover
    only shares them through its sources (a sibling merge, a later checkpoint): it is excluded and the
    cover is redone.
    """
    n = masks.shape[1]
    excluded: set[int] = set()
    while True:
        chosen = _greedy_cover(masks, excluded, min_gain)
        unique = []
        for j in chosen:
            rest = [o for o in chosen if o != j] + [s for s in own[j] if s not in excluded]
            cover = np.logical_or.reduce(masks[rest]) if rest else np.zeros(n, dtype=bool)
            unique.append(((masks[j] & ~cover).sum() / n, j))
        share, j = min(unique, default=(1.0, -1))
        if share >= min_gain:
            return chosen
        excluded.add(j)


def _greedy_cover(masks: np.ndarray, excluded: set[int], min_gain: float) -> list[int]:
    left = np.ones(masks.shape[1], dtype=bool)
    chosen: list[int] = []
    allowed = np.array([j not in excluded for j in range(masks.shape[0])])
    while True:
        gains = np.where(allowed, (masks & left).sum(1), -1) / masks.shape[1]  # (n_cands,)
        j = int(np.argmax(gains))
        if gains[j] < min_gain:
            return chosen
        chosen.append(j)
        allowed[j] = False
        left &= ~masks[j]


def copy_sources(
    child: str,
    cands: Sequence[str],
    coords: Mapping[str, Coords],
    known_sources: Mapping[str, Sequence[str]],
    *,
    min_gain: float,
    min_share: float,
) -> CopySources | None:
    """The child's copy sources among `cands` (same shape group), or None when it copies too little.

    `known_sources` are the candidates' own parents: what a candidate shares with the child only through
    them is theirs. The sources together must hold `min_share` of the coordinates (a fine-tune shares
    only the rows it never updated).
    """
    me = coords.get(child)
    pool = [c for c in cands if me is not None and c in coords and coords[c].group == me.group]
    if me is None or not pool:
        return None
    masks = copy_masks(me, [coords[c] for c in pool])  # (n_pool, n_coords)
    index = {c: i for i, c in enumerate(pool)}
    own = [[index[s] for s in known_sources.get(c, ()) if s in index] for c in pool]
    chosen = cover_sources(masks, own, min_gain)
    if not chosen or np.logical_or.reduce(masks[chosen]).mean() < min_share:
        return None
    return CopySources(tuple((pool[j], float(masks[j].mean())) for j in chosen))


def sources_of_unchanged(
    child: str, cands: Sequence[str], coords: Mapping[str, Coords], *, slack: float
) -> set[str] | None:
    """The candidates that hold (nearly) all coordinates the child shares exactly with any candidate.

    Training leaves some coordinates untouched (rows of tokens a fine-tune never sees, frozen layers):
    there the child keeps its parent's values, so its parent shares at least every coordinate any other
    candidate shares with it. Candidates short of the best count by more than `slack` (share of it, plus
    two coordinates of chance) are not the parent. None when the child shares nothing (no evidence).
    """
    me = coords.get(child)
    pool = [c for c in cands if me is not None and c in coords and coords[c].group == me.group]
    if me is None or not pool:
        return None
    counts = copy_masks(me, [coords[c] for c in pool]).sum(1)  # (n_pool,)
    best = int(counts.max())
    if best == 0:
        return None
    return {c for c, n in zip(pool, counts, strict=True) if n >= (1 - slack) * best - 2}
