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
    for view in ("families", "family('o/a')", "family_depths", "family_relations", "trait_drift"):
        con.execute(f"SELECT * FROM {view}").fetchall()


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


def test_family_depths_and_relation_mix(db_path: Path) -> None:
    con = _graph(
        db_path,
        [
            ("o/a", "o/r", "finetune", "tag"),
            ("o/b", "o/r", "quantized", "tag"),
            ("o/c", "o/a", "adapter", "tag"),
            ("o/m", "o/a", "merge", "card"),
            ("o/m", "o/r2", "merge", "card"),
        ],
    )
    depths = _rows(con, "SELECT root, depth, n FROM family_depths ORDER BY root, depth")
    assert depths == [("o/r", 0, 1), ("o/r", 1, 2), ("o/r", 2, 2), ("o/r2", 0, 1), ("o/r2", 1, 1)]
    mix = {(r, rel): (n, share) for r, rel, n, share in _rows(con, "SELECT * FROM family_relations")}
    assert {k: v[0] for k, v in mix.items()} == {
        ("o/r", "finetune"): 1, ("o/r", "quantized"): 1, ("o/r", "adapter"): 1, ("o/r", "merge"): 1,
        ("o/r2", "merge"): 1,
    }  # fmt: skip
    assert mix[("o/r", "adapter")][1] == pytest.approx(0.25) and mix[("o/r2", "merge")][1] == 1.0
    # the histogram sums to the family's size, and the mix's counts to its edges
    sizes = dict(_rows(con, "SELECT root, size FROM families"))
    assert dict(_rows(con, "SELECT root, sum(n) FROM family_depths GROUP BY root")) == sizes


@pytest.mark.parametrize(
    ("license", "cls"),
    [
        ("mit", "permissive"), ("Apache-2.0", "permissive"), ("bsd-3-clause", "permissive"),
        ("cc-by-4.0", "permissive"), ("cc0-1.0", "permissive"),
        ("gpl-3.0", "copyleft"), ("agpl-3.0", "copyleft"), ("cc-by-sa-4.0", "copyleft"), ("mpl-2.0", "copyleft"),
        ("cc-by-nc-4.0", "non-commercial"), ("cc-by-nc-sa-4.0", "non-commercial"),
        ("llama2", "restricted"), ("llama3.1", "restricted"), ("gemma", "restricted"),
        ("creativeml-openrail-m", "restricted"), ("openrail++", "restricted"),
        ("bigscience-bloom-rail-1.0", "restricted"),
        ("other", "other"), ("unknown", "other"), ("???", "other"), (None, "none"), ("", "none"),
    ],
)  # fmt: skip
def test_license_class(db_path: Path, license: str | None, cls: str) -> None:
    con = db.connect(db_path)
    assert con.execute("SELECT license_class(?)", [license]).fetchall() == [(cls,)]


def _traited(
    path: Path, records: list[ModelRecord], edges: list[tuple[str, str, str]]
) -> duckdb.DuckDBPyConnection:
    by_child: dict[str, list[EdgeRecord]] = {}
    for child, parent, relation in edges:
        by_child.setdefault(child, []).append(EdgeRecord(child, parent, relation, "card"))
    con = db.connect(path)
    write_bundles(con, [ModelBundle(r, edges=tuple(by_child.get(r.id, ()))) for r in records])
    return con


def test_trait_drift_compares_parent_and_child(db_path: Path) -> None:
    con = _traited(
        db_path,
        [
            ModelRecord("o/base", license="llama2", languages=("en", "fr"), card_length=9000,
                        pipeline_tag="text-generation"),
            ModelRecord("o/ft", license="MIT", languages=("en",), card_length=900, pipeline_tag="text-generation"),
            ModelRecord("o/bare", card_length=None, pipeline_tag="text-classification"),
            ModelRecord("o/same", license="llama2", languages=("fr", "en"), card_length=9000,
                        pipeline_tag="text-generation"),
            ModelRecord("o/orphan", license="mit", languages=("English",)),
            ModelRecord("o/loop", license="mit"),
        ],
        [("o/ft", "o/base", "finetune"), ("o/bare", "o/base", "finetune"), ("o/same", "o/base", "finetune"),
         ("o/orphan", "gone/parent", "finetune"), ("o/loop", "o/loop", "finetune")],
    )  # fmt: skip
    rows = {r["child"]: r for r in db.query_dicts(con, "SELECT * FROM trait_drift")}
    assert set(rows) == {"o/ft", "o/bare", "o/same", "o/orphan"}  # self-loops are no edge
    ft = rows["o/ft"]
    assert (ft["parent_license_class"], ft["child_license_class"], ft["license_changed"]) == (
        "restricted",
        "permissive",
        True,
    )
    assert (ft["parent_english_only"], ft["child_english_only"], ft["languages_changed"]) == (
        False,
        True,
        True,
    )
    assert (ft["card_length_delta"], ft["pipeline_tag_changed"]) == (-8100, False)
    same = rows["o/same"]  # languages in another order, same licence in another case: unchanged
    assert (same["license_changed"], same["languages_changed"], same["card_length_delta"]) == (
        False,
        False,
        0,
    )
    bare = rows["o/bare"]  # what a card does not state is unknown, never a change
    assert bare["child_license_class"] == "none"
    assert (bare["license_changed"], bare["languages_changed"], bare["card_length_delta"]) == (
        None,
        None,
        None,
    )
    assert bare["pipeline_tag_changed"] is True
    orphan = rows["o/orphan"]  # a placeholder parent has no traits at all
    assert orphan["parent_license_class"] is None and orphan["child_english_only"] is True
    assert orphan["license_changed"] is None


def test_model_traits_english_only(db_path: Path) -> None:
    con = _traited(
        db_path,
        [ModelRecord("o/en", languages=("en",)), ModelRecord("o/EN", languages=("English", "eng")),
         ModelRecord("o/multi", languages=("en", "de")), ModelRecord("o/none"),
         ModelRecord("o/ml", languages=("multilingual",))],
        [],
    )  # fmt: skip
    got = dict(_rows(con, "SELECT id, english_only FROM model_traits"))
    assert got == {"o/en": True, "o/EN": True, "o/multi": False, "o/none": None, "o/ml": False}
