"""Shared fixtures: a sandboxed Hugging Face environment, the real-data folder, a fresh database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.zoo_fixture"]  # the session-scoped small zoo: `zoo_dir`

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("HUBATLAS_REAL_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def hf_sandbox(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the machine's token, cache and endpoint out of every test."""
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_TOKEN", "")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.delenv("HUBATLAS_DB", raising=False)


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The folder of real Hub data beside the repository (env HUBATLAS_REAL_DATA), or skip."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real Hub data not found at {REAL_DATA} (set HUBATLAS_REAL_DATA)")
    return REAL_DATA


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A path for a fresh database file (created on first read-write open)."""
    return tmp_path / "atlas.duckdb"
