"""Who can be merged with a model: sampled models of the same architecture and tensor shapes that share
an ancestor with it in `lineage`, with the facts the advice reads about each pair.

A candidate partner of model M:
- has a weight sample with status 'ok' (scheme given), as M must;
- has the same `architecture` and exactly the same tensor names and shapes (table `tensors`); LoRA
  adapters, whose tensors are the low-rank factors, never match a full checkpoint;
- shares an ancestor with M in `lineage`: the nearest common one (fewest generations in total) is the
  merge base θ₀;
- is not an ancestor or descendant of M (merging with one's own parent or child undoes or repeats the
  fine-tune), nor a quantized copy or format conversion of another model (the original is the partner);
- has a `kinship` row with M (computed by `hubatlas kinship`).
Every exclusion is counted, so "no candidates" can say why. M itself must hold full weights of its own: a LoRA
adapter, or a quantized copy or conversion of another model, is told to ask for (or merge into) its original.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import duckdb

from atlas.db import query_dicts

COPY_RELATIONS = ("quantized", "conversion")  # a child with this relation holds its parent's weights
LOWER_IS_BETTER = ("loss", "perplexity", "ppl", "wer", "cer", "error")  # metrics left out of quality


class MergeAdviceError(ValueError):
    """Why a model cannot get merge advice, in one line naming the model."""


@dataclass(frozen=True)
class ModelFacts:
    """What the advice needs to know about one model."""

    id: str
    architecture: str | None
    license: str | None
    location: str | None  # local folder for scanned / zoo models, else None
    dtype: str | None  # most common safetensors dtype (F32, BF16, F16)
    evals: dict[tuple[str, str], float] = field(default_factory=dict)  # (task, metric) -> value


@dataclass(frozen=True)
class PairFacts:
    """One (model, partner) pair: their merge base and kinship, from the atlas."""

    partner: ModelFacts
    base: str  # nearest common ancestor in lineage: the merge base
    base_depths: tuple[int, int]  # generations from the model and from the partner up to the base
    reference: str | None  # kinship's θ₀ (None: raw weights, no sampled common ancestor)
    pearson: float | None
    cosine: float | None
    sign_conflict: float | None
    topk_overlap: float | None
    l2: float | None


@dataclass(frozen=True)
class CandidatePool:
    """A model, its candidate partners, and how many sampled models each rule excluded."""

    model: ModelFacts
    pairs: list[PairFacts]
    ancestors: dict[str, dict[str, int]]  # model and partners -> their ancestors with generations
    excluded: dict[str, int]
    base_facts: dict[str, ModelFacts]  # merge bases that are stored models, with their evaluations


def _sampled_models(con: duckdb.DuckDBPyConnection, scheme: str) -> dict[str, dict]:
    """Sampled models with their architecture, licence, location, dtype and tensor-shape signature."""
    rows = query_dicts(
        con,
        """
        WITH sig AS (
            SELECT model_id,
                   md5(string_agg(name || ':' || CAST(shape AS VARCHAR), ',' ORDER BY name)) AS shapes,
                   bool_or(name LIKE '%lora\\_A%' ESCAPE '\\') AS adapter,
                   mode(dtype) AS dtype
            FROM tensors GROUP BY model_id
        )
        SELECT w.model_id AS id, m.architecture, m.license, m.source, m.location,
               s.shapes, coalesce(s.adapter, FALSE) AS adapter, s.dtype
        FROM weight_samples w
        JOIN models m ON m.id = w.model_id
        LEFT JOIN sig s ON s.model_id = w.model_id
        WHERE w.scheme = ? AND w.status = 'ok'
        """,
        [scheme],
    )
    return {r["id"]: r for r in rows}


def _facts(row: dict, evals: dict[str, dict[tuple[str, str], float]]) -> ModelFacts:
    local = row.get("source") in ("local", "zoo") and row.get("location")
    return ModelFacts(
        id=row["id"],
        architecture=row.get("architecture"),
        license=row.get("license"),
        location=row["location"] if local else None,
        dtype=row.get("dtype"),
        evals=evals.get(row["id"], {}),
    )


def ancestor_map(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, dict[str, int]]:
    """Each model's strict ancestors in `lineage` with the fewest generations to each (cycles terminate)."""
    rows = con.execute(
        """
        WITH RECURSIVE up(start, id, depth, path) AS (
            SELECT child, parent, 1, [child, parent] FROM lineage
            WHERE child IN (SELECT unnest(?)) AND parent <> child
            UNION ALL
            SELECT up.start, l.parent, up.depth + 1, list_append(up.path, l.parent)
            FROM up JOIN lineage l ON l.child = up.id
            WHERE NOT list_contains(up.path, l.parent)
        )
        SELECT start, id, min(depth) FROM up WHERE id <> start GROUP BY start, id
        """,
        [ids],
    ).fetchall()
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for start, anc, depth in rows:
        out[start][anc] = depth
    return out


def nearest_common_ancestor(a: dict[str, int], b: dict[str, int]) -> tuple[str, int, int] | None:
    """The common ancestor with the fewest generations in total (ties: the closer to either, then by id)."""
    common = a.keys() & b.keys()
    if not common:
        return None
    best = min(common, key=lambda x: (a[x] + b[x], max(a[x], b[x]), x))
    return best, a[best], b[best]


