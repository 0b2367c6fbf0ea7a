"""`hubatlas layout` and `hubatlas serve` on the command line."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from atlas import db
from atlas.cli import app
from tests.app.fixtures import build_small_atlas

runner = CliRunner()


def test_layout_fills_the_table_then_reports_it_current(db_path: Path) -> None:
    build_small_atlas(db_path, layout=False)
    first = runner.invoke(app, ["layout", "--db", str(db_path)])
    assert first.exit_code == 0, first.output
    assert "laid out 49 models" in first.stdout
    con = db.connect(db_path, read_only=True)
    assert con.execute("SELECT count(*) FROM layout").fetchone()[0] == 49
    con.close()
    again = runner.invoke(app, ["layout", "--db", str(db_path)])
    assert "layout is current" in again.stdout
    forced = runner.invoke(app, ["layout", "--db", str(db_path), "--force"])
    assert "laid out 49 models" in forced.stdout


def test_layout_and_serve_name_a_missing_database(tmp_path: Path) -> None:
    for command in (["layout"], ["serve", "--port", "8999"]):
        result = runner.invoke(app, [*command, "--db", str(tmp_path / "missing.duckdb")])
        assert result.exit_code == 1
        assert "missing.duckdb: no such database" in result.stderr
    assert not (tmp_path / "missing.duckdb").exists()


def test_help_of_serve_has_an_example() -> None:
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0 and "Example:" in result.stdout and "--port" in result.stdout


def test_serve_names_a_port_already_taken(db_path: Path) -> None:
    import socket

    build_small_atlas(db_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = runner.invoke(app, ["serve", "--db", str(db_path), "--port", str(port), "--quiet"])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
