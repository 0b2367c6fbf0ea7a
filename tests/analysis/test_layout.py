"""The atlas layout: every node placed, families apart, fast at the scale of the real network."""

from __future__ import annotations

import math
import time
from pathlib import Path

from analysis.layout import compute_layout, iter_components, layout_is_stale, write_layout
from atlas import db
from atlas.store import refresh_lineage


def test_components_are_families_largest_first() -> None:
    comps = iter_components(["a", "b", "c", "d", "e"], [("a", "b"), ("c", "b"), ("d", "e")])
    assert comps == [["a", "b", "c"], ["d", "e"]]


def test_every_node_gets_a_position_and_families_do_not_overlap() -> None:
    nodes = ["r1", "c1", "c2", "g1", "r2", "k1", "solo", "cyc1", "cyc2"]
    edges = [
        ("r1", "c1"),
        ("r1", "c2"),
        ("c1", "g1"),
        ("r2", "k1"),
        ("cyc1", "cyc2"),
        ("cyc2", "cyc1"),
        ("solo", "solo"),
    ]
    pos = {p.model_id: p for p in compute_layout(nodes, edges)}
    assert set(pos) == set(nodes)
    assert pos["g1"].root == "r1" and pos["k1"].root == "r2" and pos["solo"].root == "solo"

    # Depth grows outwards from the root of a family.
    def dist(a: str, b: str) -> float:
        return math.hypot(pos[a].x - pos[b].x, pos[a].y - pos[b].y)

    assert dist("r1", "g1") > dist("r1", "c1") > 0
    # Members of a family are nearer to each other than to another family's members.
    assert max(dist("r1", n) for n in ("c1", "c2", "g1")) < min(dist("r1", n) for n in ("r2", "k1", "solo"))
    assert len({(round(p.x, 6), round(p.y, 6)) for p in pos.values()}) == len(nodes)


def test_a_merge_of_two_roots_keeps_both_roots_apart() -> None:
    pos = {p.model_id: p for p in compute_layout(["a", "b", "m", "x"], [("a", "m"), ("b", "m"), ("b", "x")])}
    assert len({p.root for p in pos.values()}) == 1
    assert len({(round(p.x, 6), round(p.y, 6)) for p in pos.values()}) == 4


def test_write_layout_covers_nodes_and_detects_staleness(db_path: Path) -> None:
    con = db.connect(db_path)
    con.execute("INSERT INTO models (id, source) VALUES ('o/base', 'hub'), ('o/ft', 'hub')")
    con.execute(
        "INSERT INTO edges (child, parent, relation, origin) VALUES ('o/ft', 'o/base', 'finetune', 'card'), ('o/ft', 'gone/parent', 'merge', 'card')"
    )
    refresh_lineage(con)
    assert layout_is_stale(con)
    assert write_layout(con) == 3  # the deleted parent is a placeholder node and gets a point too
    assert not layout_is_stale(con)
    con.execute("INSERT INTO models (id, source) VALUES ('o/new', 'hub')")
    assert layout_is_stale(con)


def test_real_network_lays_out_in_seconds(tmp_path: Path, real_data: Path) -> None:
    from tests.app.fixtures import build_network_atlas

    path = build_network_atlas(
        tmp_path / "net.duckdb", real_data / "hub-dependency-network-2025", layout=False
    )
    con = db.connect(path)
    start = time.perf_counter()
    n = write_layout(con)
    assert time.perf_counter() - start < 10
    assert n == con.execute("SELECT count(*) FROM nodes").fetchone()[0] == 29_075
    assert (
        con.execute("SELECT count(*) FROM layout WHERE x IS NULL OR isnan(x) OR isnan(y)").fetchone()[0] == 0
    )
