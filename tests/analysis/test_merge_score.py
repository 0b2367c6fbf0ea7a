"""The merge score's signals on small hand-made facts: lifts, the model's own strengths, reasons."""

from __future__ import annotations

import pytest

from analysis.merge import (
    EVAL_SIGNALS,
    MERGE_SIGNALS,
    SCORE_WEIGHTS,
    STRENGTH_MARGIN,
    pair_view,
    predicted_gain,
    reasons_of,
    score_of,
    signals_of,
    strength_lifts,
)
from analysis.merge_candidates import ModelFacts, PairFacts


def _model(mid: str, **acc: float) -> ModelFacts:
    return ModelFacts(
        mid, "LlamaForCausalLM", "mit", None, "F32", {(t, "accuracy"): v for t, v in acc.items()}
    )


def _pair(partner: ModelFacts) -> PairFacts:
    return PairFacts(partner, "org/base", (1, 1), "org/base", 0.1, 0.1, 0.3, 0.2, 1.0)


BASE = _model("org/base", copy=0.5, sort=0.5, add=0.1)
MODEL = _model("org/copy", copy=0.95, sort=0.45, add=0.1)  # its strength: copy (+0.45 over the base)


def test_a_partner_that_keeps_the_models_strength_ranks_above_one_that_loses_it() -> None:
    keeps = _model("org/sort-a", copy=0.9, sort=0.95, add=0.1)
    loses = _model("org/sort-b", copy=0.3, sort=0.96, add=0.1)  # brings sort a little better, forgets copy
    views = {p.id: pair_view(MODEL, _pair(p), BASE) for p in (keeps, loses)}
    sig = {m: signals_of(v) for m, v in views.items()}
    assert sig["org/sort-b"]["best_lift"] > sig["org/sort-a"]["best_lift"]
    assert sig["org/sort-a"]["retention"] == pytest.approx(-0.05)
    assert sig["org/sort-b"]["retention"] == pytest.approx(-0.65)
    assert score_of(sig["org/sort-a"]) > score_of(sig["org/sort-b"])
    assert score_of(sig["org/sort-b"], {"best_lift": 1.0}) > score_of(sig["org/sort-a"], {"best_lift": 1.0})
    assert "weaker on the model's own strength (copy: -0.65) → the merge gives up part of it" in reasons_of(
        views["org/sort-b"], "linear"
    )
    assert "as good on the model's own strength (copy: -0.05) → little of it lost" in reasons_of(
        views["org/sort-a"], "linear"
    )


def test_strengths_are_the_evaluations_the_model_gained_on_else_its_largest_gain() -> None:
    partner = _model("org/p", copy=0.6, sort=0.7, add=0.3)
    two = _model("org/two", copy=0.5 + 1.5 * STRENGTH_MARGIN, sort=0.9, add=0.1)
    assert strength_lifts(two, partner, BASE) == pytest.approx(
        {"copy": 0.1 - 1.5 * STRENGTH_MARGIN, "sort": -0.2}
    )
    flat = _model("org/flat", copy=0.52, sort=0.4, add=0.1)  # gained nowhere by the margin: its best gain
    assert strength_lifts(flat, partner, BASE) == pytest.approx({"copy": 0.08})


def test_predicted_gain_keeps_half_of_each_models_gain_over_the_base_on_both_strengths() -> None:
    brings_sort = _model("org/sort", copy=0.5, sort=0.9, add=0.1)  # its strength: sort (+0.4)
    another_copy = _model("org/copy-2", copy=0.97, sort=0.5, add=0.1)  # the same strength as the model
    # on copy: 0.5 + ½·(0.45 + 0) − 0.95 = −0.225; on sort: 0.5 + ½·(0 + 0.4) − 0.45 = +0.25
    assert predicted_gain(MODEL, brings_sort, BASE) == pytest.approx((-0.225 + 0.25) / 2)
    # only copy: 0.5 + ½·(0.45 + 0.47) − 0.95 = +0.01
    assert predicted_gain(MODEL, another_copy, BASE) == pytest.approx(0.01)
    assert predicted_gain(MODEL, brings_sort, None) is None
    view = pair_view(MODEL, _pair(brings_sort), BASE)
    assert signals_of(view)["predicted_gain"] == pytest.approx(0.0125)
    assert (
        "expected gain +0.01 on the two models' strengths (an average keeps about half of each one's gain "
        "over the base)" in reasons_of(view, "linear")
    )


def test_percent_evaluations_are_read_as_fractions() -> None:
    base = _model("org/base", copy=50.0, sort=50.0)
    model = _model("org/m", copy=90.0, sort=50.0)
    partner = _model("org/p", copy=60.0, sort=80.0)
    assert strength_lifts(model, partner, base) == pytest.approx({"copy": -0.3})


def test_without_the_bases_evaluations_retention_is_unknown_and_weighs_nothing() -> None:
    partner = _model("org/p", copy=0.3, sort=0.96)
    for base in (None, ModelFacts("org/base", None, None, None, None)):
        view = pair_view(MODEL, _pair(partner), base)
        sig = signals_of(view)
        assert sig["retention"] is None and not any("own strength" in r for r in reasons_of(view, "linear"))
        assert sig["predicted_gain"] is None
        assert score_of(sig) == pytest.approx(
            SCORE_WEIGHTS["best_lift"] * sig["best_lift"] + SCORE_WEIGHTS["complementarity"] * 0.9
        )


def test_weights_name_known_signals_and_eval_signals_are_signals() -> None:
    assert set(SCORE_WEIGHTS) <= set(MERGE_SIGNALS) and set(EVAL_SIGNALS) <= set(MERGE_SIGNALS)
    assert SCORE_WEIGHTS["retention"] > 0  # a partner weak where the model is strong scores lower
