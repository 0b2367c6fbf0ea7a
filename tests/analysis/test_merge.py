"""Merge advice on a real atlas of the small zoo (scanned, sampled, kinship), through the library and the CLI."""

from __future__ import annotations

import itertools
import json
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from analysis.merge import METHOD_RULES, choose_method, suggest
from analysis.merge_candidates import MergeAdviceError, find_candidates
from analysis.merge_methods import MERGE_METHODS, apply_method
from analysis.zoo import TASKS, evaluate, load_state
from atlas.cli import app
from atlas.db import connect

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def atlas(zoo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small zoo scanned, sampled and with kinship: the database `hubatlas suggest` reads."""
    db = tmp_path_factory.mktemp("merge") / "atlas.duckdb"
    for args in (["scan", str(zoo_dir)], ["sample", "--all"], ["kinship", "--device", "cpu"]):
        out = runner.invoke(app, [*args, "--db", str(db), "-q"])
        assert out.exit_code == 0, out.output
    return db


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models evaluate fastest on one thread, and the suite shares the machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def atlas_copy(atlas: Path, tmp_path: Path) -> Path:
    """A private copy of the atlas file, for tests that change it (samples stay where they are)."""
    dest = tmp_path / "atlas.duckdb"
    shutil.copy(atlas, dest)
    return dest


def _truth(zoo_dir: Path) -> dict[str, dict]:
    return {m["id"]: m for m in json.loads((zoo_dir / "lineage.json").read_text())["models"]}


def test_candidates_share_a_base_and_leave_out_family_and_copies(atlas: Path) -> None:
    con = connect(atlas, read_only=True)
    pool = find_candidates(con, "zoo/expert-copy-1")
    partners = {p.partner.id for p in pool.pairs}
    # own ancestors and descendants, quantized copies, adapters and the other architecture never appear
    for never in ("zoo/base-llama", "zoo/expert-copy-1-rotate", "zoo/merge-linear-copy-reverse",
                  "zoo/expert-copy-1-fp16", "zoo/expert-sort-1-bf16", "zoo/lora-sort", "zoo/wide-expert-sort-1"):  # fmt: skip
        assert never not in partners
    assert {"zoo/expert-sort-1", "zoo/expert-sort-2", "zoo/expert-copy-2"} <= partners
    assert {p.base for p in pool.pairs} == {"zoo/base-llama"}
    assert (
        pool.excluded["ancestor or descendant"] >= 3 and pool.excluded["copy (quantized or converted)"] >= 1
    )
    con.close()


def test_following_the_advice_gains_more_than_a_random_partner(
    atlas: Path, zoo_dir: Path, one_thread: None
) -> None:
    """Really merge every zoo expert with each of its candidates, as advised: the top pick gains more."""
    truth = _truth(zoo_dir)
    con = connect(atlas, read_only=True)
    states: dict[str, dict] = {}

    def state(m: str) -> dict:
        return states.setdefault(m, load_state(zoo_dir / m))

    wins, top, average = [], [], []
    for q in sorted(m for m, e in truth.items() if e["kind"] == "finetune"):
        try:
            ranked = suggest(con, q, k=50, write=False).suggestions
        except MergeAdviceError:  # an expert whose card hides its parent has no known common ancestor
            continue
        gains = []
        for s in ranked:
            tasks = sorted(set(truth[q]["tasks"]) | set(truth[s.partner]["tasks"] or TASKS))
            merged = apply_method(s.method, state(s.base), [state(q), state(s.partner)])
            gains.append(statistics.mean(evaluate(merged, t) - truth[q]["scores"][t] for t in tasks))
        if len(gains) >= 3:
            wins.append(gains[0] > statistics.median(gains))
            top.append(gains[0])
            average.append(statistics.mean(gains))
    con.close()
    assert len(wins) >= 6
    assert sum(wins) > len(wins) / 2, wins  # the top pick beats the median candidate for most experts
    assert (
        statistics.mean(top) > 1.2 * statistics.mean(average) > 0
    )  # and gains clearly more than a random one


def test_suggest_stores_ranked_rows_the_merge_page_reads(atlas_copy: Path) -> None:
    from app.data import merge_suggestions, models_with_suggestions

    con = connect(atlas_copy)
    result = suggest(con, "zoo/expert-sort-1", k=4)
    rows = merge_suggestions(con, "zoo/expert-sort-1")
    assert [r["rank"] for r in rows] == [1, 2, 3, 4] and len(result.suggestions) == 4
    assert [r["partner"] for r in rows] == [s.partner for s in result.suggestions]
    assert all(r["score"] >= n["score"] for r, n in itertools.pairwise(rows))
    top = rows[0]
    assert top["base"] == "zoo/base-llama" and top["method"] in {r.method for r in METHOD_RULES} | {"linear"}
    assert top["reasons"][0].startswith("shares base zoo/base-llama (")
    assert any("cos" in r for r in top["reasons"]) and any("licence" in r for r in top["reasons"])
    assert yaml.safe_load(top["config_yaml"])["merge_method"] == top["method"]
    assert models_with_suggestions(con) == ["zoo/expert-sort-1"]
    suggest(con, "zoo/expert-sort-1", k=2)  # a re-run replaces the model's rows
    assert len(merge_suggestions(con, "zoo/expert-sort-1")) == 2
    con.close()


def test_licence_conflict_is_flagged_and_ranked_down_not_dropped(atlas_copy: Path) -> None:
    con = connect(atlas_copy)
    before = {s.partner: s for s in suggest(con, "zoo/expert-copy-1", k=50, write=False).suggestions}
    con.execute("UPDATE models SET license = 'gpl-3.0' WHERE id = 'zoo/expert-copy-1'")
    con.execute("UPDATE models SET license = 'llama3' WHERE id = 'zoo/expert-sort-1'")
    after = {s.partner: s for s in suggest(con, "zoo/expert-copy-1", k=50, write=False).suggestions}
    con.close()
    assert after.keys() == before.keys()
    flagged = after["zoo/expert-sort-1"]
    assert "licence conflict: gpl-3.0 allows no added restrictions, llama3 adds them" in flagged.reasons
    assert flagged.score < before["zoo/expert-sort-1"].score
    assert "licence conflict" not in " ".join(after["zoo/expert-sort-2"].reasons)


def test_method_follows_sign_conflicts() -> None:
    high = METHOD_RULES[0]
    assert choose_method({"sign_conflict": high.threshold + 0.01, "cosine": 0.1})[0] == high.method
    low_method, why = choose_method({"sign_conflict": 0.02, "cosine": 0.1})
    assert low_method != high.method and "2% sign conflicts" in why
    assert choose_method({"sign_conflict": 0.5}, has_reference=False)[0] == "linear"


def test_cli_prints_reasons_and_writes_a_yaml_mergekit_reads(atlas_copy: Path, tmp_path: Path) -> None:
    out_yml = tmp_path / "merge.yml"
    res = runner.invoke(
        app, ["suggest", "zoo/expert-copy-1", "-k", "3", "--yaml", str(out_yml), "--db", str(atlas_copy)]
    )
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith("merge partners for zoo/expert-copy-1 (")
    assert lines[1].startswith("  1. ") and "shares base zoo/base-llama" in lines[2]
    cfg = yaml.safe_load(out_yml.read_text())
    first = lines[1].split()[1]
    assert [m["model"] for m in cfg["models"]][-1].endswith(first)  # local folders of the zoo models
    assert Path(cfg["models"][0]["model"]).is_dir()
    forced = runner.invoke(app, ["suggest", "zoo/expert-copy-1", "--method", "dare_ties", "--yaml", str(out_yml),
                                 "--db", str(atlas_copy), "-f", "json"])  # fmt: skip
    assert forced.exit_code == 0, forced.output
    assert {s["method"] for s in json.loads(forced.stdout)["suggestions"]} == {"dare_ties"}
    assert yaml.safe_load(out_yml.read_text())["merge_method"] == "dare_ties"


def test_top_k_merge_yaml_merges_all_partners_on_their_common_base(atlas_copy: Path, tmp_path: Path) -> None:
    out_yml = tmp_path / "topk.yml"
    res = runner.invoke(app, ["suggest", "zoo/expert-rotate-1", "-k", "3", "--top-k-merge", "--yaml", str(out_yml),
                              "--db", str(atlas_copy), "-f", "json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    cfg = yaml.safe_load(out_yml.read_text())
    partners = [s["partner"] for s in json.loads(res.stdout)["suggestions"]]
    assert (
        len(cfg["models"]) == 4
        and "base zoo/base-llama: their nearest common ancestor" in out_yml.read_text()
    )
    if MERGE_METHODS[cfg["merge_method"]].needs_base:
        assert cfg["base_model"].endswith("zoo/base-llama")
    assert [Path(m["model"]).parts[-2:] for m in cfg["models"][1:]] == [tuple(p.split("/")) for p in partners]
    assert cfg["merge_method"] != "slerp"


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("zoo/nope", "error: zoo/nope: no such model in the atlas"),
        ("zoo/unsampled", "error: zoo/unsampled: no weight sample (scheme default); run `hubatlas sample --model zoo/unsampled`"),
        ("zoo/lora-add", "error: zoo/lora-add: a LoRA adapter; merge advice needs full weights"),
        ("zoo/base-llama-fp16", "error: zoo/base-llama-fp16: a quantized copy of zoo/base-llama; ask for the partners of zoo/base-llama (merge the original, then quantize the merge)"),
        ("zoo/base-wide", "error: zoo/base-wide: no merge candidates among"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_naming_the_model(atlas_copy: Path, model: str, message: str) -> None:
    con = duckdb.connect(str(atlas_copy))
    con.execute("INSERT INTO models (id, source) VALUES ('zoo/unsampled', 'zoo')")
    con.close()
    res = runner.invoke(app, ["suggest", model, "--db", str(atlas_copy)])
    assert res.exit_code == 1
    assert res.stderr.startswith(message) and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "Traceback" not in res.output
    with pytest.raises(MergeAdviceError, match=model):
        suggest(connect(atlas_copy, read_only=True), model, write=False)


def test_unknown_method_missing_database_and_no_model_are_refused(atlas: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["suggest", "zoo/expert-copy-1", "--method", "soup", "--db", str(atlas)])
    assert res.exit_code == 2 and "unknown method 'soup'" in res.stderr
    missing = tmp_path / "none.duckdb"
    res = runner.invoke(app, ["suggest", "zoo/expert-copy-1", "--db", str(missing)])
    assert res.exit_code == 1 and f"{missing}: no such database" in res.stderr and not missing.exists()
    res = runner.invoke(app, ["suggest", "--db", str(atlas)])
    assert res.exit_code == 2 and "name one model, or pass --all" in res.stderr


def test_evolve_prints_a_rising_curve_and_writes_it(atlas: Path, tmp_path: Path, one_thread: None) -> None:
    out = tmp_path / "curve.json"
    res = runner.invoke(app, ["evolve", "--rounds", "2", "-k", "3", "--db", str(atlas), "--json", str(out)])
    assert res.exit_code == 0, res.output
    curve = json.loads(out.read_text())
    assert curve["family"] == "zoo/base-llama" and [r["round"] for r in curve["rounds"]] == [0, 1, 2]
    assert all(r["merges"] >= 3 for r in curve["rounds"][1:])  # 3 pairs of the top 3, then exploration
    assert curve["rounds"][-1]["best"] > curve["rounds"][0]["best"]  # merging beat every zoo model
    assert curve["best_recipe"].count("(") >= 1 and "best model: " in res.stdout
    bad = runner.invoke(app, ["evolve", "--family", "zoo/expert-copy-1", "--db", str(atlas)])
    assert bad.exit_code == 1 and "zoo/expert-copy-1: not the root of a zoo family" in bad.stderr


def test_suggest_reads_only_the_database_and_loads_no_torch(atlas: Path) -> None:
    code = (
        "import sys; from analysis.merge import suggest; from atlas.db import connect; "
        f"suggest(connect({str(atlas)!r}, read_only=True), 'zoo/expert-copy-1', write=False); "
        "print(sorted(m for m in ('torch', 'dash', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_suggest_all_fills_the_merge_page_for_every_model_with_candidates(atlas_copy: Path) -> None:
    from app.data import models_with_suggestions

    con = duckdb.connect(str(atlas_copy))  # advice an earlier run stored for a model that now gets none
    con.execute(
        "INSERT INTO merge_suggestions (model_id, partner, rank, score) VALUES ('zoo/base-llama-fp16', 'zoo/expert-copy-1', 1, 0.5)"
    )
    con.close()
    res = runner.invoke(app, ["suggest", "--all", "-k", "2", "--db", str(atlas_copy)])
    assert res.exit_code == 0, res.output
    con = connect(atlas_copy, read_only=True)
    stored = set(models_with_suggestions(con, limit=100))
    n_sampled = con.execute("SELECT count(*) FROM weight_samples WHERE status = 'ok'").fetchone()[0]
    per_model = dict(con.execute("SELECT model_id, count(*) FROM merge_suggestions GROUP BY 1").fetchall())
    con.close()
    assert (
        res.stdout.strip()
        == f"suggestions stored for {len(stored)} models ({n_sampled - len(stored)} without candidates)"
    )
    assert {"zoo/expert-copy-1", "zoo/expert-sort-1", "zoo/wide-expert-copy-1"} <= stored
    assert not stored & {"zoo/base-llama", "zoo/lora-copy"}  # every llama model descends from the base
    assert "zoo/base-llama-fp16" not in stored  # a declared quantized copy: its original gets the advice
    assert set(per_model.values()) <= {1, 2}
