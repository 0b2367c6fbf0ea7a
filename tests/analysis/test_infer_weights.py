"""Weight-based inference: the math on tiny inputs, synthetic families through the CLI, the small zoo end to end."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from analysis.infer import declared_parents
from analysis.infer_copy import Coords, copy_sources, sources_of_unchanged
from analysis.infer_inputs import load_weight_inputs
from analysis.infer_synth import build_family
from analysis.infer_weights import WeightNode, break_cycles, weight_edges
from atlas.cli import app
from atlas.db import connect, upsert
from atlas.records import EdgeRecord, ModelRecord

T0 = datetime(2024, 5, 1)


def _store(db_path: Path, fam, declared_share: float = 1.0) -> None:
    con = connect(db_path)
    upsert(con, "models", [ModelRecord(id=n.id, created_at=n.created_at, source="zoo") for n in fam.nodes])
    edges = [EdgeRecord(c, p, fam.relations[c], "card") for c, ps in fam.parents.items() for p in ps]
    upsert(con, "edges", edges)
    con.executemany(
        "INSERT INTO kinship (a, b, scheme, l2) VALUES (?, ?, 'default', ?)",
        [[a, b, d] for (a, b), d in fam.distances.items()],
    )
    con.executemany(
        "INSERT INTO weight_stats (model_id, scheme, kurtosis) VALUES (?, 'default', ?)",
        [[n.id, n.kurtosis] for n in fam.nodes],
    )
    con.close()


def test_tree_recovers_hidden_parents_and_beats_no_prior() -> None:
    fam = build_family("f", 60, seed=5)
    edges = weight_edges(fam.nodes, fam.distances)
    got = {(e.child, e.parent) for e in edges}
    truth = {(c, p) for c, ps in fam.parents.items() for p in ps}
    children = {c for c, _ in truth}
    recovered = {c for c in children if any((c, p) in got for p in fam.parents[c])}
    assert len(recovered) / len(children) >= 0.85
    assert all(0 < e.confidence <= 1 and e.origin == "weights" and e.evidence for e in edges)


def test_quantized_copies_stay_leaves() -> None:
    fam = build_family("f", 60, seed=7)
    leaves = {n.id for n in fam.nodes if n.leaf}
    assert leaves
    assert not {e.parent for e in weight_edges(fam.nodes, fam.distances)} & leaves


def test_cycle_is_broken_at_its_least_confident_edge() -> None:
    edges = [
        EdgeRecord("a", "b", "finetune", "weights", 0.9),
        EdgeRecord("b", "a", "finetune", "weights", 0.4),
    ]
    kept = break_cycles(edges)
    assert [(e.child, e.parent) for e in kept] == [("a", "b")]
    # with a declared edge a<-c, the inferred c<-a closing the loop goes
    kept = break_cycles([EdgeRecord("c", "a", "finetune", "weights", 0.99)], fixed=[("a", "c")])
    assert kept == []


def test_models_without_weights_are_ignored() -> None:
    nodes = [WeightNode("x/a"), WeightNode("x/b")]
    assert weight_edges(nodes, {}) == []


def test_cli_evaluate_reports_accuracy_and_baselines(db_path: Path) -> None:
    fam = build_family("f", 80, seed=3)
    _store(db_path, fam)
    r = CliRunner().invoke(
        app, ["infer", "--db", str(db_path), "--weights", "--evaluate", "--hide", "0.9", "--seed", "1"]
    )
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert set(report["methods"]) == {"atlas", "atlas_distances_only", "mother", "nearest_earlier"}
    assert report["methods"]["atlas"]["accuracy"] >= 0.85
    assert "checkpoint" in report["methods"]["atlas"]["per_relation"]


def test_cli_infer_writes_weight_edges_and_keeps_declared(db_path: Path) -> None:
    fam = build_family("f", 40, seed=2)
    _store(db_path, fam)
    con = connect(db_path)
    hidden = sorted(fam.parents)[:10]
    con.execute("DELETE FROM edges WHERE child IN (SELECT unnest(?))", [hidden])
    n_declared = con.execute("SELECT count(*) FROM edges").fetchone()[0]
    con.close()
    r = CliRunner().invoke(app, ["infer", "--db", str(db_path), "--weights"])
    assert r.exit_code == 0, r.output
    con = connect(db_path)
    assert con.execute("SELECT count(*) FROM edges WHERE origin = 'card'").fetchone()[0] == n_declared
    inferred = dict(con.execute("SELECT child, parent FROM edges WHERE origin = 'weights'").fetchall())
    assert set(inferred) <= set(hidden) and len(inferred) >= 8
    assert sum(inferred.get(c) in fam.parents[c] for c in hidden) >= 7


def test_check_flags_a_declared_parent_that_weights_contradict(db_path: Path) -> None:
    fam = build_family("f", 40, seed=4)
    _store(db_path, fam)
    child = next(c for c, r in fam.relations.items() if r == "quantized" and fam.parents[c] != ["f/base"])
    con = connect(db_path)
    con.execute("UPDATE edges SET parent = 'f/base' WHERE child = ?", [child])
    true_parent = fam.parents[child][0]
    con.close()
    if true_parent == "f/base":
        pytest.skip("the copy's parent is the base in this draw")
    r = CliRunner().invoke(app, ["check", "--db", str(db_path), "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    flagged = {(x["child"], x["closest"]) for x in rows}
    assert (child, true_parent) in flagged


def _nodes_and_distances(vecs: dict[str, np.ndarray], bits: dict[str, int] | None = None):
    ids = list(vecs)
    nodes = [
        WeightNode(
            m, T0 + timedelta(hours=i), norm=float(np.linalg.norm(vecs[m])), bits=(bits or {}).get(m, 23)
        )
        for i, m in enumerate(ids)
    ]
    dist = {
        (min(a, b), max(a, b)): float(np.linalg.norm(vecs[a] - vecs[b]))
        for i, a in enumerate(ids)
        for b in ids[i + 1 :]
    }
    return nodes, dist


def test_linear_merge_of_three_gets_its_parents_and_weights_from_distances() -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal(400)
    vecs = {"f/base": base}
    for t in "abcde":
        vecs[f"f/ft-{t}"] = base + 0.3 * rng.standard_normal(400)
    vecs["f/ft-a-more"] = vecs["f/ft-a"] + 0.2 * rng.standard_normal(400)
    vecs["f/merge"] = 0.2 * vecs["f/ft-b"] + 0.5 * vecs["f/ft-c"] + 0.3 * vecs["f/ft-d"]
    nodes, dist = _nodes_and_distances(vecs)
    edges = {(e.child, e.parent): e for e in weight_edges(nodes, dist)}
    merge = {p: e for (c, p), e in edges.items() if c == "f/merge"}
    assert set(merge) == {"f/ft-b", "f/ft-c", "f/ft-d"}
    assert merge["f/ft-c"].merge_weight == pytest.approx(0.5, abs=0.01)
    assert {e.relation for e in merge.values()} == {"merge"}
    assert [p for (c, p) in edges if c == "f/ft-a-more"] == ["f/ft-a"]  # a fine-tune is not a merge


def test_fp16_copy_is_a_leaf_and_its_sources_children_skip_it() -> None:
    rng = np.random.default_rng(1)
    base = rng.standard_normal(2000).astype(np.float32)
    ft = base + 0.1 * rng.standard_normal(2000).astype(np.float32)
    vecs = {"f/base": base, "f/ft": ft, "f/ft-half": ft.astype(np.float16).astype(np.float32)}
    vecs["f/ft-child"] = ft + 0.05 * rng.standard_normal(2000).astype(np.float32)
    nodes, dist = _nodes_and_distances(vecs, bits={"f/ft-half": 10})
    edges = {e.child: e for e in weight_edges(nodes, dist)}
    assert (edges["f/ft-half"].parent, edges["f/ft-half"].relation) == ("f/ft", "quantized")
    assert "mantissa bits" in (edges["f/ft-half"].evidence or "")
    assert edges["f/ft-child"].parent == "f/ft"
    assert "f/ft-half" not in {e.parent for e in edges.values()}


def _coords(**values: np.ndarray) -> dict[str, Coords]:
    return {k.replace("_", "/"): Coords("g", v.astype(np.float32)) for k, v in values.items()}


def test_ties_like_merge_copies_from_its_parents_and_base_not_from_a_sibling_merge() -> None:
    rng = np.random.default_rng(2)
    n = 3000
    base = rng.standard_normal(n)
    p1, p2, p3 = (base + rng.standard_normal(n) for _ in range(3))
    part = rng.integers(0, 4, n)  # which source each merged coordinate comes from (3 = a mean)
    merge = np.select([part == 0, part == 1, part == 2], [base, p1, p2], (p1 + p2) / 2)
    sibling = np.select([part == 0, part == 1], [base, p1], p3)  # shares base and p1 with the merge
    coords = _coords(f_base=base, f_p1=p1, f_p2=p2, f_p3=p3, f_sib=sibling, f_merge=merge)
    known = {"f/sib": ["f/base", "f/p1", "f/p3"], "f/p1": ["f/base"], "f/p2": ["f/base"]}
    found = copy_sources("f/merge", ["f/sib", "f/p1", "f/p2", "f/p3", "f/base"], coords, known,
                         min_gain=0.01, min_share=0.2)  # fmt: skip
    assert found is not None
    assert {s for s, _ in found.sources} == {"f/base", "f/p1", "f/p2"}
    # a plain fine-tune changes every coordinate: no copy sources
    ft = p2 + 0.01 * rng.standard_normal(n)
    coords |= _coords(f_ft=ft)
    assert copy_sources("f/ft", ["f/p2", "f/base"], coords, known, min_gain=0.01, min_share=0.2) is None


def test_the_parent_holds_every_coordinate_the_child_left_untouched() -> None:
    rng = np.random.default_rng(3)
    n = 4000
    grand = rng.standard_normal(n)
    frozen_in_parent = rng.random(n) < 0.1
    parent = np.where(frozen_in_parent, grand, grand + rng.standard_normal(n))
    later_checkpoint = np.where(rng.random(n) < 0.05, parent, parent + 0.1 * rng.standard_normal(n))
    frozen_in_child = rng.random(n) < 0.3
    child = np.where(frozen_in_child, parent, parent + rng.standard_normal(n))
    coords = _coords(f_grand=grand, f_parent=parent, f_later=later_checkpoint, f_child=child)
    holders = sources_of_unchanged("f/child", ["f/grand", "f/later", "f/parent"], coords, slack=0.01)
    assert holders == {"f/parent"}


@pytest.fixture(scope="module")
def zoo_atlas(zoo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small zoo scanned, sampled and with kinship: a database to copy."""
    db = tmp_path_factory.mktemp("zoo-atlas") / "atlas.duckdb"
    runner = CliRunner()
    for args in (
        ["scan", str(zoo_dir)],
        ["sample", "--all", "--workers", "2"],
        ["kinship", "--device", "cpu"],
    ):
        out = runner.invoke(app, [*args, "--db", str(db), "-q"])
        assert out.exit_code == 0, out.output
    return db


