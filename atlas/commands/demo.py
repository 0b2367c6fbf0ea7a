"""`hubatlas demo`: the whole pipeline offline, on a freshly trained model zoo, then the app."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from atlas.cli import START_PANEL, app, fail

# Dumps under --data that the demo imports when present (the 2022 scrape is left out: 29k models
# without lineage would slow the setup and add nothing to the atlas).
DEMO_DUMPS = ("hub-trees-2025/models.jsonl.gz", "hub-dependency-network-2025")


@dataclass(frozen=True)
class DemoStep:
    label: str
    run: Callable[[], None]


def demo_steps(out: Path, db_path: Path, *, seed: int, data: Path | None, quiet: bool) -> list[DemoStep]:
    """The demo's steps, in order; each calls the same function as the command of that name."""
    from atlas.commands import app as app_cmds
    from atlas.commands import importing, infer, local, merge, weights

    zoo_dir = out / "zoo"
    steps = []
    if not (zoo_dir / "lineage.json").exists():
        steps.append(
            DemoStep(
                f"hubatlas zoo {zoo_dir} --seed {seed}",
                lambda: local.zoo_command(zoo_dir, seed=seed, size="small", quiet=quiet),
            )
        )
    steps.append(
        DemoStep(
            f"hubatlas scan {zoo_dir}",
            lambda: local.scan_command(zoo_dir, db=db_path, limit=None, quiet=quiet),
        )
    )
    for dump in DEMO_DUMPS if data else ():
        path = data / dump
        if path.exists():
            steps.append(
                DemoStep(
                    f"hubatlas import {path}",
                    lambda p=path: importing.import_command(p, db=db_path, page_size=1000, quiet=quiet),
                )
            )
    steps += [
        # Metadata first: an adapter whose base only its local folder name gives is sampled onto that base.
        DemoStep(
            "hubatlas infer",
            lambda: infer.infer_command(
                db=db_path, weights=False, evaluate=False, hide=0.9, seed=0, quiet=quiet
            ),
        ),
        DemoStep(
            "hubatlas sample --all",
            lambda: weights.sample_command(
                model=None,
                all_models=True,
                scheme="default",
                endpoint=None,
                workers=2,
                db=db_path,
                quiet=quiet,
            ),
        ),
        DemoStep(
            "hubatlas kinship",
            lambda: weights.kinship_command(
                device="auto", family=None, scheme="default", block=256, db=db_path, quiet=quiet
            ),
        ),
        DemoStep(
            "hubatlas infer --weights",
            lambda: infer.infer_command(
                db=db_path, weights=True, evaluate=False, hide=0.9, seed=0, quiet=quiet
            ),
        ),
        # Kinship again now that inferred parents are in `lineage`: pairs whose common ancestor was hidden
        # get their task vectors from it, which the merge advice reads.
        DemoStep(
            "hubatlas kinship",
            lambda: weights.kinship_command(
                device="auto", family=None, scheme="default", block=256, db=db_path, quiet=quiet
            ),
        ),
        DemoStep(
            "hubatlas suggest --all",
            lambda: merge.suggest_command(
                model=None,
                all_models=True,
                k=5,
                yaml_out=None,
                top_k_merge=False,
                method="auto",
                scheme="default",
                fmt="text",
                db=db_path,
            ),
        ),
        DemoStep("hubatlas layout", lambda: app_cmds.ensure_layout(db_path, quiet=quiet)),
    ]
    return steps


@app.command("demo", rich_help_panel=START_PANEL)
def demo_command(
    out: Annotated[Path, typer.Option("--out", help="Folder for the zoo and the database.")] = Path(
        "hubatlas-demo"
    ),
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Also import the Hub dumps in this folder (e.g. ../shared/data)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Zoo seed.")] = 0,
    host: Annotated[str, typer.Option("--host", help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to serve on.")] = 8050,
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the app when the setup is done.")
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the step summaries.")] = False,
) -> None:
    """Run Hub Atlas end to end offline, then serve the app.

    Trains a small model zoo with known lineage (about 30 models, seconds on a laptop), scans it, samples
    its weights, computes kinship, infers hidden parents, suggests merge partners, lays the atlas out and serves it. With `--data DIR` it also imports the Hub dumps found there, so real families show too.
    The database is `OUT/atlas.duckdb`, rebuilt on every run; the zoo is reused when present.

    Example: `hubatlas demo --data ../shared/data` then open http://127.0.0.1:8050/
    """
    from atlas.commands.app import serve_database

    if data is not None and not data.is_dir():
        raise fail(f"{data}: not a folder", 2)
    out.mkdir(parents=True, exist_ok=True)
    db_path = out / "atlas.duckdb"
    for stale in (db_path, db_path.with_name(db_path.name + ".wal")):
        stale.unlink(missing_ok=True)
    start = time.perf_counter()
    for step in demo_steps(out, db_path, seed=seed, data=data, quiet=quiet):
        typer.secho(f"» {step.label}", fg="cyan", err=True)
        step.run()
    typer.echo(f"demo set up in {time.perf_counter() - start:.0f} s: database {db_path}")
    typer.echo(f'query it: hubatlas sql "SELECT * FROM families" --db {db_path}')
    if serve:
        typer.echo(f"serving on http://{host}:{port}/ (Ctrl-C to stop)")
        serve_database(db_path, host=host, port=port, quiet=quiet)
