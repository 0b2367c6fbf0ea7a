"""Merge advice: rank a model's merge partners by a documented score, choose the merge method from the
signals, explain both in plain sentences, and write a ready mergekit configuration.

The score is a weighted sum of signals (`MERGE_SIGNALS`, weights `SCORE_WEIGHTS`), each read from the atlas:
- `best_lift`: the most the partner beats the model on any evaluation both report (`evals`: model-index
  results of cards, the zoo's measured scores), clipped at 0: the skill a merge can bring in;
- `mean_lift`: the mean of those lifts over all shared evaluations: how broadly the partner adds;
- `retention`: the partner's lift over the model on the model's own strengths (the evaluations on which the
  model beats the merge base by `STRENGTH_MARGIN`, else the one it gains most on), usually negative: an
  average lands between the two models on each task, so a partner weak where the model is strong costs it;
- `predicted_gain`: what the merge should gain the model on both models' strengths (over the base) if an
  average keeps half of each model's gain over the base (`MERGE_KEEPS`): base + ½·(both gains) − model;
- `complementarity`: 1 − |cosine| of the task vectors (kinship, deltas from the pair's common ancestor):
  orthogonal task vectors add without interfering;
- `sign_agreement`: 1 − the TIES sign-conflict rate among both models' largest deltas;
- `licence_conflict`: 1 when the licences forbid releasing the merge (flagged in the reasons, never dropped).
The weights were tuned on zoo seeds 1 and 4 and validated on others (bench/bench_merge.py, README "Merge
advice").
The method comes from `METHOD_RULES`, the first rule whose condition holds; `--method` overrides it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import duckdb

from analysis.licenses import LicenceVerdict, licence_verdict
from analysis.merge_candidates import CandidatePool, MergeAdviceError, ModelFacts, PairFacts, find_candidates
from analysis.merge_config import mergekit_yaml
from analysis.merge_methods import MERGE_METHODS, get_method
from atlas.db import transaction

Signal = Callable[["PairView"], float | None]


@dataclass(frozen=True)
class PairView:
    """A pair's facts plus what the signals derive from them (lifts on shared evaluations)."""

    facts: PairFacts
    lifts: dict[str, float]  # evaluation label -> partner − model, on a 0..1 scale
    licence: LicenceVerdict
    strengths: dict[str, float] = field(default_factory=dict)  # lifts on the model's own strengths
    predicted: float | None = None  # predicted_gain: the merge's gain on both models' strengths


STRENGTH_MARGIN = 0.1  # a model's strength: an evaluation it beats the merge base on by this much (0..1)
# share of each model's gain over the base that an average of two keeps (both task vectors halved)
MERGE_KEEPS = 0.5


def _scale(a: float, b: float) -> float:
    """Evaluations are read on a 0..1 scale: a pair reported in percent is divided by 100."""
    return 100.0 if max(abs(a), abs(b)) > 1.0 else 1.0


def shared_lifts(model: ModelFacts, partner: ModelFacts) -> dict[str, float]:
    """partner − model on every (task, metric) both report, labelled by task, on a 0..1 scale."""
    out = {}
    for key in sorted(model.evals.keys() & partner.evals.keys()):
        a, b = model.evals[key], partner.evals[key]
        out[_label(key)] = (b - a) / _scale(a, b)
    return out


def _label(key: tuple[str, str]) -> str:
    task = key[0].split("/")[-1]  # model-index tasks are "type/dataset": the dataset names it
    return task if key[1] in ("accuracy", "acc") else f"{task} ({key[1]})"


def _over_base(
    model: ModelFacts, partner: ModelFacts, base: ModelFacts | None
) -> dict[tuple[str, str], tuple[float, float, float]]:
    """(model, partner, base) on a 0..1 scale for every evaluation all three report (empty: base unknown)."""
    if base is None:
        return {}
    out = {}
    for k in sorted(model.evals.keys() & partner.evals.keys() & base.evals.keys()):
        m, p, b = model.evals[k], partner.evals[k], base.evals[k]
        scale = 100.0 if max(abs(m), abs(p), abs(b)) > 1.0 else 1.0
        out[k] = (m / scale, p / scale, b / scale)
    return out


