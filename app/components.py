"""Small layout pieces shared by the pages: notices, fact tables, model links."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dash import dcc, html

HUB_URL = "https://huggingface.co"


def notice(text: str, kind: str = "info") -> html.Div:
    """A plain sentence telling the user what is (not yet) there and how to get it."""
    return html.Div(text, className=f"notice notice-{kind}")


def model_link(model_id: str) -> dcc.Link:
    return dcc.Link(model_id, href=f"/model/{model_id}", className="model-link")


def fmt(value: Any) -> str:
    """A fact as text: thousands separators, dates without time, lists joined, blanks for missing."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "—"
    return str(value)


def fact_table(facts: dict[str, Any], keys: Sequence[str]) -> html.Table:
    rows = [html.Tr([html.Th(k.replace("_", " ")), html.Td(fmt(facts.get(k)))]) for k in keys]
    return html.Table(html.Tbody(rows), className="facts")


def rows_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], *, link: str = "id", id_: str | None = None
) -> html.Table:
    """A plain HTML table of rows; the `link` column becomes links to model pages."""
    head = html.Thead(html.Tr([html.Th(c.replace("_", " ")) for c in columns]))
    body = []
    for r in rows:
        cells = [html.Td(model_link(r[c]) if c == link and r.get(c) else fmt(r.get(c))) for c in columns]
        body.append(html.Tr(cells))
    kwargs = {"id": id_} if id_ else {}
    return html.Table([head, html.Tbody(body)], className="rows", **kwargs)
