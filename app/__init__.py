"""The Hub Atlas web app (Dash Pages): atlas, family, model, merge and SQL pages over a read-only snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dash
import flask
from dash import Dash, Input, Output, State, dcc, html

from app.source import AtlasSource

SOURCE_KEY = "HUBATLAS_SOURCE"


def get_source() -> AtlasSource:
    """The data source of the app serving the current request."""
    return flask.current_app.config[SOURCE_KEY]


def create_app(db_path: str | Path, *, source: AtlasSource | None = None, check_every_s: float = 1.0) -> Dash:
    """Build the Dash app reading `db_path` through a published read-only snapshot (see app.source)."""
    app = Dash(
        __name__,
        use_pages=True,
        title="Hub Atlas",
        suppress_callback_exceptions=True,
        update_title=None,
    )
    app.server.config[SOURCE_KEY] = source or AtlasSource(Path(db_path), check_every_s=check_every_s)
    app.layout = shell_layout()
    register_shell_callbacks(app)
    return app


NAV = [("Atlas", "/"), ("Families", "/family"), ("Merge", "/merge"), ("SQL", "/sql")]


def shell_layout() -> html.Div:
    """The frame of every page: title, navigation, the model search box, then the page."""
    return html.Div(
        [
            dcc.Location(id="url", refresh="callback-nav"),
            html.Header(
                [
                    html.A("Hub Atlas", href="/", className="brand"),
                    html.Nav([dcc.Link(name, href=href, className="nav-link") for name, href in NAV]),
                    dcc.Dropdown(
                        id="search-box",
                        placeholder="Search models by id…",
                        options=[],
                        searchable=True,
                        clearable=True,
                        className="search-box",
                    ),
                ],
                className="topbar",
            ),
            html.Main(dash.page_container, className="page"),
        ]
    )


def register_shell_callbacks(app: Dash) -> None:
    """The search box: options from a prefix search, choosing one opens its model page."""

    @app.callback(
        Output("search-box", "options"), Input("search-box", "search_value"), State("search-box", "value")
    )
    def search_options(text: str | None, current: str | None) -> list[dict[str, Any]]:
        return search_box_options(text, current)

    @app.callback(Output("url", "href"), Input("search-box", "value"), prevent_initial_call=True)
    def open_model(model_id: str | None) -> str:
        if not model_id:
            return dash.no_update
        return model_href(model_id)


def search_box_options(text: str | None, current: str | None) -> list[dict[str, Any]]:
    """Dropdown options for the typed text (the chosen value stays an option so it stays shown)."""
    from app import data

    ids = get_source().read(lambda con: data.search_models(con, text or "", limit=20)) if text else []
    if current and current not in ids:
        ids = [current, *ids]
    return [{"label": i, "value": i} for i in ids]


def model_href(model_id: str) -> str:
    """The shareable URL of a model page (ids keep their '/', e.g. /model/org/name)."""
    return f"/model/{model_id}"
