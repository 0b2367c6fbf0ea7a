"""`hubatlas layout` and `hubatlas serve`: the atlas layout and the web app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from atlas.cli import ANALYSE_PANEL, EXPLORE_PANEL, DbOpt, QuietOpt, app, fail
from atlas.config import resolve_db_path
from atlas.db import AtlasDBError


@app.command("layout", rich_help_panel=ANALYSE_PANEL)
def layout_command(
    db: DbOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Recompute even when the stored layout is current.")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Precompute the 2-D positions of every model for the atlas page (the `layout` table).

    Run it after `hubatlas crawl`, `import` or `scan`; `hubatlas serve` runs it by itself on start when the
    table is empty or stale (its node count differs from the `nodes` view). Takes seconds for 30k models.

    Example: `hubatlas layout --db atlas.duckdb`
    """
    import time

    from analysis.layout import layout_is_stale, write_layout
    from atlas import db as atlas_db

    path = resolve_db_path(db)
    if not path.exists():
        raise fail(f"{path}: no such database (run `hubatlas crawl`, `import` or `demo` first)")
    try:
        con = atlas_db.connect(path)
    except AtlasDBError as e:
        raise fail(str(e)) from e
    try:
        if not force and not layout_is_stale(con):
            if not quiet:
                typer.echo("layout is current; nothing to do (use --force to recompute)")
            return
        start = time.perf_counter()
        n = write_layout(con)
    finally:
        con.close()
    typer.echo(f"laid out {n:,} models in {time.perf_counter() - start:.1f} s")


def ensure_layout(path: Path, *, quiet: bool = False) -> None:
    """Compute the layout when it is empty or stale and the file is free; otherwise say why not."""
    from analysis.layout import layout_is_stale, write_layout
    from atlas import db as atlas_db

    try:
        con = atlas_db.connect(path)
    except AtlasDBError as e:
        typer.secho(f"warning: layout not checked, {e}", err=True, fg="yellow")
        return
    try:
        if layout_is_stale(con):
            n = write_layout(con)
            if not quiet:
                typer.echo(f"laid out {n:,} models for the atlas page")
    finally:
        con.close()


@app.command("serve", rich_help_panel=EXPLORE_PANEL)
def serve_command(
    db: DbOpt = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.", min=1, max=65535)] = 8050,
    quiet: QuietOpt = False,
) -> None:
    """Serve the atlas web app (read-only): atlas, families, models, merge advice and SQL.

    The app reads a private snapshot of the database, so a crawl or analysis may write the file while it
    serves; new data shows once the writer has committed and closed the file.

    Example: `hubatlas serve --db atlas.duckdb --port 8050`
    """
    serve_database(resolve_db_path(db), host=host, port=port, quiet=quiet)


def serve_database(path: Path, *, host: str = "127.0.0.1", port: int = 8050, quiet: bool = False) -> None:
    """Lay out the atlas if needed, then serve the app on `path` until Ctrl-C (also used by `demo`)."""
    import atexit
    import signal
    import sys

    if not path.exists():
        raise fail(f"{path}: no such database (run `hubatlas crawl`, `import` or `demo` first)")
    import socket

    with socket.socket() as probe:  # say so in one line before any work when the port is taken
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server itself binds
            probe.bind((host, port))
        except OSError as e:
            raise fail(f"cannot listen on {host}:{port} ({e.strerror or e})") from e
    ensure_layout(path, quiet=quiet)
    from app import create_app

    dash_app = create_app(path)
    source = dash_app.server.config["HUBATLAS_SOURCE"]
    atexit.register(source.close)  # remove the private snapshot copies on exit
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a plain `kill` exits through atexit too
    try:
        source.snapshot()
    except AtlasDBError as e:
        raise fail(str(e)) from e
    typer.echo(f"Hub Atlas on http://{host}:{port}/  (database {path}; Ctrl-C stops)")
    dash_app.run(host=host, port=port, debug=False)
