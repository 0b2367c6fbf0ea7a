"""Family page `/family/<root>`: one tree, top-down, relation colours, declared vs inferred, time slider."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import dash
from dash import Input, Output, State, callback, dcc, html

from app import data, get_source, model_href
from app.components import notice
from app.figures import MORE_PREFIX, build_family_figure, layout_tree

dash.register_page(
    __name__, path="/family", path_template="/family/<root>", title="Family · Hub Atlas", name="Family"
)


def layout(root: str | None = None, **_: Any) -> html.Div:
    source = get_source()
    if not root:
        biggest = source.read(data.largest_families)
        return html.Div(
            [
                html.H1("Families"),
                html.Ul(
                    [
                        html.Li(dcc.Link(f"{r} ({n:,} model{'' if n == 1 else 's'})", href=f"/family/{r}"))
                        for r, n in biggest
                    ]
                ),
            ]
            if biggest
            else [html.H1("Families"), notice("No families yet: the atlas is empty or has no layout.")]
        )
    tree = source.read(lambda con: data.family_tree(con, root))
    if tree is None:
        return html.Div([html.H1(root), notice(f"No model {root!r} in this atlas.", "error")])
    months = growth_months([n["created_at"] for n in tree.nodes])
    marks = {
        i: m.strftime("%Y-%m")
        for i, m in enumerate(months)
        if i % max(1, len(months) // 8) == 0 or i == len(months) - 1
    }
    return html.Div(
        [
            html.H1(["Family of ", dcc.Link(root, href=model_href(root))]),
            html.Div(
                f"{len(tree.nodes):,} models, {len(tree.edges):,} lineage edges. Solid lines are declared "
                "(card, tags, configs); dashed lines are inferred, labelled with their confidence.",
                className="stats",
            ),
            dcc.Store(id="family-root", data=root),
            html.Div(
                [
                    html.Span("Show at most"),
                    dcc.Input(
                        id="family-fan", type="number", min=1, max=500, value=25, style={"width": "5em"}
                    ),
                    html.Span("leaf children per parent (the rest fold into “+N more”)"),
                ],
                className="controls",
            ),
            html.Div(
                [
                    html.Span(f"Grown until {months[-1]:%Y-%m}" if months else "", id="family-time-label"),
                    html.Div(
                        dcc.Slider(
                            id="family-time",
                            min=0,
                            max=max(len(months) - 1, 0),
                            step=1,
                            value=max(len(months) - 1, 0),
                            marks=marks,
                            allow_direct_input=False,
                        ),
                        style={} if months else {"display": "none"},
                    ),
                    notice("No creation dates stored, so the family cannot be replayed over time.")
                    if not months
                    else None,
                ],
                style={"maxWidth": "900px"},
            ),
            dcc.Graph(
                id="family-graph",
                figure=family_figure(root, months[-1] if months else None, 25),
                style={"height": "72vh"},
                config={"displaylogo": False, "scrollZoom": True},
            ),
        ]
    )


def growth_months(dates: list[datetime | None]) -> list[datetime]:
    """Month ends from the first to the last creation date: the time slider's steps."""
    known = sorted(d for d in dates if d is not None)
    if not known:
        return []
    months = []
    y, m = known[0].year, known[0].month
    while (y, m) <= (known[-1].year, known[-1].month):
        ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
        months.append(datetime(ny, nm, 1) - timedelta(microseconds=1))  # last instant of the month
        y, m = ny, nm
    return months


def family_figure(root: str, until: datetime | None, fan_limit: int | None) -> Any:
    tree = get_source().read(lambda con: data.family_tree(con, root))
    if tree is None:
        return dash.no_update
    return build_family_figure(layout_tree(tree, until=until, fan_limit=max(1, fan_limit or 25)), root)


def family_view(root: str, step: int | None, fan_limit: int | None) -> tuple[Any, str]:
    """The tree as it stood at slider step `step` (a month), and the label naming that month."""
    tree = get_source().read(lambda con: data.family_tree(con, root))
    if tree is None:
        return dash.no_update, ""
    months = growth_months([n["created_at"] for n in tree.nodes])
    until = months[min(max(step or 0, 0), len(months) - 1)] if months and step is not None else None
    layout = layout_tree(tree, until=until, fan_limit=max(1, fan_limit or 25))
    label = f"Grown until {until:%Y-%m}: {len(layout.positions):,} shown" if until else ""
    return build_family_figure(layout, root), label


@callback(
    Output("family-graph", "figure"),
    Output("family-time-label", "children"),
    Input("family-time", "value"),
    Input("family-fan", "value"),
    State("family-root", "data"),
    prevent_initial_call=True,
)
def update_family(step: int | None, fan_limit: int | None, root: str) -> tuple[Any, str]:
    return family_view(root, step, fan_limit)


@callback(
    Output("url", "href", allow_duplicate=True), Input("family-graph", "clickData"), prevent_initial_call=True
)
def open_clicked(click: dict[str, Any] | None) -> str:
    for point in (click or {}).get("points", []):
        node = point.get("customdata")
        if isinstance(node, str) and not node.startswith(MORE_PREFIX):
            return model_href(node)
    return dash.no_update
