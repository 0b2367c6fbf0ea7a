"""Lineage inference on the atlas: read models, cards and kinship; write inferred edges; evaluate; check.

Entry points for `hubatlas infer` and `hubatlas check`. Metadata evidence is in `infer_meta`, weight
evidence in `infer_weights`; this module only moves rows between them and DuckDB.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass

import duckdb

from analysis.infer_inputs import WeightInputs, load_weight_inputs
from analysis.infer_meta import ModelFacts, infer_metadata_edges
from analysis.infer_weights import (
    MOTHER,
    WeightNode,
    WeightsConfig,
    break_cycles,
    nearest_earlier,
    weight_edges,
)
from atlas.db import transaction, upsert
from atlas.records import DECLARED_ORIGINS, EdgeRecord
from atlas.store import refresh_lineage

INFERRED_ORIGINS = ("card_text", "name", "weights", "time")


def load_facts(con: duckdb.DuckDBPyConnection) -> list[ModelFacts]:
    rows = con.execute(
        """
        SELECT m.id, m.created_at, c.text, m.downloads,
               (SELECT list(f.detail ORDER BY f.detail) FROM flags f
                WHERE f.model_id = m.id AND f.flag = 'local_base_path') AS local_paths
        FROM models m LEFT JOIN cards c ON c.model_id = m.id
        """
    ).fetchall()
    return [
        ModelFacts(id=r[0], created_at=r[1], text=r[2], downloads=r[3], local_base_paths=tuple(r[4] or ()))
        for r in rows
    ]


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
    """Nodes and distances (kinship `l2`, a < b) for every model that has kinship rows; no coordinates."""
    inputs = load_weight_inputs(con, coordinates=False)
    return inputs.nodes, inputs.distances


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
        inputs = load_weight_inputs(con)
        got_meta = {e.child for e in meta}
        wedges = [
            e
            for e in weight_edges(
                inputs.nodes, inputs.distances, known_parents=declared, coords=inputs.coords
            )
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


def hidden_children(children: list[str], hide: float, seed: int) -> set[str]:
    """The children whose declarations are hidden: each with probability `hide` (seeded)."""
    rng = random.Random(seed)
    return {c for c in sorted(children) if rng.random() < hide}


def weight_predictions(inputs: WeightInputs, known: dict[str, list[str]]) -> dict[str, dict[str, set[str]]]:
    """Parents predicted from weights by Hub Atlas (with and without sampled coordinates), by MoTHer
    alone and by "nearest earlier model"."""
    runs = (
        ("atlas", WeightsConfig(), inputs.coords),
        ("atlas_distances_only", WeightsConfig(), None),
        ("mother", MOTHER, None),
    )
    out: dict[str, dict[str, set[str]]] = {}
    for name, cfg, coords in runs:
        got: dict[str, set[str]] = defaultdict(set)
        for e in weight_edges(inputs.nodes, inputs.distances, known_parents=known, coords=coords, cfg=cfg):
            got[e.child].add(e.parent)
        out[name] = dict(got)
    out["nearest_earlier"] = {c: {p} for c, (p, _) in nearest_earlier(inputs.nodes, inputs.distances).items()}
    return out


def score_predictions(
    hidden: set[str],
    truth: dict[str, list[str]],
    relation_of: dict[tuple[str, str], str],
    got: dict[str, set[str]],
) -> dict:
    """Accuracy on hidden children, per relation of the hidden edge.

    - `accuracy`: share of hidden (child, parent) edges whose parent is among the child's predicted parents
      (a merge with three declared parents counts three edges);
    - `children_exact`: share of hidden children whose predicted parent set equals the declared one;
    - `precision`: share of predicted edges of hidden children that are declared.
    """
    total, ok, kids, exact = Counter(), Counter(), Counter(), Counter()
    proposed = correct = 0
    for c in hidden:
        ps, mine = set(truth[c]), got.get(c, set())
        rels = {relation_of.get((c, p), "unknown") for p in ps}
        rel = "merge" if "merge" in rels else min(rels)
        kids[rel] += 1
        exact[rel] += mine == ps
        proposed += len(mine)
        correct += len(mine & ps)
        for p in ps:
            r = relation_of.get((c, p), "unknown")
            total[r] += 1
            ok[r] += p in mine
    n = sum(total.values())
    return {
        "accuracy": round(sum(ok.values()) / n, 4) if n else None,
        "hidden_edges": n,
        "children_exact": round(sum(exact.values()) / len(hidden), 4) if hidden else None,
        "precision": round(correct / proposed, 4) if proposed else None,
        "per_relation": {
            r: {"hidden": total[r], "recovered": ok[r], "accuracy": round(ok[r] / total[r], 4),
                "children": kids[r], "children_exact": exact[r]}
            for r in sorted(total)
        },
    }  # fmt: skip


def evaluate(
    con: duckdb.DuckDBPyConnection, *, hide: float = 0.9, seed: int = 0, weights: bool = True
) -> dict:
    """Hide a fraction of declared children, infer, and report accuracy per relation with baselines.

    With `weights`, only children with kinship rows are hidden and the methods are Hub Atlas's weight
    inference, MoTHer alone and "nearest earlier model"; otherwise metadata inference. Nothing is written.
    """
    declared = declared_parents(con)
    relation_of = {
        (c, p): r
        for c, p, r in con.execute("SELECT child, parent, relation FROM lineage WHERE declared").fetchall()
    }
    children = sorted(declared)
    inputs = None
    if weights:
        inputs = load_weight_inputs(con)
        present = {n.id for n in inputs.nodes}
        children = [c for c in children if c in present]
    hidden = hidden_children(children, hide, seed)
    known = {c: ps for c, ps in declared.items() if c not in hidden}
    if inputs is not None:
        methods = weight_predictions(inputs, known)
    else:
        got: dict[str, set[str]] = defaultdict(set)
        for e in infer_metadata_edges(load_facts(con), skip_children=set(known)):
            got[e.child].add(e.parent)
        methods = {"metadata": dict(got)}
    report: dict = {"hidden_children": len(hidden), "hide": hide, "seed": seed, "methods": {}}
    for name, got_m in methods.items():
        report["methods"][name] = score_predictions(hidden, declared, relation_of, got_m)
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
