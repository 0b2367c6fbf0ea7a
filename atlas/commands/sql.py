"""`hubatlas sql`: run read-only SQL against the atlas."""

from __future__ import annotations

from typing import Annotated

import typer

from atlas.cli import EXPLORE_PANEL, DbOpt, app, fail
from atlas.config import resolve_db_path
from atlas.output import FORMATS, format_rows
from atlas.query import QueryError, run_readonly_query


@app.command("sql", rich_help_panel=EXPLORE_PANEL)
def sql_command(
    query: Annotated[str, typer.Argument(help="SQL to run (read-only; file and network access are off).")],
    db: DbOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help=f"Output: {' | '.join(FORMATS)}.")] = "table",
    max_rows: Annotated[int | None, typer.Option("--max-rows", help="Print at most this many rows.")] = None,
) -> None:
    """Run a read-only SQL query on the atlas and print the result.

    The views `lineage`, `nodes`, `roots`, `families` and the table macros `ancestors(id)`,
    `descendants(id)`, `family(id)`, `siblings(id)` are the stable interface.

    Example: `hubatlas sql "SELECT * FROM descendants('meta-llama/Llama-2-7b')" --format csv`
    """
    if fmt not in FORMATS:
        raise fail(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}", 2)
    try:
        result = run_readonly_query(resolve_db_path(db), query, max_rows=max_rows)
    except QueryError as e:
        raise fail(str(e)) from e
    typer.echo(format_rows(result.columns, result.rows, fmt))
