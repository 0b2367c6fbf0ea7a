"""`hubatlas zoo` (build the trained model zoo) and `hubatlas scan` (register local checkpoint folders)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from atlas.cli import COLLECT_PANEL, DbOpt, LimitOpt, QuietOpt, app, fail
from atlas.config import resolve_db_path

PAGE = 64  # bundles written per transaction


@app.command("zoo", rich_help_panel=COLLECT_PANEL)
def zoo_command(
    out_dir: Annotated[
        Path, typer.Argument(help="Folder to write the zoo into (owner/name folders + lineage.json).")
    ],
    seed: Annotated[
        int, typer.Option("--seed", help="Seed: the same seed gives byte-identical weights.")
    ] = 0,
    size: Annotated[
        str,
        typer.Option(
            "--size",
            help="small (32 models, seconds) | bench (270 models, minutes) | large (48 models of ~10.5M values, 10–15 min on 2 cores).",
        ),
    ] = "small",
    quiet: QuietOpt = False,
) -> None:
    """Train a zoo of tiny Llama-style models with known lineage and write it as Hub-style folders.

    Bases pretrained on synthetic tasks, experts fine-tuned from them, checkpoint chains, LoRA adapters,
    fp16/bf16 copies and linear/TIES merges, plus `lineage.json` with the true parents and scores.

    Example: `hubatlas zoo ./zoo --seed 1 && hubatlas scan ./zoo`
    """
    from rich.progress import Progress

    from analysis.zoo import SIZES, build_zoo, plan_zoo

    if size not in SIZES:
        raise fail(f"unknown zoo size {size!r}; choose one of {', '.join(SIZES)}", 2)
    if out_dir.exists() and not out_dir.is_dir():
        raise fail(f"{out_dir}: exists and is not a folder", 2)
    with Progress(disable=quiet, transient=True) as progress:
        task = progress.add_task("training", total=len(plan_zoo(seed, size)))
        summary = build_zoo(
            out_dir, seed=seed, size=size,
            progress=lambda i, n, mid: progress.update(task, completed=i, description=mid),
        )  # fmt: skip
    rels = ", ".join(f"{k} {v}" for k, v in sorted(summary.relations.items()))
    typer.echo(
        f"zoo: {summary.n_models} models ({rels}); {summary.n_declared} declare their parents; "
        f"built in {summary.seconds:.1f} s"
    )
    typer.echo(f"ground truth: {summary.lineage_path}")


@app.command("scan", rich_help_panel=COLLECT_PANEL)
def scan_command(
    directory: Annotated[Path, typer.Argument(help="Folder of model folders (owner/name/config.json, ...).")],
    db: DbOpt = None,
    limit: LimitOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Register every Hub-style model folder under DIR: metadata, declared lineage, safetensors headers.

    Model ids are `owner/name` from the folder path; creation time is the weights file's modification
    time. Unreadable or malformed files are recorded as flags on their model; the scan goes on.

    Example: `hubatlas scan ./checkpoints --db atlas.duckdb && hubatlas sql "SELECT * FROM lineage"`
    """
    from rich.progress import Progress

    from atlas.db import connect
    from atlas.store import write_bundles
    from crawlers.local import scan

    if not directory.is_dir():
        raise fail(f"{directory}: not a folder", 2)
    con = connect(resolve_db_path(db))
    counts = {"models": 0, "edges": 0, "tensors": 0, "flags": 0}
    page = []
    try:
        with Progress(disable=quiet, transient=True) as progress:
            task = progress.add_task("scanning", total=None)
            for bundle in scan(directory, limit=limit):
                page.append(bundle)
                counts["models"] += 1
                counts["edges"] += len(bundle.edges)
                counts["tensors"] += len(bundle.tensors)
                counts["flags"] += len(bundle.flags)
                progress.update(task, advance=1, description=bundle.model.id)
                if len(page) >= PAGE:
                    write_bundles(con, page)
                    page = []
            write_bundles(con, page)
    finally:
        con.close()
    typer.echo(
        f"scanned {counts['models']} models: {counts['edges']} declared edges, "
        f"{counts['tensors']} tensors, {counts['flags']} flags"
    )
