"""The `hubatlas` command line: one Typer app; each module in `atlas/commands/` registers its commands.

Command modules import heavy packages (torch, dash, huggingface_hub) inside the command functions only,
so `hubatlas --help` starts fast.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="hubatlas",
    help="Hub Atlas: map model lineage and kinship on a model hub, and query it with SQL.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)

DbOpt = Annotated[
    Path | None,
    typer.Option(
        "--db", help="Database file. Default: env HUBATLAS_DB, else ./atlas.duckdb.", show_default=False
    ),
]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="Stop after this many models.", min=1)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar; only the final summary.")]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint", help="Hub endpoint URL. Default: env HF_ENDPOINT, else https://huggingface.co."
    ),
]
# `--help` groups the commands by the data flow
START_PANEL, COLLECT_PANEL, ANALYSE_PANEL, EXPLORE_PANEL = (
    "Start here",
    "1 · Collect",
    "2 · Analyse",
    "3 · Explore",
)
DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cuda | cpu (auto picks CUDA when present).")]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error to stderr and return the Exit to raise."""
    typer.secho(f"error: {message}", err=True, fg="red")
    return typer.Exit(code)


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """Hub Atlas: map model lineage and kinship on a model hub, and query it with SQL.

    Example: `hubatlas import ../shared/data/hub-trees-2025/models.jsonl.gz && hubatlas sql "SELECT * FROM families"`
    """
    if version:
        from atlas import __version__

        typer.echo(f"hubatlas {__version__}")
        raise typer.Exit()


# Registration order is the order of `--help`: the demo, then the data flow (collect, analyse, explore).
COMMAND_MODULES = (
    "demo",
    "crawl",
    "importing",
    "local",
    "weights",
    "infer",
    "app",
    "lineage",
    "sql",
    "merge",
)


def _register_commands() -> None:
    from atlas import commands

    found = {m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")}
    for name in [*(m for m in COMMAND_MODULES if m in found), *sorted(found - set(COMMAND_MODULES))]:
        importlib.import_module(f"atlas.commands.{name}")


_register_commands()


def main() -> None:
    """Entry point of the `hubatlas` script."""
    app()
