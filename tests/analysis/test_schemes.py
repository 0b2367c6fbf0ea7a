from __future__ import annotations

from dataclasses import replace

import pytest

from analysis.schemes import DEFAULT_SCHEME, SCHEMES, get_scheme


def test_rows_depend_on_name_and_shape_only() -> None:
    s = SCHEMES[DEFAULT_SCHEME]
    a = s.rows_for("model.layers.0.self_attn.q_proj.weight", (4096, 4096))
    assert a == s.rows_for("model.layers.0.self_attn.q_proj.weight", (4096, 4096))
    others = {s.rows_for(f"model.layers.{i}.self_attn.q_proj.weight", (4096, 4096)) for i in range(32)}
    assert len(others) > 20  # different tensors land on different rows


def test_default_budget_is_well_under_a_thousandth_of_large_matrices() -> None:
    s = SCHEMES[DEFAULT_SCHEME]
    start, k, stride = s.rows_for("model.layers.3.mlp.down_proj.weight", (4096, 11008))
    assert start >= 0 and start + (k - 1) * stride < 4096 and k / 4096 <= 0.001
    start, k, stride = s.rows_for("model.embed_tokens.weight", (32000, 4096))
    assert k / 32000 <= 0.001


def test_small_matrices_get_a_minimum_of_values_and_vectors_follow_the_scheme() -> None:
    s = SCHEMES[DEFAULT_SCHEME]
    _, k, stride = s.rows_for("w", (128, 128))
    assert stride == 128 // k  # spread evenly over the matrix
    assert k * 128 >= s.min_values
    assert s.rows_for("norm.weight", (128,)) is None
    assert replace(s, vectors="whole").rows_for("norm.weight", (128,)) == (0, 1, 1)
    assert SCHEMES["full"].rows_for("w", (300, 7)) == (0, 300, 1)


def test_unknown_scheme_names_the_choices() -> None:
    with pytest.raises(ValueError, match="default"):
        get_scheme("nope")
