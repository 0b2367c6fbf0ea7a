"""`hubatlas lineage`: one model's ancestors and descendants as a tree, or the evidence for one edge."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from atlas.cli import EXPLORE_PANEL, DbOpt, app, fail
from atlas.config import resolve_db_path


@app.command("lineage", rich_help_panel=EXPLORE_PANEL)
def lineage_command(
    model: Annotated[str, typer.Argument(help="Model id, e.g. meta-llama/Llama-2-7b.")],
    depth: Annotated[
        int | None, typer.Option("--depth", min=1, help="Levels to show each way (default: all).")
    ] = None,
    explain: Annotated[
        str | None,
        typer.Option("--explain", help="Print every piece of evidence for the edge MODEL → this parent."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="tree | json")] = "tree",
    db: DbOpt = None,
) -> None:
    """Show a model's ancestors and descendants with relation types.

    Declared edges show their relation and where it was declared; inferred ones are marked with `?`,
    their origin (weights, card text, name, time) and confidence. `--explain PARENT` lists all
    evidence rows for one edge, best first.

    Example: `hubatlas lineage TheBloke/Llama-2-7B-GGUF --depth 2` or
    `hubatlas lineage zoo/expert-sort-1 --explain zoo/base`
    """
    from atlas.db import AtlasDBError, connect_sandboxed
    from atlas.lineage_tree import UnknownModelError, build_lineage_tree, edge_evidence, render_lineage_tree

    if fmt not in ("tree", "json"):
        raise fail(f"unknown format {fmt!r}; choose tree or json", 2)
    try:
        con = connect_sandboxed(resolve_db_path(db))
    except AtlasDBError as e:
        raise fail(str(e)) from e
    try:
        if explain:
            rows = edge_evidence(con, model, explain)
            if not rows:
                raise fail(f"no edge {model} → {explain} in the atlas")
            if fmt == "json":
                typer.echo(json.dumps(rows, default=str))
            else:
                typer.echo(f"{model} → {explain}: {len(rows)} piece(s) of evidence, best first")
                for r in rows:
                    weight = f", merge weight {r['merge_weight']}" if r["merge_weight"] is not None else ""
                    flag = f" [{r['flag']}]" if r["flag"] else ""
                    typer.echo(
                        f"  {r['relation']:<10} from {r['origin']:<14} confidence {r['confidence']:.2f}{weight}{flag}: {r['evidence'] or ''}"
                    )
            return
        try:
            tree = build_lineage_tree(con, model, depth=depth)
        except UnknownModelError as e:
            raise fail(str(e)) from e
        if fmt == "json":
            edges = [e.__dict__ for bucket in (tree.up, tree.down) for es in bucket.values() for e in es]
            typer.echo(json.dumps({"model": model, "known": tree.known, "edges": edges}))
        else:
            typer.echo(render_lineage_tree(tree))
    finally:
        con.close()
