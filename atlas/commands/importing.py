"""`hubatlas import`: load a Hub dump (JSONL or edges/models CSV folder) into the atlas."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from atlas.cli import COLLECT_PANEL, DbOpt, QuietOpt, app, fail
from atlas.config import resolve_db_path


@app.command("import", rich_help_panel=COLLECT_PANEL)
def import_command(
    path: Annotated[
        Path,
        typer.Argument(
            help="A .jsonl(.gz) dump of Hub model infos, or a folder with edges.csv + models.csv."
        ),
    ],
    db: DbOpt = None,
    page_size: Annotated[
        int, typer.Option("--page-size", min=1, help="Models written per transaction.")
    ] = 500,
    quiet: QuietOpt = False,
) -> None:
    """Import a Hub dump into the database (`source='snapshot'`).

    JSONL lines are `{"info": <GET /api/models/{id} body>, "readme": <README.md or null>}` (an `id` field
    beside `info` is accepted too); declared lineage is read from card data, tags and configs exactly as a
    crawl would. A folder with `edges.csv` (source=parent, target=child, edge) and `models.csv`
    (id, type, owner, architecture) loads a lineage network. Bad lines are reported and skipped;
    re-importing the same dump changes nothing.

    Example: `hubatlas import ../shared/data/hub-trees-2025/models.jsonl.gz --db atlas.duckdb`
    """
    from atlas.db import AtlasDBError, connect
    from atlas.importer import import_bundles
    from crawlers.snapshot import SkippedLine, SnapshotError, dump_kind, iter_snapshot_bundles

    try:
        dump_kind(path)
    except SnapshotError as e:
        raise fail(str(e), 2) from e
    skipped: list[SkippedLine] = []

    def on_skip(s: SkippedLine) -> None:
        skipped.append(s)
        if len(skipped) <= 20:
            typer.secho(f"warning: {s.where}: skipped ({s.reason})", err=True, fg="yellow")

    try:
        con = connect(resolve_db_path(db))
    except AtlasDBError as e:
        raise fail(str(e)) from e
    try:
        stats = import_bundles(
            con,
            iter_snapshot_bundles(path, on_skip=on_skip),
            page_size=page_size,
            quiet=quiet,
            label=f"importing {path.name}",
        )
    finally:
        con.close()
    typer.echo(
        f"imported {stats.models:,} models, {stats.edges:,} declared edges, {stats.flags:,} flags "
        f"from {path} in {stats.seconds:.1f} s ({stats.models / max(stats.seconds, 1e-9):,.0f} models/s)"
        + (f"; skipped {len(skipped)} bad lines" if skipped else "")
    )
