"""The SQL page's logic: run a user's query read-only on the current snapshot, shape it for the table."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from app import get_source
from atlas.output import format_rows
from atlas.query import QueryError, run_readonly_query

MAX_ROWS = 1000  # rows shown in the table (paged)
CSV_MAX_ROWS = 100_000  # rows in a CSV download
TIMEOUT_S = 10.0

# Example queries of the documented views and macros; {model} and {root} are filled with real ids.
EXAMPLES = {
    "Biggest families": "SELECT * FROM families ORDER BY size DESC LIMIT 20",
    "Descendants of a root": "SELECT * FROM descendants('{root}')",
    "Ancestors of a model": "SELECT * FROM ancestors('{model}')",
    "Family of a model": "SELECT * FROM family('{model}') LIMIT 100",
    "Siblings of a model": "SELECT * FROM siblings('{model}')",
    "Inferred lineage edges": "SELECT child, parent, relation, origin, confidence FROM lineage WHERE NOT declared ORDER BY confidence DESC LIMIT 100",
    "Relations across the atlas": "SELECT relation, count(*) AS edges FROM lineage GROUP BY relation ORDER BY edges DESC",
    "Deleted or uncrawled parents": "SELECT id FROM nodes WHERE placeholder LIMIT 100",
}


def example_queries(root: str | None, model: str | None) -> dict[str, str]:
    """The examples with real ids of this atlas quoted in (SQL string literals, quotes doubled)."""
    quote = lambda s: (s or "org/name").replace("'", "''")  # noqa: E731
    return {k: v.format(root=quote(root), model=quote(model)) for k, v in EXAMPLES.items()}


@dataclass(frozen=True)
class QueryView:
    """What the page shows for one run: table data and columns, a status line, or an error sentence."""

    columns: list[dict[str, str]]
    rows: list[dict[str, Any]]
    status: str
    error: str | None


def run_query_view(sql: str | None) -> QueryView:
    """Run `sql` read-only on the current snapshot; every failure becomes a one-line message."""
    if not sql or not sql.strip():
        return QueryView([], [], "", "Type a query first.")
    start = time.perf_counter()
    try:
        path = get_source().snapshot().path
        result = run_readonly_query(path, sql, max_rows=MAX_ROWS, timeout_s=TIMEOUT_S)
    except QueryError as e:
        return QueryView([], [], "", f"Query refused or failed: {e}")
    except Exception as e:  # never a traceback page: anything else is reported in one line too
        return QueryView(
            [], [], "", f"Query failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        )
    ms = (time.perf_counter() - start) * 1000
    names = _unique(result.columns)
    rows = [{n: _cell(v) for n, v in zip(names, r, strict=True)} for r in result.rows]
    more = f" (first {MAX_ROWS:,}; download CSV for more)" if result.truncated else ""
    return QueryView(
        [{"name": c, "id": n} for c, n in zip(result.columns, names, strict=True)],
        rows,
        f"{len(rows):,} rows{more} in {ms:.0f} ms",
        None,
    )


def _unique(columns: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for c in columns:
        seen[c] = seen.get(c, 0) + 1
        out.append(c if seen[c] == 1 else f"{c}_{seen[c]}")
    return out


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, str, bool)):
        return value
    return str(value)


def query_csv(sql: str | None) -> tuple[str | None, str | None]:
    """(csv text, None) for a query, or (None, error sentence)."""
    if not sql or not sql.strip():
        return None, "Type a query first."
    try:
        result = run_readonly_query(
            get_source().snapshot().path, sql, max_rows=CSV_MAX_ROWS, timeout_s=TIMEOUT_S
        )
    except QueryError as e:
        return None, f"Query refused or failed: {e}"
    except Exception as e:
        return None, f"Query failed: {type(e).__name__}"
    return format_rows(result.columns, result.rows, "csv"), None
