"""The app keeps serving while another process writes the database, and shows the new data afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.source import AtlasSource
from atlas.db import AtlasDBError
from tests.app.fixtures import build_small_atlas, writer_holding_lock


def count_models(source: AtlasSource) -> int:
    return source.read(lambda con: con.execute("SELECT count(*) FROM models").fetchone()[0])


def test_serves_last_snapshot_while_a_writer_holds_the_lock_then_shows_its_data(tmp_path: Path) -> None:
    db = build_small_atlas(tmp_path / "atlas.duckdb")
    source = AtlasSource(db, check_every_s=0.0, workdir=tmp_path / "snaps")
    before = count_models(source)
    # The app holds only its private copy, so a writer in another process can open the real file.
    with writer_holding_lock(db) as release:
        assert count_models(source) == before  # still served, from the last good snapshot
        assert source.last_error and "busy" in source.last_error
        release()
    assert count_models(source) == before + 1
    assert source.read(
        lambda con: con.execute("SELECT id FROM models WHERE id = 'new-org/fresh'").fetchone()
    ) == ("new-org/fresh",)
    assert source.snapshot().version == 2
    source.close()


def test_snapshot_refuses_writes_and_file_access(tmp_path: Path) -> None:
    source = AtlasSource(build_small_atlas(tmp_path / "atlas.duckdb"), workdir=tmp_path / "snaps")
    for sql in ("DELETE FROM models", "SELECT * FROM read_csv('/etc/passwd')"):
        with pytest.raises(Exception, match=r"read-only|Permission"):
            source.read(lambda con, sql=sql: con.execute(sql).fetchall())
    source.close()


def test_missing_database_is_one_clear_error(tmp_path: Path) -> None:
    source = AtlasSource(tmp_path / "nope.duckdb", workdir=tmp_path / "snaps")
    with pytest.raises(AtlasDBError, match=r"nope\.duckdb: no such database"):
        source.snapshot()
