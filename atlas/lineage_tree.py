"""Ancestors and descendants of one model as an indented tree, from the lineage view (no graph library)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import duckdb

from atlas.records import DECLARED_ORIGINS


@dataclass(frozen=True)
class TreeEdge:
    child: str
    parent: str
    relation: str
    origin: str
    confidence: float


@dataclass
class LineageTree:
    """One model's ancestor edges (child → parent) and descendant edges (parent → child)."""

    model: str
    known: bool  # stored in `models` (else a placeholder met only in edges)
    up: dict[str, list[TreeEdge]] = field(default_factory=lambda: defaultdict(list))
    down: dict[str, list[TreeEdge]] = field(default_factory=lambda: defaultdict(list))


class UnknownModelError(LookupError):
    """The id is neither a stored model nor an endpoint of any lineage edge."""


def build_lineage_tree(
    con: duckdb.DuckDBPyConnection, model: str, *, depth: int | None = None
) -> LineageTree:
    """Collect the edges among `model`'s ancestors and descendants, up to `depth` levels each way."""
    known = con.execute("SELECT count(*) FROM models WHERE id = ?", [model]).fetchall()[0][0] > 0
    in_graph = con.execute(
        "SELECT count(*) FROM lineage WHERE child = ? OR parent = ?", [model, model]
    ).fetchall()[0][0]
    if not known and not in_graph:
        raise UnknownModelError(f"{model}: not in the atlas (no model and no lineage edge has this id)")
    tree = LineageTree(model, known)
    limit = depth if depth is not None else 1_000_000
    for direction, macro, bucket in (("up", "ancestors", tree.up), ("down", "descendants", tree.down)):
        members = [model] + [
            r[0]
            for r in con.execute(f"SELECT id FROM {macro}(?) WHERE depth <= ?", [model, limit]).fetchall()
        ]
        key, other = ("child", "parent") if direction == "up" else ("parent", "child")
        rows = con.execute(
            f"""SELECT child, parent, relation, origin, confidence FROM lineage
                WHERE {key} IN (SELECT unnest(?)) AND {other} IN (SELECT unnest(?)) AND child <> parent
                ORDER BY {key}, {other}""",
            [members, members],
        ).fetchall()
        for child, parent, relation, origin, confidence in rows:
            edge = TreeEdge(
                child, parent, relation, origin, float(confidence if confidence is not None else 1.0)
            )
            bucket[parent if direction == "down" else child].append(edge)
    return tree


def edge_label(edge: TreeEdge) -> str:
    """'finetune' for a declared edge; 'finetune?, inferred from weights, 0.82' for an inferred one."""
    if edge.origin in DECLARED_ORIGINS:
        return f"{edge.relation} ({edge.origin})"
    return f"{edge.relation}? inferred from {edge.origin}, confidence {edge.confidence:.2f}"


def render_lineage_tree(tree: LineageTree) -> str:
    """Ancestors above the model (indented outwards), descendants below, with relation labels."""
    lines: list[str] = []
    if tree.up:
        lines.append("ancestors:")
        _walk(tree.model, tree.up, lambda e: e.parent, lines, 1, {tree.model})
    lines.append(tree.model + ("" if tree.known else "  [placeholder: not crawled or deleted]"))
    if tree.down:
        lines.append("descendants:")
        _walk(tree.model, tree.down, lambda e: e.child, lines, 1, {tree.model})
    if not tree.up and not tree.down:
        lines.append("(no declared or inferred parents or children)")
    return "\n".join(lines)


def _walk(node, edges, next_of, lines, level, seen) -> None:  # type: ignore[no-untyped-def]
    for edge in edges.get(node, []):
        target = next_of(edge)
        cycle = " [cycle]" if target in seen else ""
        lines.append(f"{'  ' * level}{'└─'} {target}  ({edge_label(edge)}){cycle}")
        if not cycle:
            _walk(target, edges, next_of, lines, level + 1, seen | {target})


def edge_evidence(con: duckdb.DuckDBPyConnection, child: str, parent: str) -> list[dict[str, object]]:
    """Every evidence row of one edge, best first (the one `lineage` picked comes first)."""
    cur = con.execute(
        """SELECT relation, origin, confidence, merge_weight, evidence, flag FROM edges
           WHERE child = ? AND parent = ?
           ORDER BY relation = 'unknown', origin_rank(origin), confidence DESC""",
        [child, parent],
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
