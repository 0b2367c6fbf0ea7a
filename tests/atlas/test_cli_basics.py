"""The CLI contract: fast start, read-only SQL, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from atlas import db
from atlas.cli import app
from atlas.store import refresh_lineage

runner = CliRunner()


def _seed(path: Path) -> None:
    con = db.connect(path)
    con.execute(
        "INSERT INTO models (id, source, downloads) VALUES ('org/base', 'hub', 10), ('org/ft', 'hub', 5)"
    )
    con.execute(
        "INSERT INTO edges (child, parent, relation, origin) VALUES ('org/ft', 'org/base', 'finetune', 'tag')"
    )
    refresh_lineage(con)
    con.close()


def test_help_loads_no_torch_or_dash() -> None:
    code = "import sys; from atlas.cli import app; print(sorted(m for m in ('torch', 'dash', 'huggingface_hub') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_lists_the_demo_first_then_commands_in_data_flow_order() -> None:
    out = runner.invoke(app, ["--help"], terminal_width=120).output
    panels = [out.index(p) for p in ("Start here", "1 · Collect", "2 · Analyse", "3 · Explore")]
    assert panels == sorted(panels)
    commands = ("demo", "crawl", "import", "scan", "sample", "kinship", "infer", "suggest", "serve")
    places = [out.index(f"│ {c} ") for c in commands]
    assert places[:7] == sorted(places[:7]) and min(places[7:]) > places[6]


def test_sql_json_prints_one_array_of_rows(db_path: Path) -> None:
    _seed(db_path)
    result = runner.invoke(
        app, ["sql", "SELECT id, depth FROM descendants('org/base')", "--db", str(db_path), "-f", "json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"id": "org/ft", "depth": 1}]


def test_sql_refuses_file_access_with_one_line(db_path: Path) -> None:
    _seed(db_path)
    for query in (
        "SELECT * FROM read_csv('/etc/passwd')",
        "COPY models TO '/tmp/x.csv'",
        "ATTACH '/tmp/other.duckdb'",
    ):
        result = runner.invoke(app, ["sql", query, "--db", str(db_path)])
        assert result.exit_code == 1
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_sql_on_missing_database_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.duckdb"
    result = runner.invoke(app, ["sql", "SELECT 1", "--db", str(missing)])
    assert result.exit_code == 1
    assert "nope.duckdb" in result.stderr
    assert not missing.exists()


def test_db_defaults_to_env(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "env.duckdb"
    _seed(path)
    monkeypatch.setenv("HUBATLAS_DB", str(path))
    result = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM models", "-f", "csv"])
    assert result.stdout.strip() == "n\n2"
