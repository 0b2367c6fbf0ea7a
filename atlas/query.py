"""Running untrusted SQL: read-only, no file or network access, row and time limits."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from atlas.db import AtlasDBError, connect_sandboxed


class QueryError(RuntimeError):
    """A query that could not run; the message is one line, fit to show a user."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool  # more rows existed than were returned


def run_readonly_query(
    db_path: Path, sql: str, *, max_rows: int | None = None, timeout_s: float | None = None
) -> QueryResult:
    """Run `sql` on a sandboxed read-only connection and fetch at most `max_rows` rows.

    A query running past `timeout_s` is interrupted and reported as an error.
    """
    try:
        con = connect_sandboxed(db_path)
    except AtlasDBError as e:
        raise QueryError(str(e)) from e
    timer = threading.Timer(timeout_s, con.interrupt) if timeout_s else None
    try:
        if timer:
            timer.start()
        cur = con.execute(sql)
        if cur.description is None:
            return QueryResult([], [], False)
        columns = [d[0] for d in cur.description]
        if max_rows is None:
            return QueryResult(columns, cur.fetchall(), False)
        rows = cur.fetchmany(max_rows + 1)
        return QueryResult(columns, rows[:max_rows], len(rows) > max_rows)
    except duckdb.InterruptException as e:
        raise QueryError(f"query stopped after {timeout_s:g} s time limit") from e
    except duckdb.Error as e:
        raise QueryError(_one_line(e)) from e
    finally:
        if timer:
            timer.cancel()
        con.close()


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:300] + ("…" if len(text) > 300 else "")
