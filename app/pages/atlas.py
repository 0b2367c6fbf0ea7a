"""Atlas page `/`: every family at once, WebGL scatter of the precomputed layout."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, callback, dcc, html

from app import data, get_source, model_href
from app.components import notice
from app.figures import build_atlas_figure

dash.register_page(__name__, path="/", title="Hub Atlas", name="Atlas")


def layout(**_: Any) -> html.Div:
    source = get_source()
    n_nodes, n_laid = source.read(data.layout_counts)
    if n_nodes == 0:
        return html.Div(
            [
                html.H1("Atlas"),
                notice(
                    "The atlas is empty: run `hubatlas crawl`, `hubatlas import` or `hubatlas demo` first."
                ),
            ]
        )
    header = [html.H1("Atlas of model families")]
    if n_laid < n_nodes:
        header.append(
            notice(
                f"The stored layout covers {n_laid:,} of {n_nodes:,} models: run `hubatlas layout` (serve does it on start)."
            )
        )
    figure = atlas_figure("relation")
    n_families = source.cached(
        "n_families", lambda con: con.execute("SELECT count(DISTINCT root) FROM layout").fetchone()[0]
    )
    return html.Div(
        [
            *header,
            html.Div(
                [
                    html.Span("Colour by"),
                    dcc.RadioItems(
                        id="atlas-color",
                        options=[{"label": v, "value": k} for k, v in data.COLOR_FIELDS.items()],
                        value="relation",
                        inline=True,
                    ),
                    html.Span(
                        f"{n_nodes:,} models in {n_families:,} families · click a point to open it",
                        className="stats",
                        id="atlas-stats",
                    ),
                ],
                className="controls",
            ),
            dcc.Graph(
                id="atlas-graph",
                figure=figure,
                config={"scrollZoom": True, "displaylogo": False},
                style={"height": "78vh"},
            ),
        ]
    )


def atlas_figure(color_by: str) -> Any:
    """The atlas figure from the cached point cloud of the current snapshot."""
    source = get_source()
    points = source.cached("atlas_points", data.atlas_points)
    edges = source.cached("atlas_edges", data.atlas_edges)
    return build_atlas_figure(points, edges, color_by if color_by in data.COLOR_FIELDS else "relation")


@callback(Output("atlas-graph", "figure"), Input("atlas-color", "value"), prevent_initial_call=True)
def recolor(color_by: str) -> Any:
    return atlas_figure(color_by)


def clicked_model(click: dict[str, Any] | None) -> str | None:
    """The model id of a clicked atlas point (edges carry no text and are ignored)."""
    for point in (click or {}).get("points", []):
        if point.get("text"):
            return point["text"]
    return None


@callback(
    Output("url", "href", allow_duplicate=True), Input("atlas-graph", "clickData"), prevent_initial_call=True
)
def open_clicked(click: dict[str, Any] | None) -> str:
    model_id = clicked_model(click)
    return model_href(model_id) if model_id else dash.no_update
