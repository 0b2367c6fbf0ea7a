"""Resume state of a Hub crawl in the `crawl_state` table: a breadth-first queue that survives SIGKILL.

Items: `seed:root:{id}`, `seed:author:{name}`, `seed:search:{text}`, `seed:all` (the seeds), and
`model:{id}` for every model met (its children still to list, or done). A half-read listing keeps the
absolute URL of its next page in `cursor`. Every change is written in the transaction of the page that
caused it, so the queue and the stored models always agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb

PENDING, DONE, FAILED, SKIPPED = "pending", "done", "failed", "skipped"


@dataclass(frozen=True)
class Item:
    item: str
    depth: int
    cursor: str | None
    attempts: int

    @property
    def kind(self) -> str:
        """'root', 'author', 'search', 'all' or 'model'."""
        head = self.item.split(":", 2)
        return head[1] if head[0] == "seed" else "model"

    @property
    def value(self) -> str:
        if self.item == "seed:all":
            return ""
        return self.item.split(":", 2)[2] if self.item.startswith("seed:") else self.item.split(":", 1)[1]


def model_item(model_id: str) -> str:
    return f"model:{model_id}"


def has_pending(con: duckdb.DuckDBPyConnection, key: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM crawl_state WHERE crawl_key = ? AND status = ?", [key, PENDING]
    ).fetchall()
    return bool(row[0][0])


def reset(con: duckdb.DuckDBPyConnection, key: str, seeds: Sequence[str]) -> None:
    """Forget a finished (or abandoned) crawl and queue its seeds afresh, atomically."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM crawl_state WHERE crawl_key = ?", [key])
        enqueue(con, key, [(s, 0, PENDING, None) for s in seeds])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def next_item(con: duckdb.DuckDBPyConnection, key: str, max_attempts: int) -> Item | None:
    """The next pending item: fewest failed attempts first (so retries come last), then breadth-first."""
    rows = con.execute(
        """SELECT item, depth, cursor, attempts FROM crawl_state
           WHERE crawl_key = ? AND status = ? AND attempts < ?
           ORDER BY attempts, depth, seq LIMIT 1""",
        [key, PENDING, max_attempts],
    ).fetchall()
    return Item(rows[0][0], rows[0][1], rows[0][2], rows[0][3]) if rows else None


def known(con: duckdb.DuckDBPyConnection, key: str, model_ids: Iterable[str]) -> set[str]:
    """Which of these models this crawl has already met."""
    items = [model_item(m) for m in model_ids]
    if not items:
        return set()
    rows = con.execute(
        "SELECT item FROM crawl_state WHERE crawl_key = ? AND item IN (SELECT unnest(?))", [key, items]
    ).fetchall()
    return {r[0].split(":", 1)[1] for r in rows}


def count_models(con: duckdb.DuckDBPyConnection, key: str) -> int:
    rows = con.execute(
        "SELECT count(*) FROM crawl_state WHERE crawl_key = ? AND item LIKE 'model:%'", [key]
    ).fetchall()
    return int(rows[0][0])


def enqueue(
    con: duckdb.DuckDBPyConnection,
    key: str,
    items: Sequence[tuple[str, int, str, int | None]],
) -> None:
    """Queue (item, depth, status, children) rows in order; items already queued are left as they are."""
    if not items:
        return
    start = con.execute("SELECT coalesce(max(seq), 0) FROM crawl_state WHERE crawl_key = ?", [key]).fetchall()
    now = _now()
    rows = [[key, item, depth, status, now, start[0][0] + i + 1, children]
            for i, (item, depth, status, children) in enumerate(items)]  # fmt: skip
    for k in range(0, len(rows), 1000):  # many rows per statement: executemany is one statement per row
        chunk = rows[k : k + 1000]
        con.execute(
            "INSERT INTO crawl_state (crawl_key, item, depth, status, attempts, updated_at, seq, children) VALUES "
            + ", ".join(["(?, ?, ?, ?, 0, ?, ?, ?)"] * len(chunk))
            + " ON CONFLICT DO NOTHING",
            [v for row in chunk for v in row],
        )


def advance(con: duckdb.DuckDBPyConnection, key: str, item: str, cursor: str | None) -> None:
    """A page of `item` was stored: keep the next page's URL, or mark the item done."""
    con.execute(
        """UPDATE crawl_state SET cursor = ?, status = ?, error = NULL, updated_at = ?
           WHERE crawl_key = ? AND item = ?""",
        [cursor, PENDING if cursor else DONE, _now(), key, item],
    )


def record_failure(con: duckdb.DuckDBPyConnection, key: str, item: str, error: str, *, final: bool) -> None:
    """Count a failed attempt; a final failure leaves the item 'failed' for this crawl."""
    con.execute(
        """UPDATE crawl_state SET attempts = attempts + 1, error = ?, status = ?, updated_at = ?
           WHERE crawl_key = ? AND item = ?""",
        [error, FAILED if final else PENDING, _now(), key, item],
    )


def stop_all(con: duckdb.DuckDBPyConnection, key: str, reason: str) -> None:
    """Mark what is left as skipped (the model limit was reached)."""
    con.execute(
        "UPDATE crawl_state SET status = ?, error = ?, updated_at = ? WHERE crawl_key = ? AND status = ?",
        [SKIPPED, reason, _now(), key, PENDING],
    )


def failures(con: duckdb.DuckDBPyConnection, key: str) -> list[tuple[str, str]]:
    return [
        (r[0], r[1])
        for r in con.execute(
            "SELECT item, error FROM crawl_state WHERE crawl_key = ? AND status = ? ORDER BY seq",
            [key, FAILED],
        ).fetchall()
    ]


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
