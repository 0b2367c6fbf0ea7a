"""`hubatlas import` of real Hub dumps."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
from typer.testing import CliRunner

from atlas.cli import app

runner = CliRunner()


def _import(path: Path, db: Path) -> str:
    result = runner.invoke(app, ["import", str(path), "--db", str(db), "--quiet"])
    assert result.exit_code == 0, result.output
    return result.stdout


def _tables(db: Path) -> dict[str, list]:
    con = duckdb.connect(str(db), read_only=True)
    out = {
        t: con.execute(
            f"SELECT * EXCLUDE (crawled_at) FROM {t} ORDER BY ALL"
            if t == "models"
            else f"SELECT * FROM {t} ORDER BY ALL"
        ).fetchall()
        for t in ("models", "edges", "tags", "cards", "flags")
    }
    con.close()
    return out


def test_import_trees_then_query_descendants(real_data: Path, db_path: Path) -> None:
    out = _import(real_data / "hub-trees-2025" / "models.jsonl.gz", db_path)
    assert "imported 1,496 models" in out
    result = runner.invoke(
        app,
        [
            "sql",
            "SELECT count(*) AS n FROM descendants('meta-llama/Llama-2-7b-chat-hf')",
            "--db",
            str(db_path),
            "-f",
            "json",
        ],
    )
    assert json.loads(result.stdout)[0]["n"] > 50
    before = _tables(db_path)
    _import(real_data / "hub-trees-2025" / "models.jsonl.gz", db_path)
    assert _tables(db_path) == before


def test_import_dependency_network(real_data: Path, db_path: Path) -> None:
    _import(real_data / "hub-dependency-network-2025", db_path)
    con = duckdb.connect(str(db_path), read_only=True)
    n_edges = con.execute("SELECT count(*) FROM lineage").fetchone()[0]
    relations = dict(con.execute("SELECT relation, count(*) FROM lineage GROUP BY ALL").fetchall())
    con.close()
    assert n_edges > 27000
    assert set(relations) <= {"finetune", "quantized", "merge", "adapter"} and relations["quantized"] > 1000


def test_bad_lines_are_skipped_with_a_warning(tmp_path: Path, db_path: Path) -> None:
    dump = tmp_path / "dump.jsonl.gz"
    with gzip.open(dump, "wt") as f:
        f.write(json.dumps({"info": {"id": "a/base", "tags": []}}) + "\n")
        f.write("{not json\n")
        f.write(json.dumps({"info": {"tags": []}}) + "\n")
        f.write(
            json.dumps({"info": {"id": "a/child", "cardData": {"base_model": "a/base"}}, "readme": None})
            + "\n"
        )
    result = runner.invoke(app, ["import", str(dump), "--db", str(db_path), "--quiet"])
    assert result.exit_code == 0
    assert "dump.jsonl.gz:2" in result.stderr and "dump.jsonl.gz:3" in result.stderr
    assert "imported 2 models" in result.stdout


def test_unknown_path_is_a_clear_error(tmp_path: Path, db_path: Path) -> None:
    result = runner.invoke(app, ["import", str(tmp_path / "missing.jsonl"), "--db", str(db_path)])
    assert result.exit_code == 2
    assert "missing.jsonl" in result.stderr and not db_path.exists()