def _strong(gains: dict[tuple[str, str], float]) -> list[tuple[str, str]]:
    """The evaluations gained on over the base by at least STRENGTH_MARGIN, or else the one gained most on."""
    return [k for k, g in gains.items() if g >= STRENGTH_MARGIN] or [max(gains, key=lambda k: gains[k])]


def strength_lifts(model: ModelFacts, partner: ModelFacts, base: ModelFacts | None) -> dict[str, float]:
    """partner − model on the model's strengths: the evaluations all three report on which the model beats
    the merge base by at least STRENGTH_MARGIN, or else the one it gains most on (empty: base unknown)."""
    trio = _over_base(model, partner, base)
    if not trio:
        return {}
    return {_label(k): trio[k][1] - trio[k][0] for k in _strong({k: m - b for k, (m, _, b) in trio.items()})}


def predicted_gain(model: ModelFacts, partner: ModelFacts, base: ModelFacts | None) -> float | None:
    """What the merge should gain the model on both models' strengths, if an average keeps MERGE_KEEPS of
    each model's gain over the base: mean over those evaluations of base + MERGE_KEEPS·(both gains) − model.
    None when the three share no evaluation."""
    trio = _over_base(model, partner, base)
    if not trio:
        return None
    strong = set(_strong({k: m - b for k, (m, _, b) in trio.items()}))
    strong |= set(_strong({k: p - b for k, (_, p, b) in trio.items()}))
    return sum(
        b + MERGE_KEEPS * (max(0.0, m - b) + max(0.0, p - b)) - m
        for k, (m, p, b) in trio.items()
        if k in strong
    ) / len(strong)


def _best_lift(p: PairView) -> float | None:
    return max(0.0, *p.lifts.values()) if p.lifts else None


def _mean_lift(p: PairView) -> float | None:
    return sum(max(0.0, v) for v in p.lifts.values()) / len(p.lifts) if p.lifts else None


def _retention(p: PairView) -> float | None:
    return sum(p.strengths.values()) / len(p.strengths) if p.strengths else None


def _predicted_gain(p: PairView) -> float | None:
    return p.predicted


def _complementarity(p: PairView) -> float | None:
    c = p.facts.cosine
    return None if c is None or p.facts.reference is None else 1.0 - abs(c)


def _sign_agreement(p: PairView) -> float | None:
    s = p.facts.sign_conflict
    return None if s is None or p.facts.reference is None else 1.0 - s


def _licence_conflict(p: PairView) -> float | None:
    return 1.0 if p.licence.verdict == "conflict" else 0.0


def _kinship(p: PairView) -> float | None:
    return p.facts.pearson


# Signals by name: (function of a pair, what it measures). An unknown signal (no shared evaluations, no
# kinship reference) contributes 0, and the reasons say it is unknown.
MERGE_SIGNALS: dict[str, tuple[Signal, str]] = {
    "best_lift": (_best_lift, "largest lift of the partner over the model on a shared evaluation"),
    "mean_lift": (_mean_lift, "mean positive lift over the shared evaluations"),
    "retention": (_retention, "mean lift of the partner on the model's own strengths (≤ 0: what it costs)"),
    "predicted_gain": (
        _predicted_gain,
        "the merge's gain on both models' strengths if it keeps half of each",
    ),
    "complementarity": (_complementarity, "1 − |cosine| of the task vectors"),
    "sign_agreement": (_sign_agreement, "1 − sign-conflict rate of the largest deltas"),
    "licence_conflict": (_licence_conflict, "1 when the licences forbid releasing the merge"),
    "kinship": (_kinship, "Pearson kinship of the task vectors (Hu et al. 2024); baseline only"),
}
# Weights of the score, tuned on zoo seeds 1 and 4 (bench/bench_merge.py --tune; figures in the README):
# `best_lift` is what predicts the measured gain most; `retention` at 0.2 separates partners that bring their
# task equally well but cost the model more of its own; `predicted_gain` at 1 adds what an average keeps of
# both models' skills (top-1 beats the median in 91% / 89% of tuning queries, against 89% / 85% without it).
# The grid's best on top-1 alone (best_lift 0.5, predicted_gain 2: 93% / 91%) was not taken: it lowers the
# per-query Spearman to 0.54. Larger kinship weights only lowered the correlation; `complementarity` at 0.01
# breaks ties and ranks pairs without shared evaluations. A licence conflict (−1) puts the pair below every
# compatible one. Signals not named weigh 0.
SCORE_WEIGHTS: dict[str, float] = {
    "best_lift": 1.0,
    "retention": 0.2,
    "predicted_gain": 1.0,
    "complementarity": 0.01,
    "licence_conflict": -1.0,
}
# The signals read from evaluations (unknown for a model whose card reports none).
EVAL_SIGNALS: tuple[str, ...] = ("best_lift", "mean_lift", "retention", "predicted_gain")