def _evals(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, dict[tuple[str, str], float]]:
    rows = con.execute(
        "SELECT model_id, task, metric, value FROM evals WHERE model_id IN (SELECT unnest(?)) AND value IS NOT NULL",
        [ids],
    ).fetchall()
    out: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
    for mid, task, metric, value in rows:
        if not any(w in metric.lower() for w in LOWER_IS_BETTER):
            out[mid][(task, metric)] = float(value)
    return out


def find_candidates(
    con: duckdb.DuckDBPyConnection, model_id: str, *, scheme: str = "default"
) -> CandidatePool:
    """The model's merge candidates and their facts; raises MergeAdviceError when there are none."""
    known = con.execute("SELECT 1 FROM models WHERE id = ?", [model_id]).fetchone()
    if known is None:
        raise MergeAdviceError(f"{model_id}: no such model in the atlas")
    sampled = _sampled_models(con, scheme)
    me = sampled.get(model_id)
    if me is None:
        status = con.execute(
            "SELECT status, error FROM weight_samples WHERE model_id = ? AND scheme = ?", [model_id, scheme]
        ).fetchone()
        if status is None:
            raise MergeAdviceError(
                f"{model_id}: no weight sample (scheme {scheme}); run `hubatlas sample --model {model_id}` "
                "and `hubatlas kinship` first"
            )
        raise MergeAdviceError(f"{model_id}: its weights could not be sampled ({status[0]}: {status[1]})")
    if me["adapter"]:
        raise MergeAdviceError(
            f"{model_id}: a LoRA adapter; merge advice needs full weights (merge it into its base first)"
        )
    original = con.execute(
        "SELECT parent, relation FROM lineage WHERE child = ? AND parent <> child AND relation IN (SELECT unnest(?)) "
        "ORDER BY confidence DESC NULLS LAST, parent LIMIT 1",
        [model_id, list(COPY_RELATIONS)],
    ).fetchone()
    if original is not None:
        parent, relation = original
        copy = "a quantized copy" if relation == "quantized" else "a format conversion"
        raise MergeAdviceError(
            f"{model_id}: {copy} of {parent}; ask for the partners of {parent} (merge the original, then "
            f"{'quantize' if relation == 'quantized' else 'convert'} the merge)"
        )
    excluded = dict.fromkeys(
        ("other architecture or shapes", "adapter", "copy (quantized or converted)", "no common ancestor",
         "ancestor or descendant", "no kinship row"), 0)  # fmt: skip
    same = []
    for mid, row in sampled.items():
        if mid == model_id:
            continue
        if row["adapter"]:
            excluded["adapter"] += 1
        elif row["shapes"] != me["shapes"] or row["architecture"] != me["architecture"]:
            excluded["other architecture or shapes"] += 1
        else:
            same.append(mid)
    copies = {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT child FROM lineage WHERE child IN (SELECT unnest(?)) AND relation IN (SELECT unnest(?))",
            [same, list(COPY_RELATIONS)],
        ).fetchall()
    }
    anc = ancestor_map(con, [model_id, *same])
    mine = anc.get(model_id, {})
    kin = {
        r["partner"]: r
        for r in query_dicts(
            con,
            """
            SELECT CASE WHEN a = ? THEN b ELSE a END AS partner, reference, pearson, cosine, l2,
                   sign_conflict, topk_overlap
            FROM kinship WHERE scheme = ? AND (a = ? OR b = ?)
            """,
            [model_id, scheme, model_id, model_id],
        )
    }
    kept: list[tuple[str, tuple[str, int, int]]] = []
    for mid in same:
        theirs = anc.get(mid, {})
        if mid in copies:
            excluded["copy (quantized or converted)"] += 1
        elif mid in mine or model_id in theirs:
            excluded["ancestor or descendant"] += 1
        elif (nca := nearest_common_ancestor(mine, theirs)) is None:
            excluded["no common ancestor"] += 1
        elif mid not in kin:
            excluded["no kinship row"] += 1
        else:
            kept.append((mid, nca))
    if not kept:
        why = ", ".join(f"{n} {k}" for k, n in excluded.items() if n) or "no other sampled models"
        raise MergeAdviceError(
            f"{model_id}: no merge candidates among {len(sampled) - 1} other sampled models ({why})"
        )
    bases = sorted({base for _, (base, _, _) in kept})
    # the bases' evaluations too: what the model gained over its merge base tells its own strengths
    evals = _evals(con, [model_id, *(m for m, _ in kept), *bases])
    pairs = [
        PairFacts(
            partner=_facts(sampled[mid], evals),
            base=base,
            base_depths=(dq, dc),
            reference=kin[mid]["reference"],
            pearson=kin[mid]["pearson"],
            cosine=kin[mid]["cosine"],
            sign_conflict=kin[mid]["sign_conflict"],
            topk_overlap=kin[mid]["topk_overlap"],
            l2=kin[mid]["l2"],
        )
        for mid, (base, dq, dc) in kept
    ]
    base_rows = query_dicts(
        con,
        "SELECT id, architecture, license, source, location FROM models WHERE id IN (SELECT unnest(?))",
        [bases],
    )
    return CandidatePool(
        model=_facts(me, evals), pairs=pairs, ancestors={m: anc.get(m, {}) for m in [model_id, *(m for m, _ in kept)]},
        excluded=excluded, base_facts={r["id"]: _facts(r, evals) for r in base_rows},
    )  # fmt: skip
