"""Page callbacks and page data as plain functions, on a real app over a real DuckDB file."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import dash
import pytest

from app import create_app, search_box_options
from app.sqlrun import example_queries, query_csv, run_query_view
from tests.app.fixtures import build_network_atlas, build_small_atlas


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[dash.Dash]:
    app = create_app(build_small_atlas(tmp_path / "atlas.duckdb"))
    with app.server.app_context():
        yield app
    app.server.config["HUBATLAS_SOURCE"].close()


def page(name: str):  # type: ignore[no-untyped-def]
    return sys.modules[f"app.pages.{name}"]


def test_search_is_a_prefix_search_most_downloaded_first(ctx: dash.Dash) -> None:
    assert [o["value"] for o in search_box_options("fan/ft-0", None)][:3] == [
        "fan/ft-00",
        "fan/ft-01",
        "fan/ft-02",
    ]
    assert [o["value"] for o in search_box_options("ALICE", None)] == ["alice/ft-chat"]
    assert search_box_options("%", None) == []  # LIKE wildcards are literal
    assert search_box_options(None, "bob/ft-code") == [{"label": "bob/ft-code", "value": "bob/ft-code"}]


def test_choosing_a_search_result_or_clicking_a_point_opens_the_model_url(ctx: dash.Dash) -> None:
    click = {"points": [{"curveNumber": 0}, {"curveNumber": 2, "text": "org/with.dots-1"}]}
    assert page("atlas").open_clicked(click) == "/model/org/with.dots-1"
    assert page("atlas").open_clicked({"points": [{"curveNumber": 0}]}) is dash.no_update
    assert (
        page("family").open_clicked({"points": [{"customdata": "more:base-org/base-7b"}]}) is dash.no_update
    )


def test_recolouring_the_atlas_keeps_every_point(ctx: dash.Dash) -> None:
    fig = page("atlas").recolor("license")
    assert sum(len(t.x) for t in fig.data if t.mode == "markers") == 49
    assert fig.layout.legend.title.text == "license"


def test_sql_view_shows_rows_and_refuses_file_access(ctx: dash.Dash) -> None:
    ok = run_query_view("SELECT id, depth FROM ancestors('carol/chat-gguf')")
    assert ok.error is None and [r["id"] for r in ok.rows] == ["alice/ft-chat", "base-org/base-7b"]
    assert ok.status.startswith("2 rows")
    for sql in (
        "SELECT * FROM read_csv('/etc/passwd')",
        "COPY models TO '/tmp/x.csv'",
        "ATTACH '/tmp/o.duckdb'",
    ):
        bad = run_query_view(sql)
        assert bad.rows == [] and "Permission Error" in bad.error
    assert "syntax error" in run_query_view("SELEC 1").error
    assert run_query_view("  ").error == "Type a query first."
    text, error = query_csv("SELECT id FROM siblings('alice/ft-chat') WHERE id LIKE 'bob%'")
    assert error is None and text.splitlines() == ["id", "bob/ft-code"]


def test_every_example_query_runs(ctx: dash.Dash) -> None:
    for name, sql in example_queries("base-org/base-7b", "alice/ft-chat").items():
        assert run_query_view(sql).error is None, name
    assert "'o''brien/x'" in example_queries("o'brien/x", None)["Descendants of a root"]


def test_run_callback_returns_table_and_inline_error(ctx: dash.Dash) -> None:
    rows, cols, _status, err = page("sql").run(1, "SELECT 42 AS answer")
    assert rows == [{"answer": 42}] and cols == [{"name": "answer", "id": "answer"}] and err is None
    _, _, _, err = page("sql").run(1, "ATTACH 'x.duckdb'")
    assert "Permission" in str(err.children)


def test_merge_yaml_is_the_chosen_partners_and_downloads_under_a_safe_name(ctx: dash.Dash) -> None:
    merge = page("merge")
    assert "merge_method: slerp" in merge.show_yaml("eve/hidden-ft", "alice/ft-chat")
    out = merge.download_yaml(1, "bob/ft-code", "alice/ft-chat")
    assert (
        out["filename"] == "merge-alice__ft-chat-bob__ft-code.yml" and "merge_method: ties" in out["content"]
    )


def test_model_page_lists_evidence_kin_and_licence_path(ctx: dash.Dash) -> None:
    text = str(page("model").layout(model_id="dave/merge-chat-code"))
    assert "mergekit_config.yml slerp source" in text and "0.6" in text  # evidence and merge weight
    assert "Licences change along the path" in text and "cc-by-nc-4.0" in text
    assert "No kinship for this model yet" in text
    kin = str(page("model").layout(model_id="alice/ft-chat"))
    assert "eve/hidden-ft" in kin and "model-kin-select" in kin
    assert '["chat-data"]' in kin  # card front matter
    # Evidence that already names its origin is not prefixed with it again.
    assert "card base_model: base-org/base-7b" in kin and "card: card" not in kin
    from app import data, get_source

    kin_rows = get_source().read(lambda con: data.nearest_kin(con, "alice/ft-chat"))
    assert [(r["id"], r["scheme"]) for r in kin_rows] == [
        ("eve/hidden-ft", "raw"),
        ("bob/ft-code", "default"),
    ]
    chart = page("model").show_layers("eve/hidden-ft", "alice/ft-chat")
    assert [round(y, 2) for y in chart.figure.data[0].y] == [0.01, 0.03, 0.07]
    assert "No model 'nobody/none'" in str(page("model").layout(model_id="nobody/none"))


def test_family_time_slider_callback_grows_the_tree(ctx: dash.Dash) -> None:
    family = page("family")
    first, first_label = family.update_family(0, 25, "base-org/base-7b")
    last, last_label = family.update_family(100, 25, "base-org/base-7b")
    assert len(first.data[-1].x) == 1 and len(last.data[-1].x) == 31
    assert first_label == "Grown until 2023-01: 1 shown" and last_label.startswith("Grown until 2023-09")
    months = family.growth_months([None, datetime(2023, 3, 5), datetime(2023, 1, 10)])
    assert [m.strftime("%Y-%m-%d") for m in months] == ["2023-01-31", "2023-02-28", "2023-03-31"]
    assert family.growth_months([None]) == []


def test_pages_without_data_say_so(tmp_path: Path) -> None:
    from atlas import db

    path = tmp_path / "empty.duckdb"
    db.connect(path).close()
    app = create_app(path)
    with app.server.app_context():
        assert "The atlas is empty" in str(page("atlas").layout())
        assert "No merge suggestions in this atlas yet" in str(page("merge").layout())
    app.server.config["HUBATLAS_SOURCE"].close()


def test_every_family_of_the_real_network_has_a_point(tmp_path: Path, real_data: Path) -> None:
    db_file = build_network_atlas(tmp_path / "net.duckdb", real_data / "hub-dependency-network-2025")
    app = create_app(db_file)
    with app.server.app_context():
        source = app.server.config["HUBATLAS_SOURCE"]
        points = source.read(__import__("app.data", fromlist=["atlas_points"]).atlas_points)
        roots = source.read(lambda con: {r[0] for r in con.execute("SELECT id FROM roots").fetchall()})
        assert len(points.ids) == 29_075
        assert roots <= set(points.ids)
        fig = page("atlas").atlas_figure("relation")
        assert sum(len(t.x) for t in fig.data if t.mode == "markers") == 29_075
    source.close()
