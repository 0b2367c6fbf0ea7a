"""Synthetic families of sampled weight vectors with known lineage, for testing and timing inference at scale.

Each family: a base, fans of fine-tunes, checkpoint chains, low-precision copies (leaves) and linear
merges of two experts; upload times follow the lineage; kurtosis grows with fine-tuning.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from analysis.infer_weights import WeightNode


@dataclass(frozen=True)
class SynthFamily:
    nodes: list[WeightNode]
    parents: dict[str, list[str]]  # truth: child -> parents
    relations: dict[str, str]
    distances: dict[tuple[str, str], float]


def build_family(prefix: str, n_models: int, *, dim: int = 256, seed: int = 0) -> SynthFamily:
    """A family of about `n_models` models; all-pairs L2 distances of their vectors (a < b)."""
    rng = np.random.default_rng(seed)
    t0 = datetime(2024, 1, 1) + timedelta(days=int(rng.integers(0, 300)))
    vecs: dict[str, np.ndarray] = {}
    times: dict[str, datetime] = {}
    kurt: dict[str, float] = {}
    parents: dict[str, list[str]] = {}
    relations: dict[str, str] = {}
    leaves: set[str] = set()
    base = f"{prefix}/base"
    vecs[base], times[base], kurt[base] = rng.standard_normal(dim), t0, 3.0

    def add(name: str, vec: np.ndarray, ps: list[str], rel: str, leaf: bool = False) -> str:
        mid = f"{prefix}/{name}"
        vecs[mid] = vec
        times[mid] = max(times[p] for p in ps) + timedelta(hours=int(rng.integers(1, 240)))
        kurt[mid] = max(kurt[p] for p in ps) + float(rng.uniform(0.05, 0.3))
        parents[mid], relations[mid] = ps, rel
        if leaf:
            leaves.add(mid)
        return mid

    experts = [base]
    i = 0
    while len(vecs) < n_models:
        i += 1
        kind = rng.choice(["finetune", "chain", "quantized", "merge"], p=[0.45, 0.25, 0.15, 0.15])
        donors = [m for m in experts if m not in leaves]
        p = donors[int(rng.integers(len(donors)))]
        if kind == "finetune":
            experts.append(add(f"ft-{i}", vecs[p] + 0.3 * rng.standard_normal(dim), [p], "finetune"))
        elif kind == "chain":
            prev = p
            for j in range(int(rng.integers(2, 5))):
                prev = add(
                    f"ckpt-{i}-{j}", vecs[prev] + 0.15 * rng.standard_normal(dim), [prev], "checkpoint"
                )
                experts.append(prev)
        elif kind == "quantized":
            add(f"ft-{i}-q4", vecs[p] + 0.01 * rng.standard_normal(dim), [p], "quantized", leaf=True)
        else:
            fts = [m for m in experts if relations.get(m) == "finetune"]
            if len(fts) < 2:
                continue
            a, b = (fts[j] for j in rng.choice(len(fts), 2, replace=False))
            w = float(rng.uniform(0.3, 0.7))
            experts.append(add(f"merge-{i}", w * vecs[a] + (1 - w) * vecs[b], [a, b], "merge"))
    ids = sorted(vecs)
    mat = np.stack([vecs[m] for m in ids])  # (n, dim)
    sq = (mat**2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * mat @ mat.T, 0.0)  # (n, n)
    dist = np.sqrt(d2)
    distances = {(ids[x], ids[y]): float(dist[x, y]) for x in range(len(ids)) for y in range(x + 1, len(ids))}
    nodes = [WeightNode(m, times[m], kurt[m], m in leaves) for m in ids]
    return SynthFamily(nodes, parents, relations, distances)