@dataclass(frozen=True)
class MethodRule:
    """Choose `method` when `signal` compares to `threshold` by `op` ('>=' or '<')."""

    method: str
    signal: str  # a PairFacts field: sign_conflict | cosine | topk_overlap
    op: str
    threshold: float
    because: str  # the reason's sentence; {value} is the signal's value


# First matching rule wins. Tuned on zoo seed 1 and confirmed on seeds 1 and 4 (bench/bench_merge.py --tune):
# averaging (linear) gained most at every sign-conflict level the zoo shows; TIES is kept for the rare pairs
# with conflicts ≥ 50%.
METHOD_RULES: tuple[MethodRule, ...] = (
    MethodRule("ties", "sign_conflict", ">=", 0.5, "{value:.0%} sign conflicts → TIES resolves them"),
    MethodRule(
        "linear", "sign_conflict", ">=", 0.0, "{value:.0%} sign conflicts → TIES not needed; linear average"
    ),
)


@dataclass(frozen=True)
class Suggestion:
    """One ranked partner: the score, the method, the reasons and the mergekit YAML."""

    model_id: str
    partner: str
    rank: int
    score: float
    method: str
    base: str
    reasons: tuple[str, ...]
    config_yaml: str
    signals: dict[str, float | None]


def pair_view(model: ModelFacts, facts: PairFacts, base: ModelFacts | None = None) -> PairView:
    """The pair's lifts (on shared evaluations and on the model's strengths over `base`) and licences."""
    return PairView(
        facts,
        shared_lifts(model, facts.partner),
        licence_verdict(model.license, facts.partner.license),
        strength_lifts(model, facts.partner, base),
        predicted_gain(model, facts.partner, base),
    )


def signals_of(view: PairView) -> dict[str, float | None]:
    return {name: fn(view) for name, (fn, _) in MERGE_SIGNALS.items()}


def score_of(signals: dict[str, float | None], weights: dict[str, float] | None = None) -> float:
    """Σ weight × signal over the weighted signals; an unknown signal counts 0."""
    w = SCORE_WEIGHTS if weights is None else weights
    return float(sum(wt * (signals.get(n) or 0.0) for n, wt in w.items()))


def choose_method(
    values: Mapping[str, float | None],
    *,
    has_reference: bool = True,
    rules: Sequence[MethodRule] = METHOD_RULES,
) -> tuple[str, str]:
    """The method for a pair from its kinship values (sign_conflict, cosine, topk_overlap) and why.

    Without a kinship reference the task-vector signals are unknown: linear, which needs no base.
    """
    if not has_reference:
        return "linear", "no sampled common ancestor for kinship → linear, which needs no task vectors"
    for rule in rules:
        value = values.get(rule.signal)
        if value is None:
            continue
        if (value >= rule.threshold) if rule.op == ">=" else (value < rule.threshold):
            return rule.method, rule.because.format(value=value)
    return "linear", "no method rule matched → linear"


def kinship_values(facts: PairFacts) -> dict[str, float | None]:
    """The kinship fields method rules may test."""
    return {"sign_conflict": facts.sign_conflict, "cosine": facts.cosine, "topk_overlap": facts.topk_overlap}


def _cos_sentence(cos: float) -> str:
    if abs(cos) < 0.2:
        return f"task vectors nearly orthogonal (cos {cos:.2f}) → complementary"
    if cos >= 0.5:
        return f"task vectors similar (cos {cos:.2f}) → overlapping skills, little to add"
    if cos <= -0.2:
        return f"task vectors opposed (cos {cos:.2f}) → they undo each other"
    return f"task vectors partly aligned (cos {cos:.2f})"


