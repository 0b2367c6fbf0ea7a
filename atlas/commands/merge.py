"""`hubatlas suggest` and `hubatlas evolve`: merge advice, and kinship-guided greedy merging on the zoo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from atlas.cli import EXPLORE_PANEL, DbOpt, QuietOpt, app, fail
from atlas.config import resolve_db_path

METHOD_CHOICES = ("auto", "linear", "task_arithmetic", "ties", "dare_ties", "slerp")


@app.command("suggest", rich_help_panel=EXPLORE_PANEL)
def suggest_command(
    model: Annotated[str | None, typer.Argument(help="Model id, e.g. zoo/expert-copy-1.")] = None,
    all_models: Annotated[
        bool, typer.Option("--all", help="Suggest for every sampled model (stored; prints a summary).")
    ] = False,
    k: Annotated[int, typer.Option("-k", "--top", min=1, help="How many partners to list and store.")] = 5,
    yaml_out: Annotated[
        Path | None, typer.Option("--yaml", help="Write the mergekit YAML of the top pick to this file.")
    ] = None,
    top_k_merge: Annotated[
        bool, typer.Option("--top-k-merge", help="The YAML merges the model with all k partners at once.")
    ] = False,
    method: Annotated[
        str,
        typer.Option(
            "--method", help=f"Merge method: {' | '.join(METHOD_CHOICES)} (auto: from the signals)."
        ),
    ] = "auto",
    scheme: Annotated[
        str, typer.Option("--scheme", help="Sampling scheme whose kinship to read.")
    ] = "default",
    fmt: Annotated[str, typer.Option("--format", "-f", help="text | json")] = "text",
    db: DbOpt = None,
) -> None:
    """Rank merge partners for a model, say why, and write a ready mergekit configuration.

    Partners share the model's architecture, tensor shapes and an ancestor (the merge base), and have
    weight samples and kinship; ancestors, descendants and quantized copies are left out. The score
    weighs what each partner adds on shared evaluations, what the model would give up where it is
    strongest, what an average of the two should gain on both models' strengths, how complementary the
    task vectors are and licence compatibility; the method follows the sign conflicts. Results go to
    `merge_suggestions`.

    Example: `hubatlas suggest zoo/expert-copy-1 -k 5 --yaml merge.yml && mergekit-yaml merge.yml out/`
    """
    from analysis.merge import suggest, suggest_all
    from analysis.merge_candidates import MergeAdviceError
    from atlas.db import AtlasDBError, connect

    if (model is None) == (not all_models):
        raise fail("name one model, or pass --all", 2)
    if method not in METHOD_CHOICES:
        raise fail(f"unknown method {method!r}; choose one of {', '.join(METHOD_CHOICES)}", 2)
    if fmt not in ("text", "json"):
        raise fail(f"unknown format {fmt!r}; choose text or json", 2)
    db_path = resolve_db_path(db)
    if not db_path.exists():
        raise fail(f"{db_path}: no such database (run `hubatlas demo`, or scan, sample and kinship first)")
    try:
        con = connect(db_path)
    except AtlasDBError as e:
        raise fail(str(e)) from e
    if model is None:
        try:
            done = suggest_all(con, k=k, method=method, scheme=scheme)
        finally:
            con.close()
        stored = [m for m, v in done.items() if isinstance(v, int)]
        typer.echo(
            f"suggestions stored for {len(stored)} models ({len(done) - len(stored)} without candidates)"
        )
        return
    try:
        result = suggest(con, model, k=k, method=method, scheme=scheme, top_k_merge=top_k_merge)
    except MergeAdviceError as e:
        raise fail(str(e)) from e
    finally:
        con.close()
    if yaml_out is not None:
        try:
            yaml_out.write_text(result.yaml, encoding="utf-8")
        except OSError as e:
            raise fail(f"{yaml_out}: cannot write ({e.strerror})") from e
    if fmt == "json":
        rows = [
            {
                "rank": s.rank,
                "partner": s.partner,
                "score": s.score,
                "method": s.method,
                "base": s.base,
                "reasons": list(s.reasons),
                "signals": s.signals,
            }
            for s in result.suggestions
        ]
        typer.echo(json.dumps({"model": model, "candidates": result.n_candidates, "suggestions": rows}))
        return
    typer.echo(f"merge partners for {model} ({result.n_candidates} candidates):")
    for s in result.suggestions:
        typer.echo(f"{s.rank:>3}. {s.partner}  score {s.score:.3f}  {s.method}  base {s.base}")
        typer.echo(f"     {'; '.join(s.reasons)}")
    if yaml_out is not None:
        typer.echo(f"mergekit YAML written to {yaml_out}: mergekit-yaml {yaml_out} OUT_DIR")


@app.command("evolve", rich_help_panel=EXPLORE_PANEL)
def evolve_command(
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Generations of merging.")] = 5,
    k: Annotated[int, typer.Option("-k", "--top", min=2, help="Models merged pairwise each round.")] = 3,
    family: Annotated[
        str | None, typer.Option("--family", help="Root of the zoo family to evolve (default: the largest).")
    ] = None,
    kinship: Annotated[
        bool,
        typer.Option("--kinship/--no-kinship", help="Also merge the best model with its least related one."),
    ] = True,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the curve as JSON here.")] = None,
    db: DbOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Evolve a zoo family by top-k greedy merging (Hu et al. 2024) and print the curve.

    Each round merges every pair of the k best models (mean accuracy over the zoo's tasks) onto the
    family base and evaluates the merges; with `--kinship` the best model is also merged with the model
    least related to it, which escapes the plateau plain greedy merging stalls on. Needs the zoo's
    models scanned into the database (`hubatlas demo` or `hubatlas scan ZOO_DIR`); writes nothing to it.

    Example: `hubatlas evolve --rounds 5 -k 3 --db hubatlas-demo/atlas.duckdb`
    """
    from analysis.evolve import EvolveError, evolve_zoo
    from atlas.db import AtlasDBError, connect

    try:
        con = connect(resolve_db_path(db), read_only=True)
    except AtlasDBError as e:
        raise fail(str(e)) from e
    try:
        curve = evolve_zoo(con, rounds=rounds, k=k, family=family, kinship=kinship)
    except EvolveError as e:
        raise fail(str(e)) from e
    finally:
        con.close()
    if json_out is not None:
        json_out.write_text(json.dumps(curve.as_dict(), indent=2), encoding="utf-8")
    if not quiet:
        typer.echo(f"family {curve.family}: {curve.pool_size} models, top-{k} greedy merging"
                   f"{' with kinship exploration' if kinship else ''}")  # fmt: skip
        typer.echo("round  best   top-k mean  merges  best model")
        for r in curve.rounds:
            typer.echo(f"{r.round:>5}  {r.best:.4f}  {r.top_mean:.4f}      {r.merges:>6}  {r.best_model}")
    last = curve.rounds[-1]
    typer.echo(f"best mean accuracy {curve.rounds[0].best:.4f} → {last.best:.4f} in {rounds} rounds")
    typer.echo(f"best model: {curve.recipe(last.best_model)}")
