"""Read-only queries behind the pages: each takes a DuckDB cursor and returns plain rows or records.

All SQL of the app lives here, parameterized; callbacks call these functions and never build SQL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import duckdb

from atlas.db import query_dicts

DECLARED_ORIGINS = ("card", "tag", "config", "adapter_config", "mergekit")

# The atlas can be coloured by these node facts (label -> column of `atlas_points`).
COLOR_FIELDS = {"relation": "Relation to parent", "license": "Licence", "task": "Task"}


@dataclass(frozen=True)
class AtlasPoints:
    """Columns of the atlas point cloud, one entry per node (numpy-free so it caches and pickles)."""

    ids: list[str]
    x: list[float]
    y: list[float]
    root: list[str]
    downloads: list[int]
    relation: list[str]
    license: list[str]
    task: list[str]
    placeholder: list[bool]


def has_table_rows(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether a derived table (kinship, merge_suggestions, layout) has any rows yet."""
    if table not in {"kinship", "kinship_layers", "merge_suggestions", "layout", "models", "edges"}:
        raise ValueError(f"unknown table {table!r}")
    return con.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0]


def atlas_points(con: duckdb.DuckDBPyConnection) -> AtlasPoints:
    """Every node with its stored layout position and the facts the atlas colours and sizes by."""
    rows = con.execute(
        """
        WITH rel AS (
            SELECT child, arg_min(relation, origin_rank(origin)) AS relation
            FROM lineage WHERE parent <> child GROUP BY child
        )
        SELECT n.id, l.x, l.y, coalesce(l.root, n.id), coalesce(m.downloads, 0),
               coalesce(rel.relation, 'root'), coalesce(m.license, 'unknown'),
               coalesce(m.pipeline_tag, 'unknown'), n.placeholder
        FROM nodes n
        JOIN layout l ON l.model_id = n.id
        LEFT JOIN models m ON m.id = n.id
        LEFT JOIN rel ON rel.child = n.id
        ORDER BY n.id
        """
    ).fetchall()
    cols = list(zip(*rows, strict=True)) if rows else [()] * 9
    return AtlasPoints(*(list(c) for c in cols))


def atlas_edges(con: duckdb.DuckDBPyConnection) -> tuple[list[float], list[float]]:
    """Edge segments of the whole atlas as x and y lists with None separators (one WebGL trace)."""
    rows = con.execute(
        """
        SELECT p.x, p.y, c.x, c.y FROM lineage e
        JOIN layout p ON p.model_id = e.parent JOIN layout c ON c.model_id = e.child
        WHERE e.parent <> e.child
        """
    ).fetchall()
    xs: list[float | None] = []
    ys: list[float | None] = []
    for px, py, cx, cy in rows:
        xs += [px, cx, None]
        ys += [py, cy, None]
    return xs, ys  # type: ignore[return-value]