def _base_sentence(facts: PairFacts) -> str:
    dq, dc = facts.base_depths
    gens = "both fine-tuned from it" if (dq, dc) == (1, 1) else f"{dq} and {dc} generations up"
    return f"shares base {facts.base} ({gens})"


def _strength_sentence(strengths: dict[str, float]) -> str:
    tasks = ", ".join(strengths)
    mean = sum(strengths.values()) / len(strengths)
    if mean <= -0.05:
        return f"weaker on the model's own strength ({tasks}: {mean:+.2f}) → the merge gives up part of it"
    if mean >= 0.05:
        return f"stronger even on the model's own strength ({tasks}: {mean:+.2f})"
    return f"as good on the model's own strength ({tasks}: {mean:+.2f}) → little of it lost"


def reasons_of(view: PairView, method_reason: str) -> tuple[str, ...]:
    """Plain sentences: base, task vectors, sign conflicts / method, quality, own strengths, licences."""
    f = view.facts
    out = [_base_sentence(f)]
    if f.reference is None:
        out.append("kinship from raw weights (no sampled common ancestor): task-vector signals unknown")
    else:
        if f.reference != f.base:
            out.append(f"kinship measured from {f.reference} (the merge base has no sample)")
        if f.cosine is not None:
            out.append(_cos_sentence(f.cosine))
    out.append(method_reason)
    if view.lifts:
        best = max(view.lifts, key=lambda t: view.lifts[t])
        gain = view.lifts[best]
        if gain > 0:
            out.append(f"stronger on {best} (+{gain:.2f} over the model)")
        else:
            out.append(f"no better than the model on any shared evaluation ({len(view.lifts)} compared)")
    else:
        out.append(f"no shared evaluation results with {f.partner.id}: quality unknown")
    if view.strengths:
        out.append(_strength_sentence(view.strengths))
    if view.predicted is not None:
        out.append(f"expected gain {view.predicted:+.2f} on the two models' strengths (an average keeps about "
                   "half of each one's gain over the base)")  # fmt: skip
    out.append(view.licence.reason)
    return tuple(out)


def rank_pool(
    pool: CandidatePool, *, k: int | None = 5, method: str = "auto", weights: dict[str, float] | None = None
) -> list[Suggestion]:
    """Score every candidate of the pool, best first (ties by partner id), keeping the top `k` (None: all)."""
    if method != "auto":
        get_method(method)
    scored = []
    for facts in pool.pairs:
        view = pair_view(pool.model, facts, pool.base_facts.get(facts.base))
        sig = signals_of(view)
        if method == "auto":
            chosen, why = choose_method(kinship_values(facts), has_reference=facts.reference is not None)
        else:
            chosen, why = method, f"method {method} chosen by the user"
        scored.append((score_of(sig, weights), facts, view, sig, chosen, why))
    scored.sort(key=lambda s: (-s[0], s[1].partner.id))
    out = []
    for rank, (score, facts, view, sig, chosen, why) in enumerate(scored[:k] if k else scored, 1):
        base = pool.base_facts.get(facts.base, ModelFacts(facts.base, None, None, None, None))
        reasons = reasons_of(view, why)
        yaml_text = mergekit_yaml(
            MERGE_METHODS[chosen], [pool.model, facts.partner], base, header=[
                f"Merge of {pool.model.id} and {facts.partner.id} suggested by hubatlas (rank {rank}, score {score:.3f})",
                *reasons],
        )  # fmt: skip
        out.append(
            Suggestion(
                pool.model.id,
                facts.partner.id,
                rank,
                round(score, 6),
                chosen,
                facts.base,
                reasons,
                yaml_text,
                sig,
            )
        )
    return out


