"""`hubatlas crawl`: walk Hub family trees into the atlas, resumably."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from atlas.cli import COLLECT_PANEL, DbOpt, EndpointOpt, LimitOpt, QuietOpt, app, fail
from atlas.config import resolve_db_path, resolve_endpoint

if TYPE_CHECKING:
    import duckdb

    from crawlers.hub import CrawlConfig, CrawlStats
    from crawlers.hub_client import HubClient


@app.command("crawl", rich_help_panel=COLLECT_PANEL)
def crawl_command(
    root: Annotated[
        list[str] | None, typer.Option("--root", help="Crawl this model and its descendants (repeatable).")
    ] = None,
    author: Annotated[
        str | None, typer.Option("--author", help="Crawl the models of this user or org.")
    ] = None,
    search: Annotated[
        str | None, typer.Option("--search", help="Crawl the models whose id contains this.")
    ] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Crawl every model of the Hub.")] = False,
    depth: Annotated[
        int | None,
        typer.Option(
            "--depth", min=0, help="Levels of descendants to follow (default: all for --root, else 0)."
        ),
    ] = None,
    limit: LimitOpt = None,
    cards: Annotated[
        bool,
        typer.Option(
            "--cards", help="Also read README.md (card text and length) and adapter/mergekit files."
        ),
    ] = False,
    restart: Annotated[bool, typer.Option("--restart", help="Start over instead of resuming.")] = False,
    page_size: Annotated[
        int, typer.Option("--page-size", min=1, max=1000, help="Models per listing page.")
    ] = 1000,
    endpoint: EndpointOpt = None,
    db: DbOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Crawl Hub models and their declared lineage into the database.

    Follows `base_model:*` listings breadth-first from each `--root`; listing pages carry metadata and
    card data for many models at once, so a metadata crawl costs far less than one request per model.
    An interrupted crawl resumes where it stopped when run again; unchanged models are not rewritten.

    Example: `hubatlas crawl --root meta-llama/Llama-2-7b --depth 3 --db atlas.duckdb`
    """
    from atlas.db import AtlasDBError, connect
    from crawlers.hub import CrawlConfig
    from crawlers.hub_client import HubClient

    if not (root or author or search or all_models):
        raise fail("nothing to crawl: give --root ID, --author NAME, --search TEXT or --all", 2)
    config = CrawlConfig(
        roots=tuple(root or ()), author=author, search=search, all_models=all_models, depth=depth,
        limit=limit, cards=cards, page_size=page_size,
    )  # fmt: skip
    url = resolve_endpoint(endpoint)
    try:
        con = connect(resolve_db_path(db))
    except AtlasDBError as e:
        raise fail(str(e)) from e
    client = HubClient(url)
    try:
        stats = _run(con, client, config, restart=restart, quiet=quiet)
    except KeyboardInterrupt:
        raise fail("interrupted; run the same command again to resume", 130) from None
    finally:
        con.close()
    typer.echo(
        f"{stats.models} models ({stats.written} written, {stats.unchanged} unchanged), {stats.edges} edges, "
        f"{stats.requests} requests ({stats.requests_per_model:.3f} per model), {stats.retries} retries, "
        f"{stats.errors} errors" + (" [resumed]" if stats.resumed else "")
    )
    for item, error in stats.failed:
        typer.secho(f"failed: {item}: {error}", err=True, fg="yellow")


def _run(
    con: duckdb.DuckDBPyConnection, client: HubClient, config: CrawlConfig, *, restart: bool, quiet: bool
) -> CrawlStats:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from crawlers.hub import crawl

    if quiet:
        return crawl(con, client, config, restart=restart)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task("crawling", total=None)

        def show(s: CrawlStats) -> None:
            progress.update(
                task,
                description=f"models {s.models} · edges {s.edges} · requests {s.requests} · errors {s.errors}",
            )

        return crawl(con, client, config, restart=restart, on_progress=show)