def layout_counts(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(nodes, nodes with a layout position): the atlas says so when the layout is missing or stale."""
    return con.execute(
        "SELECT (SELECT count(*) FROM nodes), (SELECT count(*) FROM layout WHERE model_id IN (SELECT id FROM nodes))"
    ).fetchone()


def search_models(con: duckdb.DuckDBPyConnection, text: str, *, limit: int = 20) -> list[str]:
    """Model ids starting with `text` (case-insensitive), most downloaded first; then ids containing it."""
    text = (text or "").strip()
    if not text:
        return []
    rows = con.execute(
        """
        SELECT n.id FROM nodes n LEFT JOIN models m ON m.id = n.id
        WHERE lower(n.id) LIKE lower(?) || '%' ESCAPE '\\' OR lower(n.id) LIKE '%' || lower(?) || '%' ESCAPE '\\'
        ORDER BY NOT starts_with(lower(n.id), lower(?)), coalesce(m.downloads, 0) DESC, n.id
        LIMIT ?
        """,
        [_like_escape(text), _like_escape(text), text, limit],
    ).fetchall()
    return [r[0] for r in rows]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def model_exists(con: duckdb.DuckDBPyConnection, model_id: str) -> bool:
    return con.execute("SELECT EXISTS (SELECT 1 FROM nodes WHERE id = ?)", [model_id]).fetchone()[0]


def model_facts(con: duckdb.DuckDBPyConnection, model_id: str) -> dict[str, Any] | None:
    """The stored metadata of one model and its card's front matter; None when not stored."""
    rows = query_dicts(
        con,
        """
        SELECT m.id, m.author, m.created_at, m.last_modified, m.downloads, m.likes, m.library_name,
               m.pipeline_tag, m.license, m.gated, m.architecture, m.model_type, m.num_parameters,
               m.languages, m.datasets, m.card_length, m.source, m.location, c.front_matter
        FROM models m LEFT JOIN cards c ON c.model_id = m.id WHERE m.id = ?
        """,
        [model_id],
    )
    if not rows:
        return None
    facts = rows[0]
    fm = facts.pop("front_matter")
    facts["card"] = json.loads(fm) if isinstance(fm, str) else fm
    return facts


def parents(con: duckdb.DuckDBPyConnection, model_id: str) -> list[dict[str, Any]]:
    """Each parent with its best relation and every piece of evidence (origin, confidence, text)."""
    return _relatives(con, model_id, "child", "parent")


def children(con: duckdb.DuckDBPyConnection, model_id: str, *, limit: int = 200) -> list[dict[str, Any]]:
    """Each child with its best relation and evidence, most downloaded first."""
    return _relatives(con, model_id, "parent", "child", limit=limit)


def _relatives(
    con: duckdb.DuckDBPyConnection, model_id: str, mine: str, other: str, *, limit: int = 200
) -> list[dict[str, Any]]:
    assert (mine, other) in {("child", "parent"), ("parent", "child")}
    return query_dicts(
        con,
        f"""
        SELECT l.{other} AS id, l.relation, l.origin, l.confidence, l.declared, l.merge_weight, l.n_sources,
               (SELECT string_agg(CASE WHEN starts_with(coalesce(e.evidence, ''), e.origin) THEN e.evidence
                                       ELSE e.origin || ': ' || coalesce(e.evidence, e.relation) END,
                                  '; ' ORDER BY e.origin)
                FROM edges e WHERE e.{mine} = l.{mine} AND e.{other} = l.{other}) AS evidence,
               coalesce(m.downloads, 0) AS downloads, m.id IS NULL AS placeholder
        FROM lineage l LEFT JOIN models m ON m.id = l.{other}
        WHERE l.{mine} = ? AND l.parent <> l.child
        ORDER BY downloads DESC, id LIMIT ?
        """,
        [model_id, limit],
    )


def count_children(con: duckdb.DuckDBPyConnection, model_id: str) -> int:
    return con.execute(
        "SELECT count(*) FROM lineage WHERE parent = ? AND child <> parent", [model_id]
    ).fetchone()[0]


def licence_path(con: duckdb.DuckDBPyConnection, model_id: str) -> list[dict[str, Any]]:
    """The model and its ancestors (nearest first) with each one's licence: where the terms come from."""
    return query_dicts(
        con,
        """
        SELECT x.id, x.depth, x.relation, m.license
        FROM (SELECT ? AS id, 0 AS depth, NULL AS relation UNION ALL SELECT id, depth, relation FROM ancestors(?)) x
        LEFT JOIN models m ON m.id = x.id ORDER BY x.depth, x.id
        """,
        [model_id, model_id],
    )


def nearest_kin(con: duckdb.DuckDBPyConnection, model_id: str, *, limit: int = 10) -> list[dict[str, Any]]:
    """Models closest by sampled weights (highest cosine of deltas), with every kinship metric."""
    return query_dicts(
        con,
        """
        SELECT CASE WHEN a = ? THEN b ELSE a END AS id, reference, scheme, cosine, pearson, l2,
               sign_conflict, topk_overlap, computed_on
        FROM kinship WHERE (a = ? OR b = ?) AND a <> b
        QUALIFY row_number() OVER (PARTITION BY id ORDER BY cosine DESC NULLS LAST, scheme) = 1  -- one row per kin
        ORDER BY cosine DESC NULLS LAST, id LIMIT ?
        """,
        [model_id, model_id, model_id, limit],
    )


def kinship_layers(con: duckdb.DuckDBPyConnection, a: str, b: str) -> list[dict[str, Any]]:
    """Per-layer cosine and L2 between two models (either order), in layer order."""
    return query_dicts(
        con,
        """
        SELECT layer, scheme, cosine, l2 FROM kinship_layers
        WHERE (a = ? AND b = ?) OR (a = ? AND b = ?)
        ORDER BY scheme, try_cast(regexp_extract(layer, '(\\d+)', 1) AS INTEGER) NULLS FIRST, layer
        """,
        [a, b, b, a],
    )


def merge_suggestions(con: duckdb.DuckDBPyConnection, model_id: str) -> list[dict[str, Any]]:
    """Ranked merge partners of a model with their reasons (a list of strings) and mergekit YAML."""
    rows = query_dicts(
        con,
        """
        SELECT partner, rank, score, method, base, reasons, config_yaml
        FROM merge_suggestions WHERE model_id = ? ORDER BY rank, partner
        """,
        [model_id],
    )
    for r in rows:
        r["reasons"] = _reasons(r["reasons"])
    return rows


def _reasons(raw: Any) -> list[str]:
    value = json.loads(raw) if isinstance(raw, str) else raw
    if value is None:
        return []
    if isinstance(value, dict):
        return [f"{k}: {v}" for k, v in value.items()]
    if isinstance(value, list):
        return [x if isinstance(x, str) else json.dumps(x) for x in value]
    return [str(value)]


def models_with_suggestions(con: duckdb.DuckDBPyConnection, *, limit: int = 50) -> list[str]:
    rows = con.execute(
        "SELECT model_id FROM merge_suggestions GROUP BY model_id ORDER BY max(score) DESC, model_id LIMIT ?",
        [limit],
    ).fetchall()
    return [r[0] for r in rows]


@dataclass(frozen=True)
class FamilyTree:
    """One family: its members (with facts) and its edges, for the family page."""

    root: str
    nodes: list[dict[str, Any]]  # id, depth, created_at, downloads, placeholder
    edges: list[dict[str, Any]]  # parent, child, relation, origin, confidence, declared


def family_tree(con: duckdb.DuckDBPyConnection, root: str, *, max_nodes: int = 5000) -> FamilyTree | None:
    """The family under `root` (its descendants and itself); None when `root` is unknown."""
    if not model_exists(con, root):
        return None
    nodes = query_dicts(
        con,
        """
        SELECT x.id, x.depth, m.created_at, coalesce(m.downloads, 0) AS downloads, m.id IS NULL AS placeholder,
               m.license, m.pipeline_tag
        FROM (SELECT ? AS id, 0 AS depth UNION ALL SELECT id, depth FROM descendants(?)) x
        LEFT JOIN models m ON m.id = x.id ORDER BY x.depth, downloads DESC, x.id LIMIT ?
        """,
        [root, root, max_nodes],
    )
    ids = [n["id"] for n in nodes]
    edges = query_dicts(
        con,
        """
        SELECT parent, child, relation, origin, confidence, declared FROM lineage
        WHERE parent IN (SELECT unnest(?)) AND child IN (SELECT unnest(?)) AND parent <> child
        ORDER BY parent, child
        """,
        [ids, ids],
    )
    return FamilyTree(root, nodes, edges)


def family_root_of(con: duckdb.DuckDBPyConnection, model_id: str) -> str | None:
    """The root of the family a model is drawn in (from the layout, else its farthest ancestor)."""
    row = con.execute("SELECT root FROM layout WHERE model_id = ?", [model_id]).fetchone()
    if row and row[0]:
        return row[0]
    row = con.execute(
        "SELECT id FROM ancestors(?) WHERE id IN (SELECT id FROM roots) ORDER BY depth DESC LIMIT 1",
        [model_id],
    ).fetchone()
    return row[0] if row else (model_id if model_exists(con, model_id) else None)


def largest_families(con: duckdb.DuckDBPyConnection, *, limit: int = 20) -> list[tuple[str, int]]:
    """The biggest families by member count (from the stored layout, which is cheap to group)."""
    return con.execute(
        "SELECT root, count(*) AS n FROM layout GROUP BY root ORDER BY n DESC, root LIMIT ?", [limit]
    ).fetchall()
