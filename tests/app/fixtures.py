"""Small atlas databases for the app tests and benchmarks: a hand-written family, and the real
dependency network (29k models) loaded with DuckDB SQL straight from its CSV files."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


WRITER = textwrap.dedent(
    """
    import sys
    from atlas import db
    con = db.connect(sys.argv[1])
    con.execute("INSERT INTO models (id, source, downloads) VALUES ('new-org/fresh', 'hub', 1)")
    print("holding", flush=True)
    sys.stdin.readline()  # keep the write lock until the test says so
    con.close()
    print("closed", flush=True)
    """
)


@contextmanager
def writer_holding_lock(db_path: Path) -> Iterator[Callable[[], None]]:
    """Another process (like a crawl) that opens the database read-write and adds 'new-org/fresh'; inside
    the block it holds the write lock until the yielded `release()` makes it commit and close."""
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db_path)],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdin is not None and writer.stdout is not None

    def release() -> None:
        writer.stdin.write("\n")
        writer.stdin.flush()
        assert writer.stdout.readline().strip() == "closed"

    try:
        assert writer.stdout.readline().strip() == "holding"
        yield release
    finally:
        writer.wait(timeout=30)
    assert writer.returncode == 0