def test_hidden_merges_adapter_and_copy_of_the_zoo_are_recovered_from_weights(zoo_atlas: Path) -> None:
    con = connect(zoo_atlas, read_only=True)
    inputs = load_weight_inputs(con)
    declared = declared_parents(con)
    con.close()
    hidden = ["zoo/merge-linear-sort-rotate-add", "zoo/merge-ties-sort-add", "zoo/lora-add",
              "zoo/base-llama-fp16", "zoo/wide-expert-copy-1-bf16", "zoo/wide-merge-ties-copy-sort"]  # fmt: skip
    known = {c: ps for c, ps in declared.items() if c not in hidden}
    edges = weight_edges(inputs.nodes, inputs.distances, known_parents=known, coords=inputs.coords)
    got: dict[str, dict[str, EdgeRecord]] = {}
    for e in edges:
        got.setdefault(e.child, {})[e.parent] = e
    linear = got["zoo/merge-linear-sort-rotate-add"]
    assert set(linear) == {"zoo/expert-sort-2", "zoo/expert-rotate-1", "zoo/expert-add-1"}
    assert linear["zoo/expert-sort-2"].merge_weight == pytest.approx(0.4, abs=0.02)
    # a TIES merge's declared parents include its base (mergekit `base_model`)
    assert set(got["zoo/merge-ties-sort-add"]) == {"zoo/expert-sort-1", "zoo/expert-add-1", "zoo/base-llama"}
    assert set(got["zoo/wide-merge-ties-copy-sort"]) == set(declared["zoo/wide-merge-ties-copy-sort"])
    assert [(p, e.relation) for p, e in got["zoo/lora-add"].items()] == [("zoo/base-llama", "adapter")]
    for copy in ("zoo/base-llama-fp16", "zoo/wide-expert-copy-1-bf16"):
        assert [(p, e.relation) for p, e in got[copy].items()] == [(declared[copy][0], "quantized")]
    assert all(e.evidence and 0 < e.confidence <= 1 for e in edges)


def test_cli_evaluate_on_the_zoo_beats_both_baselines(zoo_atlas: Path, tmp_path: Path) -> None:
    db = tmp_path / "atlas.duckdb"
    shutil.copy(zoo_atlas, db)
    r = CliRunner().invoke(app, ["infer", "--db", str(db), "--weights", "--evaluate", "--hide", "0.9"])
    assert r.exit_code == 0, r.output
    methods = json.loads(r.output)["methods"]
    atlas = methods["atlas"]
    assert atlas["accuracy"] >= 0.85 and atlas["children_exact"] >= 0.8
    assert atlas["accuracy"] > max(methods["nearest_earlier"]["accuracy"], methods["mother"]["accuracy"])
    assert atlas["per_relation"]["merge"]["accuracy"] >= 0.9
