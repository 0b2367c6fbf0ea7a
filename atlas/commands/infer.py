"""`hubatlas infer` and `hubatlas check`: recover undocumented parents; flag declared parents weights contradict."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from atlas.cli import ANALYSE_PANEL, DbOpt, QuietOpt, app, fail
from atlas.config import resolve_db_path
from atlas.output import FORMATS, format_rows


@app.command("infer", rich_help_panel=ANALYSE_PANEL)
def infer_command(
    db: DbOpt = None,
    weights: Annotated[
        bool, typer.Option("--weights", help="Also infer from sampled weight kinship.")
    ] = False,
    evaluate: Annotated[
        bool, typer.Option("--evaluate", help="Hide declared edges, infer, print accuracy; writes nothing.")
    ] = False,
    hide: Annotated[
        float, typer.Option("--hide", min=0.0, max=1.0, help="Fraction of declarations hidden.")
    ] = 0.9,
    seed: Annotated[int, typer.Option("--seed", help="Seed of which declarations are hidden.")] = 0,
    quiet: QuietOpt = False,
) -> None:
    """Infer parents of models that declare none, from card text, repo names, upload time and weights.

    Inferred edges carry `origin` (card_text, name, weights) and a calibrated confidence; earlier
    inferred edges are replaced, declared ones never touched, and no cycle is ever stored.

    Example: `hubatlas infer --weights --evaluate --hide 0.9 --seed 1`
    """
    from analysis.infer import evaluate as run_evaluate
    from analysis.infer import run_infer
    from atlas.db import AtlasDBError, connect

    try:
        con = connect(resolve_db_path(db))
    except AtlasDBError as e:
        raise fail(str(e)) from e
    try:
        if evaluate:
            report = run_evaluate(con, hide=hide, seed=seed, weights=weights)
            if not report["hidden_children"]:
                raise fail("no declared edges to hide (with --weights: no declared child has kinship rows)")
            typer.echo(json.dumps(report, indent=2))
            return
        summary = run_infer(con, weights=weights)
    finally:
        con.close()
    if quiet:
        typer.echo(f"{summary.metadata_edges + summary.weight_edges} inferred edges")
    if not quiet:
        typer.echo(
            f"inferred {summary.metadata_edges} edges from metadata, {summary.weight_edges} from weights; "
            f"{summary.dropped_for_cycles} dropped to break cycles"
        )


@app.command("check", rich_help_panel=ANALYSE_PANEL)
def check_command(
    db: DbOpt = None,
    ratio: Annotated[
        float,
        typer.Option(
            "--ratio", help="Flag when the declared parent is this many times farther than the closest model."
        ),
    ] = 3.0,
    fmt: Annotated[str, typer.Option("--format", "-f", help=f"Output: {' | '.join(FORMATS)}.")] = "table",
) -> None:
    """List declared parents that sampled weights contradict: the declared parent is far, another model close.

    Example: `hubatlas check --ratio 3 --format csv > suspicious_parents.csv`
    """
    from analysis.infer import check
    from atlas.db import AtlasDBError, connect

    if fmt not in FORMATS:
        raise fail(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}", 2)
    try:
        con = connect(resolve_db_path(db), read_only=True)
    except AtlasDBError as e:
        raise fail(str(e)) from e
    rows = check(con, ratio=ratio)
    cols = ["child", "declared_parent", "declared_l2", "closest", "closest_l2", "ratio"]
    typer.echo(format_rows(cols, [[r[c] for c in cols] for r in rows], fmt))
