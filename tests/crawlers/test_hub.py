"""The Hub crawler end to end against the replay Hub, with the real huggingface_hub HTTP stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from atlas import db
from atlas.cli import app
from crawlers.hub import CrawlConfig, CrawlStats, _default_bundle_fn, crawl
from crawlers.hub_client import HubClient, RetryConfig
from tests.hub.server import ReplayHub

pytestmark = pytest.mark.network

REPO = Path(__file__).resolve().parents[2]
PHI2, LLAMA2, BLOOM = "microsoft/phi-2", "meta-llama/Llama-2-7b", "bigscience/bloom"
FAST = RetryConfig(base_wait=0.01, max_wait=0.05, timeout=5)
TABLES = {
    "models": "SELECT * EXCLUDE (crawled_at) FROM models ORDER BY id",
    "tags": "SELECT * FROM tags ORDER BY ALL",
    "cards": "SELECT * FROM cards ORDER BY ALL",
    "edges": "SELECT * FROM edges ORDER BY ALL",
    "files": "SELECT * FROM files ORDER BY ALL",
    "flags": "SELECT * FROM flags ORDER BY ALL",
    "evals": "SELECT * FROM evals ORDER BY ALL",
}


def _parents(info: dict[str, Any]) -> set[str]:
    return {t.split(":")[-1] for t in info["tags"] if t.startswith("base_model:")}


def _roots(records: list[dict[str, Any]]) -> list[str]:
    ids = {r["info"]["id"] for r in records}
    return [r["info"]["id"] for r in records if not _parents(r["info"]) & ids]


def _descendants(records: list[dict[str, Any]], root: str, depth: int | None = None) -> set[str]:
    out, frontier, level = {root}, {root}, 0
    while frontier and (depth is None or level < depth):
        frontier = {r["info"]["id"] for r in records if _parents(r["info"]) & frontier} - out
        out |= frontier
        level += 1
    return out


def _snapshot(path: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {name: con.execute(sql).fetchall() for name, sql in TABLES.items()}
    finally:
        con.close()


def _crawl(path: Path, hub: ReplayHub, config: CrawlConfig, **kw: Any) -> CrawlStats:
    con = db.connect(path)
    try:
        return crawl(con, HubClient(hub.url, retry=kw.pop("retry", FAST)), config, **kw)
    finally:
        con.close()


@pytest.mark.slow
def test_crawl_all_families_stores_every_declared_edge_within_budget(
    replay_hub: ReplayHub, hub_records: list, db_path: Path
) -> None:
    roots = _roots(hub_records)
    assert len(roots) == 20
    stats = _crawl(db_path, replay_hub, CrawlConfig(roots=tuple(roots)))
    print(f"\n{stats.models} models, {stats.requests} requests, {stats.requests_per_model:.4f} per model")
    assert stats.models == len(hub_records) and stats.errors == 0
    assert stats.requests == replay_hub.total_requests  # the crawler counts every request it makes
    assert stats.requests_per_model <= 0.25
    assert set(replay_hub.counts) <= {"list", "info"}
    con = db.connect(db_path, read_only=True)
    lineage = set(con.execute("SELECT child, parent FROM lineage").fetchall())
    assert con.execute("SELECT count(*) FROM models").fetchall()[0][0] == len(hub_records)
    con.close()
    tagged = {(r["info"]["id"], p) for r in hub_records for p in _parents(r["info"])}
    assert tagged <= lineage
    bundle = _default_bundle_fn()
    declared = {(e.child, e.parent) for r in hub_records for e in bundle(r["info"]).edges}
    assert declared - lineage == set()


def test_recrawl_of_unchanged_families_only_lists_and_changes_nothing(
    replay_hub: ReplayHub, db_path: Path
) -> None:
    config = CrawlConfig(roots=(PHI2, LLAMA2), page_size=100)
    first = _crawl(db_path, replay_hub, config)
    before = _snapshot(db_path)
    con = duckdb.connect(str(db_path), read_only=True)
    stamp = con.execute("SELECT max(crawled_at) FROM models").fetchall()
    con.close()
    replay_hub.reset_counts()
    second = _crawl(db_path, replay_hub, config)
    assert (second.models, second.written, second.unchanged) == (first.models, 0, first.models)
    assert set(replay_hub.counts) <= {"list", "info"} and replay_hub.counts["info"] == 2
    assert second.requests == first.requests
    assert _snapshot(db_path) == before
    con = duckdb.connect(str(db_path), read_only=True)
    assert con.execute("SELECT max(crawled_at) FROM models").fetchall() == stamp
    con.close()


@pytest.mark.slow
def test_sigkill_mid_crawl_resumes_to_the_same_database(replay_hub: ReplayHub, tmp_path: Path) -> None:
    killed, reference = tmp_path / "killed.duckdb", tmp_path / "reference.duckdb"
    args = ["--root", PHI2, "--root", LLAMA2, "--root", BLOOM, "--page-size", "20", "-q"]
    cmd = [sys.executable, "-m", "atlas", "crawl", *args, "--endpoint", replay_hub.url, "--db", str(killed)]
    replay_hub.add_fault(r"^/api/models", "slow", times=None, delay=0.05)
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while replay_hub.total_requests < 8 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    partial = _snapshot(killed)["models"]
    assert 0 < len(partial) < 300  # it stopped mid-way, with whole pages stored
    replay_hub.clear_faults()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "[resumed]" in done.stdout
    _crawl(reference, replay_hub, CrawlConfig(roots=(PHI2, LLAMA2, BLOOM), page_size=20))
    assert _snapshot(killed) == _snapshot(reference)


def test_faults_are_retried_and_a_broken_model_is_recorded(replay_hub: ReplayHub, db_path: Path) -> None:
    phi2_listing = r"filter=base_model:microsoft/phi-2&"
    replay_hub.add_fault(phi2_listing, "429", times=2, retry_after=0)
    replay_hub.add_fault(phi2_listing, "500", times=1)
    replay_hub.add_fault(phi2_listing, "truncate", times=1)
    replay_hub.add_fault(phi2_listing, "slow", times=1, delay=1.0)  # longer than the client's timeout
    replay_hub.add_fault(r"filter=base_model:meta-llama/Llama-2-7b&", "500", times=None)
    retry = RetryConfig(base_wait=0.01, max_wait=0.05, timeout=0.5)
    stats = _crawl(
        db_path, replay_hub, CrawlConfig(roots=(PHI2, LLAMA2, "nobody/missing-model")), retry=retry
    )
    assert stats.retries >= 5
    con = db.connect(db_path, read_only=True)
    stored = {r[0] for r in con.execute("SELECT id FROM models").fetchall()}
    flags = dict(con.execute("SELECT model_id, detail FROM flags WHERE flag = 'fetch_error'").fetchall())
    con.close()
    assert {PHI2, LLAMA2} <= stored and len(stored) > 290  # phi-2's family came through the faults
    assert "500" in flags[LLAMA2] and "404" in flags["nobody/missing-model"]
    assert {item for item, _ in stats.failed} == {f"model:{LLAMA2}", "seed:root:nobody/missing-model"}


def test_depth_limit_author_and_search(replay_hub: ReplayHub, hub_records: list, tmp_path: Path) -> None:
    def stored(path: Path) -> set[str]:
        con = duckdb.connect(str(path), read_only=True)
        ids = {r[0] for r in con.execute("SELECT id FROM models").fetchall()}
        con.close()
        return ids

    _crawl(tmp_path / "d1.duckdb", replay_hub, CrawlConfig(roots=(LLAMA2,), depth=1))
    assert stored(tmp_path / "d1.duckdb") == _descendants(hub_records, LLAMA2, depth=1)
    assert _descendants(hub_records, LLAMA2) > _descendants(hub_records, LLAMA2, depth=1)
    stats = _crawl(tmp_path / "lim.duckdb", replay_hub, CrawlConfig(roots=(PHI2,), limit=50, page_size=30))
    assert stats.models == 50 and len(stored(tmp_path / "lim.duckdb")) == 50
    _crawl(tmp_path / "author.duckdb", replay_hub, CrawlConfig(author="unsloth"))
    expected = {r["info"]["id"] for r in hub_records if r["info"]["id"].startswith("unsloth/")}
    assert stored(tmp_path / "author.duckdb") == expected
    _crawl(tmp_path / "search.duckdb", replay_hub, CrawlConfig(search="r1-1776"))
    expected = {r["info"]["id"] for r in hub_records if "r1-1776" in r["info"]["id"].lower()}
    assert stored(tmp_path / "search.duckdb") == expected and expected
    replay_hub.reset_counts()
    stats = _crawl(tmp_path / "all.duckdb", replay_hub, CrawlConfig(all_models=True, page_size=500))
    assert stats.models == len(hub_records) and dict(replay_hub.counts) == {"list": 3}


def test_children_counts_per_relation_are_accepted(hub_records: list, db_path: Path) -> None:
    with ReplayHub(records=hub_records, children_counts="dict") as hub:
        stats = _crawl(db_path, hub, CrawlConfig(roots=(LLAMA2,)))
        assert stats.models == len(_descendants(hub_records, LLAMA2))
        # leaves (count 0) get no listing of their own
        assert hub.counts["list"] < stats.models / 4


def test_cards_reads_readmes_once(replay_hub: ReplayHub, hub_records: list, db_path: Path) -> None:
    family = _descendants(hub_records, BLOOM)
    readmes = {r["info"]["id"]: r["readme"] for r in hub_records if r["info"]["id"] in family and r["readme"]}
    stats = _crawl(db_path, replay_hub, CrawlConfig(roots=(BLOOM,), cards=True))
    assert stats.models == len(family) and readmes
    con = db.connect(db_path, read_only=True)
    with_text = {r[0] for r in con.execute("SELECT model_id FROM cards WHERE text IS NOT NULL").fetchall()}
    lengths = dict(con.execute("SELECT id, card_length FROM models").fetchall())
    con.close()
    assert with_text == set(readmes)
    assert all(lengths[m] is not None for m in readmes)
    assert all(lengths[m] is None for m in family - set(readmes))
    replay_hub.reset_counts()
    _crawl(db_path, replay_hub, CrawlConfig(roots=(BLOOM,), cards=True))
    assert replay_hub.counts["resolve"] == 0


def test_crawl_command(replay_hub: ReplayHub, db_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app, ["crawl", "--root", BLOOM, "--endpoint", replay_hub.url, "--db", str(db_path), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "per model" in result.stdout and "errors" in result.stdout
    nothing = runner.invoke(app, ["crawl", "--db", str(db_path)])
    assert nothing.exit_code == 2 and len(nothing.stderr.strip().splitlines()) == 1


def test_token_is_sent_but_never_stored_or_printed(
    replay_hub: ReplayHub, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "hf_" + "x" * 34
    monkeypatch.setenv("HF_TOKEN", secret)
    monkeypatch.delenv("HF_HUB_DISABLE_IMPLICIT_TOKEN")
    from huggingface_hub import constants  # read at import time: undo the sandbox's switch here too

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", False)
    args = ["crawl", "--root", BLOOM, "--root", "nobody/missing", "--endpoint", replay_hub.url, "-q"]
    result = CliRunner().invoke(app, [*args, "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    assert replay_hub.log and all(e.authorized for e in replay_hub.log)
    assert "nobody/missing" in result.stderr and secret not in result.output + result.stderr
    con = duckdb.connect(str(db_path), read_only=True)
    for table in ("models", "flags", "crawl_state", "cards"):
        dump = str(con.execute(f"SELECT * FROM {table}").fetchall())
        assert secret not in dump, table
    con.close()


def test_cards_read_lineage_files_a_listing_does_not_carry(tmp_path: Path, db_path: Path) -> None:
    """config.json `_name_or_path` and adapter_config.json state a parent that the card leaves out."""
    repos = tmp_path / "repos"
    ft, lora = repos / "acme" / "tuned", repos / "acme" / "tuned-lora"
    for folder in (ft, lora):
        folder.mkdir(parents=True)
        (folder / "README.md").write_text("---\nlicense: mit\n---\n# no base_model here\n")
    (ft / "config.json").write_text(json.dumps({"_name_or_path": "org/base-7b", "model_type": "llama"}))
    (lora / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "acme/tuned"}))
    with ReplayHub(repo_dirs=[repos]) as hub:
        _crawl(db_path, hub, CrawlConfig(author="acme"))  # listing data only: no parent known
        con = db.connect(db_path, read_only=True)
        assert con.execute("SELECT count(*) FROM lineage").fetchone() == (0,)
        con.close()
        _crawl(db_path, hub, CrawlConfig(author="acme", cards=True))
    con = db.connect(db_path, read_only=True)
    rows = con.execute("SELECT child, parent, relation, origin FROM lineage ORDER BY child").fetchall()
    con.close()
    assert rows == [
        ("acme/tuned", "org/base-7b", "unknown", "config"),
        ("acme/tuned-lora", "acme/tuned", "adapter", "adapter_config"),
    ]