def top_k_yaml(pool: CandidatePool, suggestions: Sequence[Suggestion]) -> str:
    """One mergekit YAML merging the model with all given partners onto their nearest common ancestor.

    The method is the most frequent choice among the pairs, SLERP (two models only) becoming TIES when the
    pairs' sign conflicts are high and task arithmetic otherwise.
    """
    if len(suggestions) == 1:
        return suggestions[0].config_yaml
    partners = [s.partner for s in suggestions]
    common = dict(pool.ancestors.get(pool.model.id, {}))
    for p in partners:
        theirs = pool.ancestors.get(p, {})
        common = {a: d + theirs[a] for a, d in common.items() if a in theirs}
    if not common:
        raise MergeAdviceError(f"{pool.model.id}: the top {len(partners)} partners share no common ancestor")
    base_id = min(common, key=lambda a: (common[a], a))
    methods = [s.method for s in suggestions]
    method = max(sorted(set(methods)), key=methods.count)
    if MERGE_METHODS[method].max_models is not None:
        by_id = {f.partner.id: f for f in pool.pairs}
        conflicts = [by_id[p].sign_conflict or 0.0 for p in partners]
        method = "ties" if sum(conflicts) / len(conflicts) >= METHOD_RULES[0].threshold else "task_arithmetic"
    facts = {f.partner.id: f.partner for f in pool.pairs}
    base = pool.base_facts.get(base_id, ModelFacts(base_id, None, None, None, None))
    head = [f"Merge of {pool.model.id} with its top {len(partners)} partners suggested by hubatlas",
            f"base {base_id}: their nearest common ancestor; method {method}"]  # fmt: skip
    weight = 1.0 / (len(partners) + 1) if method == "task_arithmetic" else None
    return mergekit_yaml(MERGE_METHODS[method], [pool.model, *(facts[p] for p in partners)], base, header=head,
                         weight=weight)  # fmt: skip


@dataclass(frozen=True)
class SuggestResult:
    suggestions: list[Suggestion]
    n_candidates: int
    excluded: dict[str, int]
    yaml: str  # the YAML for the top pick, or for the top-k merge


def suggest(
    con: duckdb.DuckDBPyConnection,
    model_id: str,
    *,
    k: int = 5,
    method: str = "auto",
    scheme: str = "default",
    top_k_merge: bool = False,
    write: bool = True,
) -> SuggestResult:
    """Rank the model's merge partners and (when `write`) replace its rows of `merge_suggestions` (removed
    when it has no candidates any more).

    Raises MergeAdviceError (unknown model, no sample, no candidates, unknown method).
    """
    if method != "auto":
        try:
            get_method(method)
        except ValueError as e:
            raise MergeAdviceError(str(e)) from None
    try:
        pool = find_candidates(con, model_id, scheme=scheme)
    except MergeAdviceError:
        if write:  # advice stored by an earlier run no longer holds
            write_suggestions(con, model_id, [])
        raise
    ranked = rank_pool(pool, k=k, method=method)
    if write:
        write_suggestions(con, model_id, ranked)
    text = top_k_yaml(pool, ranked) if top_k_merge else ranked[0].config_yaml
    return SuggestResult(ranked, len(pool.pairs), pool.excluded, text)


def write_suggestions(con: duckdb.DuckDBPyConnection, model_id: str, ranked: Sequence[Suggestion]) -> None:
    """Replace the model's stored suggestions with `ranked` in one transaction."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    rows = [
        [
            s.model_id,
            s.partner,
            s.rank,
            s.score,
            s.method,
            s.base,
            json.dumps(list(s.reasons)),
            s.config_yaml,
            now,
        ]
        for s in ranked
    ]
    with transaction(con):
        con.execute("DELETE FROM merge_suggestions WHERE model_id = ?", [model_id])
        if rows:
            con.executemany("INSERT INTO merge_suggestions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def suggest_all(
    con: duckdb.DuckDBPyConnection, *, k: int = 5, method: str = "auto", scheme: str = "default"
) -> dict[str, int | str]:
    """Suggestions for every sampled full-weight model: partners stored per model, or why there are none."""
    ids = [
        r[0]
        for r in con.execute(
            "SELECT model_id FROM weight_samples WHERE scheme = ? AND status = 'ok' ORDER BY model_id",
            [scheme],
        ).fetchall()
    ]
    out: dict[str, int | str] = {}
    for mid in ids:
        try:
            out[mid] = len(suggest(con, mid, k=k, method=method, scheme=scheme).suggestions)
        except MergeAdviceError as e:
            out[mid] = str(e)
    return out
