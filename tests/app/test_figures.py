"""Figures as plain functions: what the atlas, family tree and layer chart draw."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from app import data
from app.figures import (
    MORE_PREFIX,
    build_atlas_figure,
    build_family_figure,
    build_layer_chart,
    layout_tree,
    marker_size,
)
from app.source import AtlasSource
from tests.app.fixtures import build_small_atlas


@pytest.fixture
def source(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = AtlasSource(build_small_atlas(tmp_path / "atlas.duckdb"), workdir=tmp_path / "snaps")
    yield s
    s.close()


def test_atlas_draws_every_node_once_with_webgl_and_one_edge_trace(source: AtlasSource) -> None:
    points = source.read(data.atlas_points)
    fig = build_atlas_figure(points, source.read(data.atlas_edges), "relation")
    marker_traces = [t for t in fig.data if t.mode == "markers"]
    assert all(t.type == "scattergl" for t in fig.data)
    drawn = [i for t in marker_traces for i in t.text]
    assert sorted(drawn) == sorted(points.ids) and len(drawn) == 49  # 48 models + 1 deleted parent
    names = {t.name.split(" (")[0] for t in marker_traces}
    assert {"root", "finetune", "quantized", "merge"} <= names
    edges = fig.data[0]
    assert edges.mode == "lines" and int(np.isnan(edges.x).sum()) == 47  # one segment per lineage edge


def test_atlas_colours_by_licence_and_task(source: AtlasSource) -> None:
    points = source.read(data.atlas_points)
    by_licence = {
        t.name.split(" (")[0]
        for t in build_atlas_figure(points, ([], []), "license").data
        if t.mode == "markers"
    }
    assert {"apache-2.0", "mit", "cc-by-nc-4.0", "unknown"} <= by_licence
    by_task = {
        t.name.split(" (")[0]
        for t in build_atlas_figure(points, ([], []), "task").data
        if t.mode == "markers"
    }
    assert {"text-generation", "text-to-image", "text-classification"} <= by_task


def test_bigger_downloads_get_bigger_markers() -> None:
    assert marker_size(0) == 3.0
    assert marker_size(10) < marker_size(10_000) < marker_size(10_000_000) < 16


def test_family_tree_collapses_large_fans_and_separates_declared_from_inferred(source: AtlasSource) -> None:
    tree = source.read(lambda con: data.family_tree(con, "base-org/base-7b"))
    layout = layout_tree(tree, fan_limit=10)
    more = f"{MORE_PREFIX}base-org/base-7b"
    assert layout.collapsed == {more: 31}  # 41 leaf children in the tree (bob included), 10 shown
    assert layout.positions["base-org/base-7b"][1] == 0 and layout.positions["carol/chat-gguf"][1] == -2
    fig = build_family_figure(layout, "base-org/base-7b")
    lines = {t.name: t for t in fig.data if t.mode == "lines"}
    assert lines["finetune (declared)"].line.dash == "solid"
    assert lines["finetune (inferred)"].line.dash == "dash"
    confidence = next(t for t in fig.data if t.name == "confidence")
    assert list(confidence.text) == ["0.72"]
    nodes = fig.data[-1]
    assert "+31 more" in nodes.text and more in nodes.customdata


def test_time_slider_hides_models_created_later(source: AtlasSource) -> None:
    tree = source.read(lambda con: data.family_tree(con, "base-org/base-7b"))
    early = layout_tree(tree, until=datetime(2023, 3, 31))
    assert set(early.positions) == {"base-org/base-7b", "alice/ft-chat"}
    # root, alice and her 3 children, 25 of the 41 leaves, one "+16 more"
    assert len(layout_tree(tree).positions) == 1 + 4 + 25 + 1


def test_layer_chart_plots_one_minus_cosine_and_l2_per_layer() -> None:
    layers = [
        {"layer": "model.layers.0", "cosine": 0.9, "l2": 0.5},
        {"layer": "model.layers.1", "cosine": None, "l2": 1.0},
    ]
    fig = build_layer_chart(layers, "a/x", "b/y")
    bars, line = fig.data
    assert list(bars.x) == ["model.layers.0", "model.layers.1"]
    assert bars.y[0] == pytest.approx(0.1) and bars.y[1] is None
    assert list(line.y) == [0.5, 1.0] and line.yaxis == "y2"
