"""Small atlas databases for the app tests and benchmarks: a hand-written family, and the real
dependency network (29k models) loaded with DuckDB SQL straight from its CSV files."""

from __future__ import annotations

from pathlib import Path

from atlas import db
from atlas.store import refresh_lineage

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_SQL = Path(__file__).with_name("sql") / "small_atlas.sql"

# The network study's edge names mapped onto our relations.
NETWORK_RELATIONS = {
    "finetuned": "finetune",
    "quantized": "quantized",
    "merged": "merge",
    "adapter": "adapter",
}


def build_small_atlas(path: Path, *, layout: bool = True) -> Path:
    """A database with two families, a merge, an inferred edge, kinship and merge suggestions."""
    con = db.connect(path)
    con.execute(FIXTURE_SQL.read_text(encoding="utf-8"))
    refresh_lineage(con)
    if layout:
        from analysis.layout import write_layout

        write_layout(con)
    con.close()
    return path


def build_network_atlas(path: Path, network_dir: Path, *, layout: bool = True) -> Path:
    """The 2025 dependency network (models.csv, edges.csv) as an atlas database."""
    con = db.connect(path)
    mapping = ", ".join(f"('{k}', '{v}')" for k, v in NETWORK_RELATIONS.items())
    con.execute(
        """
        INSERT OR REPLACE INTO models (id, author, architecture, model_type, downloads, source)
        SELECT id, owner, architecture, architecture, (hash(id) % 100000)::BIGINT, 'snapshot'
        FROM read_csv(?, header = true, all_varchar = true)
        """,
        [str(network_dir / "models.csv")],
    )
    con.execute(
        f"""
        INSERT OR REPLACE INTO edges (child, parent, relation, origin, confidence, evidence)
        SELECT e.target, e.source, coalesce(m.rel, 'unknown'), 'card', 1.0, 'dependency network ' || e.edge
        FROM read_csv(?, header = true, all_varchar = true) e
        LEFT JOIN (VALUES {mapping}) m(edge, rel) ON m.edge = e.edge;
        """,
        [str(network_dir / "edges.csv")],
    )
    refresh_lineage(con)
    if layout:
        from analysis.layout import write_layout

        write_layout(con)
    con.close()
    return path
