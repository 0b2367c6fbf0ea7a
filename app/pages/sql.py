"""SQL page `/sql`: read-only queries on the views and macros, paged results, CSV download."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, callback, dash_table, dcc, html

from app import data, get_source
from app.components import notice
from app.sqlrun import CSV_MAX_ROWS, MAX_ROWS, TIMEOUT_S, example_queries, query_csv, run_query_view

dash.register_page(__name__, path="/sql", title="SQL · Hub Atlas", name="SQL")


def layout(**_: Any) -> html.Div:
    source = get_source()
    biggest = source.read(lambda con: data.largest_families(con, limit=1))
    root = biggest[0][0] if biggest else None
    child = source.read(lambda con: data.children(con, root, limit=1)) if root else []
    examples = example_queries(root, child[0]["id"] if child else root)
    return html.Div(
        [
            html.H1("SQL"),
            html.Div(
                "Read-only: file and network access are off; at most "
                f"{MAX_ROWS:,} rows are shown ({CSV_MAX_ROWS:,} in a CSV) and a query stops after {TIMEOUT_S:g} s. "
                "Ctrl+Enter runs the query.",
                className="stats",
            ),
            html.Div(
                [
                    html.Span("Examples"),
                    dcc.Dropdown(
                        id="sql-examples",
                        options=[{"label": k, "value": v} for k, v in examples.items()],
                        placeholder="Pick an example query…",
                        style={"width": "520px"},
                    ),
                ],
                className="controls",
            ),
            dcc.Textarea(id="sql-query", value=examples["Biggest families"], spellCheck=False),
            html.Div(
                [
                    html.Button("Run", id="sql-run", className="primary"),
                    html.Button("Download CSV", id="sql-csv"),
                    html.Span(id="sql-status", className="stats"),
                    dcc.Download(id="sql-download"),
                ],
                className="controls",
            ),
            html.Div(id="sql-error"),
            dash_table.DataTable(
                id="sql-table",
                page_size=20,
                page_action="native",
                sort_action="native",
                style_table={"overflowX": "auto"},
                style_cell={
                    "fontFamily": "ui-monospace, monospace",
                    "fontSize": "0.85rem",
                    "textAlign": "left",
                    "maxWidth": "420px",
                    "overflow": "hidden",
                    "textOverflow": "ellipsis",
                },
                style_header={"fontWeight": "600", "backgroundColor": "#f1f5f9"},
            ),
        ]
    )


@callback(Output("sql-query", "value"), Input("sql-examples", "value"), prevent_initial_call=True)
def pick_example(sql: str | None) -> str:
    return sql or dash.no_update


@callback(
    Output("sql-table", "data"),
    Output("sql-table", "columns"),
    Output("sql-status", "children"),
    Output("sql-error", "children"),
    Input("sql-run", "n_clicks"),
    State("sql-query", "value"),
    prevent_initial_call=True,
)
def run(_: int | None, sql: str | None) -> tuple[Any, ...]:
    view = run_query_view(sql)
    return view.rows, view.columns, view.status, notice(view.error, "error") if view.error else None


@callback(
    Output("sql-download", "data"),
    Output("sql-error", "children", allow_duplicate=True),
    Input("sql-csv", "n_clicks"),
    State("sql-query", "value"),
    prevent_initial_call=True,
)
def download_csv(_: int | None, sql: str | None) -> tuple[Any, Any]:
    text, error = query_csv(sql)
    if error:
        return dash.no_update, notice(error, "error")
    return dcc.send_string(text, "query.csv"), None
