"""Inputs of weight inference from the atlas: kinship distances, per-model weight facts, sampled coordinates.

Distances are the kinship `l2` (independent of the pair's reference); norms are taken on the same
weighted coordinates (each tensor's sampled values count as the whole tensor, as in `kinship_run`); the
stored precision comes from the safetensors headers; coordinates are the stored samples, thinned to at
most `max_coords` per model, identical positions across a shape group.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import duckdb
import numpy as np

from analysis.infer_copy import Coords
from analysis.infer_graph import WeightNode
from analysis.infer_meta import split_name_suffix
from atlas.db import query_dicts

MANTISSA_BITS = {"F64": 52, "F32": 23, "F16": 10, "BF16": 7}
MAX_COORDS = 16384  # coordinates kept per model for copy tests: shares to about ±0.4%


@dataclass(frozen=True)
class WeightInputs:
    nodes: list[WeightNode]
    distances: dict[tuple[str, str], float]  # (a, b) with a < b
    coords: dict[str, Coords]


def load_distances(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], float]:
    """Kinship `l2` per unordered pair (the smallest over schemes)."""
    dist: dict[tuple[str, str], float] = {}
    for a, b, l2 in con.execute(
        "SELECT a, b, min(l2) FROM kinship WHERE l2 IS NOT NULL GROUP BY a, b"
    ).fetchall():
        dist[(a, b) if a < b else (b, a)] = float(l2)
    return dist


def stored_precision(con: duckdb.DuckDBPyConnection, ids: list[str]) -> tuple[dict[str, int], set[str]]:
    """Mantissa bits of each model's commonest matrix dtype, and the models whose tensors are LoRA factors."""
    rows = con.execute(
        "SELECT model_id, dtype, count(*) AS n, bool_or(name LIKE '%lora\\_A%' ESCAPE '\\') FROM tensors "
        "WHERE model_id IN (SELECT unnest(?)) AND len(shape) >= 2 GROUP BY model_id, dtype",
        [ids],
    ).fetchall()
    counts: dict[str, Counter] = {}
    adapters = set()
    for model, dtype, n, lora in rows:
        counts.setdefault(model, Counter())[dtype] += n
        if lora:
            adapters.add(model)
    bits = {
        m: MANTISSA_BITS[c.most_common(1)[0][0]]
        for m, c in counts.items()
        if c.most_common(1)[0][0] in MANTISSA_BITS
    }
    return bits, adapters


def sampled_coordinates(
    con: duckdb.DuckDBPyConnection, ids: list[str], *, max_coords: int = MAX_COORDS
) -> tuple[dict[str, Coords], dict[str, float]]:
    """Each sampled model's coordinates (thinned) and weighted norm, per shape group, from the stored samples."""
    from analysis.kinship_run import build_groups, load_vectors, tensor_weight

    scheme = con.execute(
        "SELECT scheme FROM kinship GROUP BY scheme ORDER BY count(*) DESC LIMIT 1"
    ).fetchone()
    if scheme is None:
        return {}, {}
    vectors = load_vectors(con, scheme[0], ids, [])
    coords: dict[str, Coords] = {}
    norms: dict[str, float] = {}
    for gi, (models, keys) in enumerate(build_groups(vectors)):
        for m in models:
            parts = [vectors[m][k] for k in keys]
            norms[m] = float(np.sqrt(sum(tensor_weight(k, v) ** 2 * np.sum(v.astype(np.float64) ** 2)
                                         for k, v in zip(keys, parts, strict=True))))  # fmt: skip
            flat = np.concatenate([v.ravel() for v in parts])  # (n_coords,)
            step = max(1, -(-flat.size // max_coords))
            coords[m] = Coords(f"group{gi}", np.ascontiguousarray(flat[::step], dtype=np.float32))
    return coords, norms


def load_weight_inputs(con: duckdb.DuckDBPyConnection, *, coordinates: bool = True) -> WeightInputs:
    """Nodes (time, kurtosis, norm, precision, leaf and adapter flags), distances and coordinates."""
    dist = load_distances(con)
    ids = sorted({x for pair in dist for x in pair})
    rows = query_dicts(
        con,
        "SELECT i.id, m.created_at, (SELECT avg(kurtosis) FROM weight_stats s WHERE s.model_id = i.id) AS kurt "
        "FROM (SELECT unnest(?) AS id) i LEFT JOIN models m ON m.id = i.id",
        [ids],
    )
    bits, adapters = stored_precision(con, ids)
    coords, norms = sampled_coordinates(con, ids) if coordinates else ({}, {})
    coords = {
        m: Coords(c.group, c.values, bits.get(m, 23) if m not in adapters else 23) for m, c in coords.items()
    }
    nodes = [
        WeightNode(
            r["id"],
            r["created_at"],
            r["kurt"],
            leaf=split_name_suffix(r["id"].split("/")[-1]) is not None,
            norm=norms.get(r["id"]),
            bits=None if r["id"] in adapters else bits.get(r["id"]),
            adapter=r["id"] in adapters,
        )
        for r in rows
    ]
    return WeightInputs(nodes, dist, coords)
