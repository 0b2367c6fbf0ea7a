"""`hubatlas sample` and `hubatlas kinship`: sampled weights and kinship between models."""

from __future__ import annotations

from typing import Annotated

import typer

from atlas.cli import ANALYSE_PANEL, DbOpt, DeviceOpt, EndpointOpt, QuietOpt, app, fail
from atlas.config import resolve_db_path, samples_dir

REMOTE_REQUESTS_HINT = 2000  # range requests a model over HTTP above which `sample` mentions `--scheme rows`
SchemeOpt = Annotated[
    str,
    typer.Option(
        "--scheme",
        help="Sampling scheme: default (16-value segments in 256 rows, 256 ranges a matrix), rows (whole "
        "rows, ~2 ranges a matrix, for request-limited remote sampling), dense (10x default), full. "
        "Small matrices (the budget a quarter of them or more) are read whole.",
    ),
]


@app.command("sample", rich_help_panel=ANALYSE_PANEL)
def sample_command(
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Model id to sample (repeatable).")
    ] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Sample every model in the atlas.")] = False,
    scheme: SchemeOpt = "default",
    endpoint: EndpointOpt = None,
    workers: Annotated[int, typer.Option("--workers", help="Models sampled at once.", min=1)] = 4,
    db: DbOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Read a small, deterministic sample of each model's weights (local files or HTTP range requests).

    Only the safetensors headers (or, with no safetensors, a pytorch_model.bin's zip directory and state-dict
    pickle, never run) and the scheme's segments are read; each model's bytes, requests and time go
    to `weight_samples`, its sample to `<db>.samples/<scheme>/`. Bad checkpoints are recorded with
    their error and the run goes on. Hub models are read from the CDN URL that `resolve` redirects to
    (one `resolve` a file, which the Hub rate-limits), with the token huggingface_hub finds (`HF_TOKEN`,
    `hf auth login`) sent to the Hub for gated models, never to the CDN; 429 and 5xx answers are retried.

    Example: `hubatlas sample --all --scheme default --workers 8`
    """
    from rich.progress import Progress

    from analysis.samples import WeightSampleRecord, list_jobs, sample_jobs
    from analysis.schemes import get_scheme
    from atlas.db import AtlasDBError, connect

    if not model and not all_models:
        raise fail("name models with --model ID, or pass --all", 2)
    try:
        chosen = get_scheme(scheme)
    except ValueError as e:
        raise fail(str(e), 2) from e
    db_path = resolve_db_path(db)
    try:
        con = connect(db_path)
    except AtlasDBError as e:
        raise fail(str(e)) from e
    jobs, missing = list_jobs(con, None if all_models else list(model or []), endpoint=endpoint)
    for m in missing:
        typer.secho(
            f"warning: {m}: not in the atlas or no location to read from; skipped", err=True, fg="yellow"
        )
    if not jobs:
        con.close()
        what = "none of the models named" if model and not all_models else "no model in the atlas"
        raise fail(f"{what} can be sampled (add models with `hubatlas scan DIR` or `hubatlas crawl`)")
    with Progress(disable=quiet, transient=True) as progress:
        task = progress.add_task("sampling", total=len(jobs))

        def shown(row: WeightSampleRecord) -> None:
            if row.status != "ok":
                typer.secho(f"{row.status}: {row.error}", err=True, fg="yellow")
            progress.advance(task)

        try:
            done = sample_jobs(con, jobs, chosen, samples_dir(db_path), workers=workers, on_result=shown)
        finally:
            con.close()
    counts, read, total = done.counts, done.bytes_read, done.total_bytes
    # of the tensors' bytes: headers and the gaps between coalesced ranges can take a small model past 100%
    frac = f"{100 * read / total:.3g}% of the tensors' {total:,}" if total else "n/a"
    per = f"{done.requests / counts['ok']:.1f}" if counts["ok"] else "n/a"
    typer.echo(
        f"sampled {counts['ok']} models ({counts['unsupported']} unsupported, {counts['error']} errors) "
        f"with scheme {chosen.name}: read {read:,} bytes ({frac}), {per} requests per model "
        f"in {done.seconds:.1f}s"
    )
    remote = any(j.location.startswith(("http://", "https://")) for j in jobs)
    if remote and counts["ok"] and done.requests / counts["ok"] > REMOTE_REQUESTS_HINT and chosen.segment > 0:
        typer.secho(
            f"note: {done.requests // counts['ok']:,} range requests a model; over a remote Hub `--scheme rows` "
            "reads ~2 ranges a matrix instead (less faithful kinship on fine-tune and LoRA deltas; its samples "
            "are not comparable with this scheme's)",
            err=True,
            fg="yellow",
        )


@app.command("kinship", rich_help_panel=ANALYSE_PANEL)
def kinship_command(
    device: DeviceOpt = "auto",
    family: Annotated[
        str | None, typer.Option("--family", help="Only the family of this root model.")
    ] = None,
    scheme: SchemeOpt = "default",
    block: Annotated[int, typer.Option("--block", help="Models per block (bounds memory).", min=1)] = 256,
    db: DbOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Compute kinship (Pearson and cosine of deltas, L2, TIES sign conflict, top-k overlap) for all
    pairs of sampled models that share tensor shapes, plus per-layer profiles and weight kurtosis.

    Deltas are taken from each pair's nearest common ancestor in `lineage` (raw weights when none).
    Rank a model's kin with `hubatlas sql "SELECT * FROM nearest_kin WHERE model_id = '...'"`.

    Example: `hubatlas kinship --device auto --family zoo/base`
    """
    from rich.progress import Progress

    from analysis.kinship import KinshipConfig
    from analysis.kinship_run import compute_kinship
    from atlas.db import AtlasDBError, connect

    try:
        con = connect(resolve_db_path(db))
    except AtlasDBError as e:
        raise fail(str(e)) from e
    try:
        with Progress(disable=quiet, transient=True) as progress:
            task = progress.add_task("kinship", total=None)
            summary = compute_kinship(
                con, scheme=scheme, device=device, family=family, config=KinshipConfig(block=block),
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )  # fmt: skip
    except ValueError as e:
        raise fail(str(e), 2) from e
    finally:
        con.close()
    for w in summary.warnings:
        typer.secho(f"warning: {w}", err=True, fg="yellow")
    typer.echo(
        f"kinship for {summary.pairs:,} pairs of {summary.models} models in {summary.groups} shape group{'s' * (summary.groups != 1)} "
        f"on {summary.device} in {summary.seconds:.2f}s (scheme {scheme})"
    )
