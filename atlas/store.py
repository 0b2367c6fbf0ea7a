"""Writing crawled facts: a batch of model bundles replaces what was stored for those models, atomically."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import duckdb

from atlas.db import delete_for_models, transaction, upsert
from atlas.records import DECLARED_ORIGINS, ModelBundle


def write_bundles(
    con: duckdb.DuckDBPyConnection,
    bundles: Sequence[ModelBundle],
    *,
    also: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
) -> int:
    """Store a page of models in one transaction; a crash loses at most this page.

    A model's declared facts (tags, card, declared edges, files, flags, card evals) are replaced as a
    whole, so a re-crawl never leaves stale rows; inferred edges written by analysis are kept.
    Tensors are replaced only for bundles that carry them (a metadata crawl does not read headers).
    `also(con)` runs inside the same transaction (a crawler's resume-state update for this page).
    """
    if not bundles:
        if also is not None:
            with transaction(con):
                also(con)
        return 0
    ids = [b.model.id for b in bundles]
    with_tensors = [b.model.id for b in bundles if b.tensors]
    with transaction(con):
        for table, column in (("tags", "model_id"), ("cards", "model_id"), ("files", "model_id"),
                              ("flags", "model_id")):  # fmt: skip
            delete_for_models(con, table, column, ids)
        con.execute(
            "DELETE FROM edges WHERE child IN (SELECT unnest(?)) AND origin IN (SELECT unnest(?))",
            [ids, sorted(DECLARED_ORIGINS)],
        )
        con.execute(
            "DELETE FROM evals WHERE model_id IN (SELECT unnest(?)) AND origin IN ('model-index', 'zoo')",
            [ids],
        )
        delete_for_models(con, "tensors", "model_id", with_tensors)
        upsert(con, "models", [b.model for b in bundles])
        upsert(con, "tags", _dedup(t for b in bundles for t in b.tags))
        upsert(con, "cards", [b.card for b in bundles if b.card is not None])
        upsert(con, "edges", _dedup_edges(e for b in bundles for e in b.edges))
        upsert(con, "files", _dedup(f for b in bundles for f in b.files))
        upsert(con, "flags", _dedup_flags(f for b in bundles for f in b.flags))
        upsert(
            con, "evals", _dedup_key(((e.model_id, e.task, e.metric), e) for b in bundles for e in b.evals)
        )
        upsert(con, "tensors", _dedup(t for b in bundles for t in b.tensors))
        if also is not None:
            also(con)
    return len(bundles)


def stored_shas(con: duckdb.DuckDBPyConnection, ids: Iterable[str]) -> dict[str, str | None]:
    """The stored `sha` of each of `ids` that is in the database (to skip unchanged models)."""
    ids = list(ids)
    if not ids:
        return {}
    rows = con.execute("SELECT id, sha FROM models WHERE id IN (SELECT unnest(?))", [ids]).fetchall()
    return dict(rows)


def _dedup(items: Iterable) -> list:
    return list(dict.fromkeys(items))


def _dedup_key(pairs: Iterable) -> list:
    return list(dict(pairs).values())


def _dedup_edges(edges: Iterable) -> list:
    # Primary key (child, parent, origin): keep the first evidence of each.
    out: dict = {}
    for e in edges:
        out.setdefault((e.child, e.parent, e.origin), e)
    return list(out.values())


def _dedup_flags(flags: Iterable) -> list:
    out: dict = {}
    for f in flags:
        key = (f.model_id, f.flag)
        if key in out and f.detail and out[key].detail != f.detail:
            out[key] = type(f)(f.model_id, f.flag, f"{out[key].detail}; {f.detail}")
        else:
            out.setdefault(key, f)
    return list(out.values())
