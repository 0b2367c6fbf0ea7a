"""Writing a stream of model bundles page by page, with a progress bar (import and scan share it)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice

import duckdb

from atlas.records import ModelBundle
from atlas.store import write_bundles


@dataclass(frozen=True)
class ImportStats:
    models: int
    edges: int
    flags: int
    tensors: int
    seconds: float


def import_bundles(
    con: duckdb.DuckDBPyConnection,
    bundles: Iterable[ModelBundle],
    *,
    page_size: int = 500,
    quiet: bool = False,
    label: str = "importing",
) -> ImportStats:
    """Write `bundles` in transactions of `page_size` models; a crash loses at most the page in flight."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    start = time.perf_counter()
    models = edges = flags = tensors = 0
    iterator = iter(bundles)
    show = not quiet and sys.stderr.isatty()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        transient=True,
        disable=not show,
    ) as progress:
        task = progress.add_task(label)
        while page := list(islice(iterator, page_size)):
            write_bundles(con, page)
            models += len(page)
            edges += sum(len(b.edges) for b in page)
            flags += sum(len(b.flags) for b in page)
            tensors += sum(len(b.tensors) for b in page)
            progress.update(task, description=f"{label}: {models:,} models, {edges:,} edges, {flags:,} flags")
    return ImportStats(models, edges, flags, tensors, time.perf_counter() - start)
