"""Model page `/model/<id>`: card facts, parents and children with evidence, nearest kin, licence path."""

from __future__ import annotations

import json
from typing import Any

import dash
from dash import Input, Output, State, callback, dcc, html

from app import data, get_source
from app.components import HUB_URL, fact_table, model_link, notice, rows_table
from app.figures import build_layer_chart

dash.register_page(
    __name__, path="/model", path_template="/model/<model_id>", title="Model · Hub Atlas", name="Model"
)

CARD_KEYS = 15  # front-matter keys shown on the model page
FACTS = (
    "author",
    "created_at",
    "last_modified",
    "downloads",
    "likes",
    "library_name",
    "pipeline_tag",
    "license",
    "gated",
    "architecture",
    "model_type",
    "num_parameters",
    "languages",
    "datasets",
    "source",
)


def layout(model_id: str | None = None, **_: Any) -> html.Div:
    if not model_id:
        return html.Div([html.H1("Models"), notice("Type a model id in the search box to open its page.")])
    model_id = model_id.strip("/")
    page = get_source().read(lambda con: model_page_data(con, model_id))
    if page is None:
        return html.Div([html.H1(model_id), notice(f"No model {model_id!r} in this atlas.", "error")])
    facts, ups, downs, n_down, kin, licences, has_kinship, root = page
    links = (
        [html.A("Hub page ↗", href=f"{HUB_URL}/{model_id}", target="_blank", id="model-hub-link")]
        if facts and facts["source"] in ("hub", "snapshot")
        else []
    )
    if root:
        links.append(dcc.Link("Family tree", href=f"/family/{root}", id="model-family-link"))
    links.append(dcc.Link("Merge partners", href=f"/merge/{model_id}"))
    return html.Div(
        [
            html.H1(model_id, id="model-title"),
            html.Div(links, className="links"),
            html.Div(
                [
                    html.Div(
                        [
                            html.H2("Facts"),
                            fact_table(facts, FACTS)
                            if facts
                            else notice(
                                "Not stored: a parent named by others (deleted, private or not crawled)."
                            ),
                        ]
                    ),
                    html.Div(
                        [
                            html.H2("Licence path"),
                            licence_view(licences),
                            html.H2("Card metadata"),
                            card_view((facts or {}).get("card")),
                        ]
                    ),
                ],
                className="columns",
            ),
            html.H2(f"Parents ({len(ups)})"),
            rows_table(
                ups,
                ["id", "relation", "origin", "confidence", "merge_weight", "evidence"],
                id_="model-parents",
            )
            if ups
            else notice("No parent known: a root of its family."),
            html.H2(f"Children ({n_down:,})"),
            rows_table(downs, ["id", "relation", "origin", "confidence", "downloads"], id_="model-children")
            if downs
            else notice("No children known."),
            html.H2("Nearest kin by weights"),
            kin_view(model_id, kin, has_kinship),
        ]
    )


def model_page_data(con: Any, model_id: str) -> tuple[Any, ...] | None:
    """Everything the model page shows, in one read; None when the id is not a node of the atlas."""
    if not data.model_exists(con, model_id):
        return None
    return (
        data.model_facts(con, model_id),
        data.parents(con, model_id),
        data.children(con, model_id, limit=100),
        data.count_children(con, model_id),
        data.nearest_kin(con, model_id),
        data.licence_path(con, model_id),
        data.has_table_rows(con, "kinship"),
        data.family_root_of(con, model_id),
    )


def licence_view(licences: list[dict[str, Any]]) -> html.Div:
    items = [
        html.Li(
            [
                model_link(r["id"]),
                f" — {r['license'] or 'licence unknown'}" + (f" ({r['relation']})" if r["relation"] else ""),
            ]
        )
        for r in licences
    ]
    distinct = {r["license"] for r in licences if r["license"]}
    note = (
        "No licence stored along the path."
        if not distinct
        else "One licence along the whole path."
        if len(distinct) == 1
        else f"Licences change along the path: {', '.join(sorted(distinct))}."
    )
    return html.Div([html.Ol(items), html.Div(note, className="stats")])


def card_view(card: dict[str, Any] | None) -> Any:
    """The card's front matter (what the author declared), long values shortened."""
    if not card:
        return notice("No card metadata stored (no README front matter, or it did not parse).")
    rows = []
    for key, value in list(card.items())[:CARD_KEYS]:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        rows.append(html.Tr([html.Th(key), html.Td(text if len(text) <= 160 else text[:160] + "…")]))
    return html.Table(html.Tbody(rows), className="facts", id="model-card")


def kin_view(model_id: str, kin: list[dict[str, Any]], has_kinship: bool) -> html.Div:
    if not kin:
        text = (
            "No kinship for this model yet: it has no sampled weights in common with others (run `hubatlas sample` and `hubatlas kinship`)."
            if has_kinship
            else "No kinship computed in this atlas yet: run `hubatlas sample` then `hubatlas kinship`."
        )
        return notice(text)
    return html.Div(
        [
            rows_table(
                kin,
                ["id", "cosine", "pearson", "l2", "sign_conflict", "topk_overlap", "reference"],
                id_="model-kin",
            ),
            html.Div(
                [
                    html.Span("Per-layer difference with "),
                    dcc.Dropdown(
                        id="model-kin-select",
                        options=[r["id"] for r in kin],
                        value=kin[0]["id"],
                        clearable=False,
                        style={"width": "420px"},
                    ),
                ],
                className="controls",
                style={"marginTop": "0.6rem"},
            ),
            dcc.Store(id="model-id", data=model_id),
            html.Div(id="model-layers"),
        ]
    )


def layer_chart(model_id: str, other: str | None) -> Any:
    """The per-layer chart for a kin pair, or a sentence when no per-layer profile is stored."""
    if not other:
        return notice("Pick a model to compare.")
    layers = get_source().read(lambda con: data.kinship_layers(con, model_id, other))
    if not layers:
        return notice(f"No per-layer profile stored for {model_id} and {other}.")
    return dcc.Graph(figure=build_layer_chart(layers, model_id, other), config={"displaylogo": False})


@callback(Output("model-layers", "children"), Input("model-kin-select", "value"), State("model-id", "data"))
def show_layers(other: str | None, model_id: str) -> Any:
    return layer_chart(model_id, other)
