"""Opening the atlas database: read-write with the schema applied, or read-only and sandboxed."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple, fields, is_dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import duckdb

SCHEMA_VERSION = 1
_MAX_PARAMS = 8000  # bound parameters per INSERT statement in `upsert`


class AtlasDBError(RuntimeError):
    """A database problem, with a message that names the file, table or model involved."""


def schema_sql() -> str:
    """The DDL of `atlas/schema.sql`."""
    return files("atlas").joinpath("schema.sql").read_text(encoding="utf-8")


def connect(path: str | os.PathLike[str], *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the database; read-write opens create it and apply the schema.

    DuckDB lets one process hold a file read-write and then no other process may open it, so keep
    write connections short-lived (one command) and open the app's connections read-only.
    """
    path = Path(path)
    if read_only and not path.exists():
        raise AtlasDBError(f"{path}: no such database (run `hubatlas crawl`, `import` or `demo` first)")
    try:
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as e:
        raise AtlasDBError(f"{path}: cannot open ({_first_line(e)})") from e
    if not read_only:
        migrate(con)
    return con


def connect_sandboxed(path: str | os.PathLike[str]) -> duckdb.DuckDBPyConnection:
    """A read-only connection for untrusted SQL: no file or network access, settings locked."""
    con = connect(path, read_only=True)
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Apply `schema.sql` (idempotent) and record the schema version."""
    try:
        con.execute(schema_sql())
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP)"
        )
        con.execute("INSERT INTO schema_version VALUES (?, now()) ON CONFLICT DO NOTHING", [SCHEMA_VERSION])
    except duckdb.Error as e:
        raise AtlasDBError(f"schema migration failed: {_first_line(e)}") from e


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """A transaction that commits on success and rolls back on any exception (Ctrl-C included)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def upsert(con: duckdb.DuckDBPyConnection, table: str, rows: Sequence[Any]) -> int:
    """Insert dataclass records into `table`, replacing rows with the same primary key.

    The dataclass field names are the column names. Returns the number of rows written. Rows must have
    distinct keys (within one statement DuckDB keeps the first of two rows with the same key).
    """
    if not rows:
        return 0
    first = rows[0]
    if not is_dataclass(first):
        raise TypeError(f"upsert into {table} expects dataclass records, got {type(first).__name__}")
    columns = [f.name for f in fields(first)]
    row_sql = "(" + ", ".join("?" for _ in columns) + ")"
    # Many rows per statement: DuckDB's executemany runs one statement per row, ~40x slower.
    per_chunk = max(1, _MAX_PARAMS // len(columns))
    try:
        for start in range(0, len(rows), per_chunk):
            chunk = rows[start : start + per_chunk]
            sql = f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES " + ", ".join(
                [row_sql] * len(chunk)
            )
            con.execute(sql, [v for r in chunk for v in _to_params(astuple(r))])
    except duckdb.Error as e:
        raise AtlasDBError(f"writing {len(rows)} rows to {table} failed: {_first_line(e)}") from e
    return len(rows)


def delete_for_models(con: duckdb.DuckDBPyConnection, table: str, column: str, ids: Iterable[str]) -> None:
    """Delete the rows of `table` whose `column` is one of `ids` (before re-inserting a model's facts)."""
    ids = list(ids)
    if ids:
        con.execute(f"DELETE FROM {table} WHERE {column} IN (SELECT unnest(?))", [ids])


def query_dicts(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Run a query and return its rows as dicts."""
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _to_params(values: tuple[Any, ...]) -> list[Any]:
    return [list(v) if isinstance(v, tuple) else v for v in values]


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
