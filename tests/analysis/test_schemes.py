from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from analysis.schemes import DEFAULT_SCHEME, SCHEMES, get_scheme

Q = "model.layers.0.self_attn.q_proj.weight"


def _coords(plan) -> set[int]:
    return set(plan.value_offsets().ravel().tolist())


def test_coordinates_depend_on_name_and_shape_only() -> None:
    s = SCHEMES[DEFAULT_SCHEME]
    a, b = s.plan(Q, (4096, 4096)), s.plan(Q, (4096, 4096))
    np.testing.assert_array_equal(a.value_offsets(), b.value_offsets())
    others = {
        tuple(s.plan(f"model.layers.{i}.self_attn.q_proj.weight", (4096, 4096)).cols[:8]) for i in range(32)
    }
    assert len(others) == 32  # different tensors land on different coordinates
    moved = replace(s, seed=s.seed + 1).plan(Q, (4096, 4096))
    assert len(_coords(a) & _coords(moved)) < a.n_values // 10  # another seed, other coordinates


def test_default_reads_many_rows_well_under_a_thousandth_of_large_matrices() -> None:
    s = SCHEMES[DEFAULT_SCHEME]
    plan = s.plan("model.layers.3.mlp.down_proj.weight", (4096, 11008))
    assert plan.n_values / (4096 * 11008) <= 0.001
    assert len(set(plan.rows.tolist())) == len(plan.rows) >= 100  # one short segment in each of many rows
    assert plan.rows.max() < 4096 and (plan.cols + plan.length).max() <= 11008
    assert len(set(plan.cols.tolist())) > len(plan.cols) // 2  # at varied columns
    embed = s.plan("model.embed_tokens.weight", (32000, 4096))
    assert embed.n_values / (32000 * 4096) <= 0.001
    rows = SCHEMES["rows"].plan("model.layers.3.mlp.down_proj.weight", (4096, 11008))
    assert rows.length == 11008 and len(rows.rows) < 10  # whole rows: few ranges, few distinct rows


def test_small_matrices_get_a_minimum_of_values_in_every_row_without_overlaps() -> None:
    s = SCHEMES[DEFAULT_SCHEME]
    plan = s.plan("w", (64, 1024))
    assert s.min_values <= plan.n_values < 64 * 1024 * s.whole_share
    assert set(plan.rows.tolist()) == set(range(64))  # more segments than rows: every row, several each
    offsets = plan.value_offsets().ravel()
    assert len(set(offsets.tolist())) == offsets.size  # no value read twice
    # a matrix its budget would cover a quarter of is read whole, as whole rows
    for shape in ((64, 64), (128, 128)):
        whole_matrix = s.plan("w", shape)
        assert _coords(whole_matrix) == set(range(shape[0] * shape[1]))
        assert whole_matrix.length == shape[1]
    assert s.plan("w", (512, 512)).n_values == s.min_values  # the large zoo's: sampled
    assert s.plan("norm.weight", (128,)) is None
    whole = replace(s, vectors="whole").plan("norm.weight", (128,))
    assert whole.n_values == 128 and whole.rows.tolist() == [0]
    full = SCHEMES["full"].plan("w", (300, 7))
    assert _coords(full) == set(range(2100))


def test_a_changed_definition_has_another_fingerprint() -> None:
    s = SCHEMES[DEFAULT_SCHEME]
    assert s.fingerprint == replace(s).fingerprint
    assert s.fingerprint != replace(s, segment=s.segment * 2).fingerprint
    assert s.fingerprint != replace(s, whole_share=0.5).fingerprint


def test_unknown_scheme_names_the_choices() -> None:
    with pytest.raises(ValueError, match="default"):
        get_scheme("nope")


def test_the_cli_help_names_every_registered_scheme() -> None:
    from typer.testing import CliRunner

    from atlas.cli import app

    out = CliRunner().invoke(app, ["sample", "--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0
    for name in SCHEMES:
        assert name in out.stdout
