"""Where things are: the database path, the Hub endpoint, the real-data folder."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DB = "atlas.duckdb"
HUB_ENDPOINT = "https://huggingface.co"


def resolve_db_path(db: str | os.PathLike[str] | None = None) -> Path:
    """The database file: `--db`, else env `HUBATLAS_DB`, else `./atlas.duckdb`."""
    return Path(db or os.environ.get("HUBATLAS_DB") or DEFAULT_DB)


def resolve_endpoint(endpoint: str | None = None) -> str:
    """The Hub endpoint: `--endpoint`, else env `HF_ENDPOINT`, else the Hub itself."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or HUB_ENDPOINT).rstrip("/")


def samples_dir(db_path: Path) -> Path:
    """Sampled weights live beside the database file, in `<db stem>.samples/`."""
    return db_path.with_name(db_path.stem + ".samples")
