"""The SQL contract: lineage precedence, placeholders, and recursive macros that terminate on cycles."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from atlas import db
from atlas.cli import app
from atlas.records import EdgeRecord, ModelBundle, ModelRecord
from atlas.store import write_bundles

runner = CliRunner()


def _graph(
    path: Path, edges: list[tuple[str, str, str, str]], models: list[str] | None = None
) -> duckdb.DuckDBPyConnection:
    """Store models and edges (child, parent, relation, origin) through the same writer a crawl uses."""
    by_child: dict[str, list[EdgeRecord]] = {}
    for child, parent, relation, origin in edges:
        by_child.setdefault(child, []).append(EdgeRecord(child, parent, relation, origin))
    ids = models if models is not None else sorted(by_child.keys() | {e[1] for e in edges})
    con = db.connect(path)
    write_bundles(
        con,
        [
            ModelBundle(ModelRecord(i, downloads=10, source="hub"), edges=tuple(by_child.get(i, ())))
            for i in ids
        ],
    )
    return con


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def test_specific_relation_beats_unknown_and_declared_beats_inferred(db_path: Path) -> None:
    con = _graph(
        db_path,
        [
            ("o/c", "o/p", "unknown", "card"),
            ("o/c", "o/p", "quantized", "tag"),
            ("o/d", "o/p", "finetune", "weights"),
        ],
    )
    con.execute("INSERT INTO edges VALUES ('o/d', 'o/p', 'finetune', 'card', 1.0, NULL, NULL, NULL)")
    from atlas.store import refresh_lineage

    refresh_lineage(con, ["o/d"])
    assert _rows(con, "SELECT child, relation, origin, n_sources FROM lineage ORDER BY child") == [
        ("o/c", "quantized", "tag", 2),
        ("o/d", "finetune", "card", 2),
    ]


def test_descendants_and_ancestors_with_depth(db_path: Path) -> None:
    con = _graph(
        db_path,
        [
            ("o/b", "o/a", "finetune", "tag"),
            ("o/c", "o/b", "adapter", "tag"),
            ("o/d", "o/c", "quantized", "tag"),
        ],
    )
    assert _rows(con, "SELECT * FROM descendants('o/a')") == [
        ("o/b", 1, "finetune"),
        ("o/c", 2, "adapter"),
        ("o/d", 3, "quantized"),
    ]
    assert _rows(con, "SELECT id, depth FROM ancestors('o/d')") == [("o/c", 1), ("o/b", 2), ("o/a", 3)]


@pytest.mark.parametrize(
    "cycle",
    [[("o/a", "o/b"), ("o/b", "o/a")], [("o/a", "o/b"), ("o/b", "o/c"), ("o/c", "o/a")], [("o/a", "o/a")]],
)
def test_recursive_macros_terminate_on_cycles(db_path: Path, cycle: list[tuple[str, str]]) -> None:
    con = _graph(db_path, [(c, p, "finetune", "card") for c, p in cycle])
    members = {m for pair in cycle for m in pair}
    down = {r[0] for r in _rows(con, "SELECT id FROM descendants('o/a')")}
    up = {r[0] for r in _rows(con, "SELECT id FROM ancestors('o/a')")}
    assert down == up == (members - {"o/a"} if len(members) > 1 else set())
    con.execute("SELECT * FROM families").fetchall()
    con.execute("SELECT * FROM family('o/a')").fetchall()


def test_placeholders_for_parents_not_stored(db_path: Path) -> None:
    con = _graph(db_path, [("o/ft", "gone/base", "finetune", "tag")], models=["o/ft"])
    assert _rows(con, "SELECT id, placeholder FROM nodes ORDER BY id") == [
        ("gone/base", True),
        ("o/ft", False),
    ]
    assert _rows(con, "SELECT root, size FROM families") == [("gone/base", 2)]


def test_merge_belongs_to_both_families_and_siblings(db_path: Path) -> None:
    con = _graph(
        db_path,
        [
            ("o/x1", "o/r1", "finetune", "tag"),
            ("o/x2", "o/r1", "finetune", "tag"),
            ("o/m", "o/x1", "merge", "card"),
            ("o/m", "o/r2", "merge", "card"),
        ],
    )
    families = dict(_rows(con, "SELECT root, size FROM families"))
    assert families == {"o/r1": 4, "o/r2": 2}
    assert _rows(con, "SELECT root, n_merge FROM families WHERE root = 'o/r2'") == [("o/r2", 1)]
    assert {r[0] for r in _rows(con, "SELECT root FROM family('o/m')")} == {"o/r1", "o/r2"}
    assert _rows(con, "SELECT id, shared_parent FROM siblings('o/x1')") == [("o/x2", "o/r1")]


def test_macros_work_in_a_plain_duckdb_session(db_path: Path) -> None:
    _graph(db_path, [("o/b", "o/a", "finetune", "tag")]).close()
    con = duckdb.connect(str(db_path), read_only=True)  # no atlas code: what a SQL user gets
    assert con.execute("SELECT id FROM descendants('o/a')").fetchall() == [("o/b",)]


def test_lineage_command_marks_inferred_edges_and_explains(db_path: Path) -> None:
    con = _graph(db_path, [("o/b", "o/a", "finetune", "tag"), ("o/b", "o/a", "unknown", "card")])
    con.execute(
        "INSERT INTO edges VALUES ('o/c', 'o/b', 'finetune', 'weights', 0.73, NULL, 'closest earlier model', NULL)"
    )
    from atlas.store import refresh_lineage

    refresh_lineage(con)
    con.close()
    out = runner.invoke(app, ["lineage", "o/b", "--db", str(db_path)])
    assert out.exit_code == 0, out.output
    assert "o/a  (finetune (tag))" in out.stdout
    assert "o/c  (finetune? inferred from weights, confidence 0.73)" in out.stdout
    explained = runner.invoke(app, ["lineage", "o/b", "--explain", "o/a", "--db", str(db_path), "-f", "json"])
    assert [r["origin"] for r in json.loads(explained.stdout)] == ["tag", "card"]
    missing = runner.invoke(app, ["lineage", "no/such", "--db", str(db_path)])
    assert missing.exit_code == 1 and "no/such" in missing.stderr
