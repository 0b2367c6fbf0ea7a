"""Merge page `/merge/<id>`: ranked merge partners with their reasons, and the mergekit YAML."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, callback, dcc, html

from app import data, get_source
from app.components import fmt, model_link, notice

dash.register_page(
    __name__, path="/merge", path_template="/merge/<model_id>", title="Merge · Hub Atlas", name="Merge"
)


def layout(model_id: str | None = None, **_: Any) -> html.Div:
    source = get_source()
    if not model_id:
        ids = source.read(data.models_with_suggestions)
        if not ids:
            return html.Div(
                [
                    html.H1("Merge advice"),
                    notice("No merge suggestions in this atlas yet: run `hubatlas suggest ID`."),
                ]
            )
        return html.Div(
            [
                html.H1("Merge advice"),
                html.P("Models with suggested merge partners:"),
                html.Ul([html.Li(dcc.Link(i, href=f"/merge/{i}")) for i in ids]),
            ]
        )
    model_id = model_id.strip("/")
    rows = source.read(lambda con: data.merge_suggestions(con, model_id))
    head = [html.H1(["Merge partners for ", model_link(model_id)])]
    if not rows:
        known = source.read(lambda con: data.model_exists(con, model_id))
        text = (
            f"No merge suggestions for {model_id} yet: run `hubatlas suggest {model_id}`."
            if known
            else f"No model {model_id!r} in this atlas."
        )
        return html.Div([*head, notice(text, "info" if known else "error")])
    table = html.Table(
        [
            html.Thead(
                html.Tr([html.Th(c) for c in ("rank", "partner", "score", "method", "base", "reasons")])
            ),
            html.Tbody(
                [
                    html.Tr(
                        [
                            html.Td(r["rank"]),
                            html.Td(model_link(r["partner"])),
                            html.Td(fmt(r["score"])),
                            html.Td(r["method"] or "—"),
                            html.Td(r["base"] or "—"),
                            html.Td(html.Ul([html.Li(x) for x in r["reasons"]], className="reasons")),
                        ]
                    )
                    for r in rows
                ]
            ),
        ],
        className="rows",
        id="merge-table",
    )
    return html.Div(
        [
            *head,
            table,
            html.H2("mergekit configuration"),
            dcc.Store(id="merge-model", data=model_id),
            html.Div(
                [
                    html.Span("Partner"),
                    dcc.Dropdown(
                        id="merge-partner",
                        options=[r["partner"] for r in rows],
                        value=rows[0]["partner"],
                        clearable=False,
                        style={"width": "420px"},
                    ),
                    dcc.Clipboard(target_id="merge-yaml", title="Copy YAML", id="merge-copy"),
                    html.Button("Download YAML", id="merge-download-button"),
                    dcc.Download(id="merge-download"),
                ],
                className="controls",
            ),
            html.Pre(rows[0]["config_yaml"] or "", id="merge-yaml", className="yaml"),
        ]
    )


def suggestion_yaml(model_id: str, partner: str | None) -> str:
    """The stored mergekit YAML of one suggestion ('' when there is none)."""
    rows = get_source().read(lambda con: data.merge_suggestions(con, model_id))
    return next((r["config_yaml"] or "" for r in rows if r["partner"] == partner), "")


def yaml_filename(model_id: str, partner: str) -> str:
    safe = lambda s: s.replace("/", "__")  # noqa: E731
    return f"merge-{safe(model_id)}-{safe(partner)}.yml"


@callback(
    Output("merge-yaml", "children"),
    Input("merge-partner", "value"),
    State("merge-model", "data"),
    prevent_initial_call=True,
)
def show_yaml(partner: str | None, model_id: str) -> str:
    return suggestion_yaml(model_id, partner)


@callback(
    Output("merge-download", "data"),
    Input("merge-download-button", "n_clicks"),
    State("merge-partner", "value"),
    State("merge-model", "data"),
    prevent_initial_call=True,
)
def download_yaml(_: int | None, partner: str, model_id: str) -> dict[str, Any]:
    return dcc.send_string(suggestion_yaml(model_id, partner), yaml_filename(model_id, partner))
