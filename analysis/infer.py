"""Lineage inference on the atlas: read models, cards and kinship; write inferred edges; evaluate; check.

Entry points for `hubatlas infer` and `hubatlas check`. Metadata evidence is in `infer_meta`, weight
evidence in `infer_weights`; this module only moves rows between them and DuckDB.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass

import duckdb

from analysis.infer_meta import ModelFacts, infer_metadata_edges, split_name_suffix
from analysis.infer_weights import WeightNode, WeightsConfig, break_cycles, nearest_earlier, weight_edges
from atlas.db import query_dicts, transaction, upsert
from atlas.records import DECLARED_ORIGINS, EdgeRecord
from atlas.store import refresh_lineage

INFERRED_ORIGINS = ("card_text", "name", "weights", "time")


def load_facts(con: duckdb.DuckDBPyConnection) -> list[ModelFacts]:
    rows = con.execute(
        "SELECT m.id, m.created_at, c.text, m.downloads FROM models m LEFT JOIN cards c ON c.model_id = m.id"
    ).fetchall()
    return [ModelFacts(id=r[0], created_at=r[1], text=r[2], downloads=r[3]) for r in rows]


def declared_parents(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    rows = con.execute(
        "SELECT child, parent FROM edges WHERE origin IN (SELECT unnest(?)) AND parent <> child AND flag IS NULL",
        [sorted(DECLARED_ORIGINS)],
    ).fetchall()
    out: dict[str, list[str]] = defaultdict(list)
    for c, p in rows:
        if p not in out[c]:
            out[c].append(p)
    return dict(out)


def load_weights(con: duckdb.DuckDBPyConnection) -> tuple[list[WeightNode], dict[tuple[str, str], float]]:
    """Nodes with kurtosis and distances (kinship `l2`, a < b) for every model that has kinship rows."""
    dist: dict[tuple[str, str], float] = {}
    for a, b, l2 in con.execute(
        "SELECT a, b, min(l2) FROM kinship WHERE l2 IS NOT NULL GROUP BY a, b"
    ).fetchall():
        dist[(a, b) if a < b else (b, a)] = float(l2)
    ids = sorted({x for pair in dist for x in pair})
    rows = query_dicts(
        con,
        "SELECT i.id, m.created_at, (SELECT avg(kurtosis) FROM weight_stats s WHERE s.model_id = i.id) AS kurt "
        "FROM (SELECT unnest(?) AS id) i LEFT JOIN models m ON m.id = i.id",
        [ids],
    )
    nodes = [
        WeightNode(r["id"], r["created_at"], r["kurt"], split_name_suffix(r["id"].split("/")[-1]) is not None)
        for r in rows
    ]
    return nodes, dist


def _replace_inferred(
    con: duckdb.DuckDBPyConnection, origins: tuple[str, ...], edges: list[EdgeRecord]
) -> None:
    with transaction(con):
        con.execute("DELETE FROM edges WHERE origin IN (SELECT unnest(?))", [list(origins)])
        upsert(con, "edges", edges)
        refresh_lineage(con)


@dataclass(frozen=True)
class InferSummary:
    metadata_edges: int
    weight_edges: int
    dropped_for_cycles: int


def run_infer(con: duckdb.DuckDBPyConnection, *, weights: bool = False) -> InferSummary:
    """Infer parents of models that declare none; replace earlier inferred edges; never store a cycle."""
    declared = declared_parents(con)
    facts = load_facts(con)
    meta = infer_metadata_edges(facts, skip_children=set(declared))
    wedges: list[EdgeRecord] = []
    if weights:
        nodes, dist = load_weights(con)
        got_meta = {e.child for e in meta}
        wedges = [
            e
            for e in weight_edges(nodes, dist, known_parents=declared)
            if e.child not in declared and e.child not in got_meta
        ]
    fixed = [(c, p) for c, ps in declared.items() for p in ps]
    kept = break_cycles(meta + wedges, fixed)
    origins = ("card_text", "name", "weights") if weights else ("card_text", "name")
    _replace_inferred(con, origins, kept)
    return InferSummary(
        sum(e.origin != "weights" for e in kept),
        sum(e.origin == "weights" for e in kept),
        len(meta) + len(wedges) - len(kept),
    )


def evaluate(
    con: duckdb.DuckDBPyConnection, *, hide: float = 0.9, seed: int = 0, weights: bool = True
) -> dict:
    """Hide a fraction of declared children, infer, and report accuracy per relation with baselines.

    Accuracy = share of hidden (child, parent) edges whose parent is among the child's inferred parents.
    Nothing is written.
    """
    declared = declared_parents(con)
    relation = dict(
        con.execute("SELECT child || '\x00' || parent, relation FROM lineage WHERE declared").fetchall()
    )
    rng = random.Random(seed)
    children = sorted(declared)
    if weights:
        nodes, dist = load_weights(con)
        present = {n.id for n in nodes}
        children = [c for c in children if c in present]
    hidden = {c for c in children if rng.random() < hide}
    known = {c: ps for c, ps in declared.items() if c not in hidden}
    methods: dict[str, dict[str, set[str]]] = {}
    if weights:
        for name, cfg in (("atlas", WeightsConfig()), ("mother", WeightsConfig(use_time=False, k=10**6))):
            got: dict[str, set[str]] = defaultdict(set)
            for e in weight_edges(nodes, dist, known_parents=known, cfg=cfg):
                got[e.child].add(e.parent)
            methods[name] = got
        methods["nearest_earlier"] = {c: {p} for c, (p, _) in nearest_earlier(nodes, dist).items()}
    else:
        got = defaultdict(set)
        for e in infer_metadata_edges(load_facts(con), skip_children=set(known)):
            got[e.child].add(e.parent)
        methods["metadata"] = got
    report: dict = {"hidden_children": len(hidden), "hide": hide, "seed": seed, "methods": {}}
    for name, got in methods.items():
        total, ok = Counter(), Counter()
        for c in hidden:
            for p in declared[c]:
                rel = relation.get(f"{c}\x00{p}", "unknown")
                total[rel] += 1
                ok[rel] += p in got.get(c, set())
        n = sum(total.values())
        report["methods"][name] = {
            "accuracy": round(sum(ok.values()) / n, 4) if n else None,
            "hidden_edges": n,
            "per_relation": {
                r: {"hidden": total[r], "recovered": ok[r], "accuracy": round(ok[r] / total[r], 4)}
                for r in sorted(total)
            },
        }
    return report


def check(con: duckdb.DuckDBPyConnection, *, ratio: float = 3.0) -> list[dict]:
    """Declared parents that weights contradict: the declared parent is `ratio`× farther than another model."""
    declared = declared_parents(con)
    _, dist = load_weights(con)
    near: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for (a, b), d in dist.items():
        near[a].append((d, b))
        near[b].append((d, a))
    out = []
    for child, parents in sorted(declared.items()):
        if child not in near:
            continue
        for p in parents:
            dp = dist.get((child, p) if child < p else (p, child))
            if dp is None:
                continue
            others = [(d, m) for d, m in near[child] if m != p and m not in parents]
            if not others:
                continue
            d_best, best = min(others)
            if dp > ratio * max(d_best, 1e-12):
                out.append({"child": child, "declared_parent": p, "declared_l2": round(dp, 6),
                            "closest": best, "closest_l2": round(d_best, 6),
                            "ratio": round(dp / max(d_best, 1e-12), 2)})  # fmt: skip
    return sorted(out, key=lambda r: -r["ratio"])
