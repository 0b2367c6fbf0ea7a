"""`hubatlas demo --no-serve`: the README's main job, end to end on the small zoo."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from atlas.cli import app
from atlas.db import connect, query_dicts

pytestmark = pytest.mark.slow


def test_demo_sets_up_every_page_s_data(zoo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    shutil.copytree(zoo_dir, out / "zoo")  # the demo reuses a zoo it finds
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--no-serve", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "demo set up in" in result.output and "warning" not in result.output
    truth = {m["id"]: m for m in json.loads((zoo_dir / "lineage.json").read_text())["models"]}
    con = connect(out / "atlas.duckdb", read_only=True)

    def one(sql: str) -> object:
        return query_dicts(con, sql)[0]["n"]

    try:
        assert one("SELECT count(*) AS n FROM models") == len(truth)
        assert one("SELECT count(*) AS n FROM layout") == len(truth)
        # Every model but the two bases has a parent again, declared or inferred.
        assert one("SELECT count(DISTINCT child) AS n FROM lineage") == len(truth) - 2
        # Adapters join their base's kin; each model with merge candidates has ranked partners.
        assert one("SELECT count(*) AS n FROM nearest_kin WHERE model_id = 'zoo/lora-copy'") > 0
        assert one("SELECT count(DISTINCT model_id) AS n FROM merge_suggestions") >= 10
    finally:
        con.close()
