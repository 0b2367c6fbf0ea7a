"""The in-project merge methods compute what their mergekit namesakes define, on tiny tensors and on the zoo."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from analysis.merge_methods import MERGE_METHODS, apply_method, get_method
from analysis.zoo import evaluate, load_state


def _sd(*rows: list[float]) -> dict[str, torch.Tensor]:
    return {"w": torch.tensor(rows, dtype=torch.float32)}


BASE = _sd([0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0])
A = _sd([1.0, 0.0, -2.0, 0.1], [1.0, 2.0, 1.0, 1.0])
B = _sd([0.0, 3.0, 1.0, 0.1], [1.0, 1.0, 0.0, 1.0])


def test_linear_and_task_arithmetic() -> None:
    lin = apply_method("linear", None, [A, B])["w"]
    torch.testing.assert_close(lin, (A["w"] + B["w"]) / 2)
    ta = apply_method("task_arithmetic", BASE, [A, B], weights=[1.0, 0.5])["w"]
    torch.testing.assert_close(ta, BASE["w"] + (A["w"] - BASE["w"]) + 0.5 * (B["w"] - BASE["w"]))


def test_ties_keeps_the_elected_sign_only() -> None:
    # full density: coordinate 2 has deltas -2 and +1; the sign elected by mass is -, so only A's -2 counts
    out = apply_method("ties", BASE, [A, B], density=1.0)["w"]
    assert out[0, 2] == pytest.approx(-2.0)
    assert out[0, 0] == pytest.approx(1.0) and out[0, 1] == pytest.approx(3.0)  # one model moves: kept whole
    assert out[0, 3] == pytest.approx(0.1)  # both agree: their average


def test_dare_ties_keeps_l1_mass_and_is_reproducible() -> None:
    g = torch.Generator().manual_seed(0)
    base = {"w": torch.zeros(64, 64)}
    a = {"w": torch.randn(64, 64, generator=g)}
    one = apply_method("dare_ties", base, [a], density=0.3)["w"]
    assert (one != 0).float().mean() == pytest.approx(0.3, abs=0.03)  # ~30% of entries survive
    assert one.abs().sum() == pytest.approx(float(a["w"].abs().sum()), rel=1e-4)  # rescaled to the same L1
    torch.testing.assert_close(one, apply_method("dare_ties", base, [a], density=0.3)["w"])
    other = apply_method("dare_ties", base, [a], density=0.3, seed=1)["w"]
    assert not torch.equal(one, other)


def test_slerp_ends_and_midpoint() -> None:
    a = {"w": torch.tensor([[1.0, 0.0]]), "n": torch.tensor([2.0, 0.0])}
    b = {"w": torch.tensor([[0.0, 1.0]]), "n": torch.tensor([4.0, 0.0])}  # n parallel to a's: linear
    torch.testing.assert_close(apply_method("slerp", None, [a, b], t=0.0)["w"], a["w"])
    torch.testing.assert_close(apply_method("slerp", None, [a, b], t=1.0)["w"], b["w"])
    mid = apply_method("slerp", None, [a, b])
    torch.testing.assert_close(mid["w"], torch.tensor([[math.sqrt(0.5), math.sqrt(0.5)]]))  # on the circle
    torch.testing.assert_close(mid["n"], torch.tensor([3.0, 0.0]))


def test_registry_refuses_what_a_method_cannot_do() -> None:
    with pytest.raises(ValueError, match="needs a base model"):
        apply_method("ties", None, [A, B])
    with pytest.raises(ValueError, match="at most 2 models"):
        apply_method("slerp", None, [A, B, A])
    with pytest.raises(
        ValueError, match="unknown merge method 'soup'; choose one of linear, task_arithmetic"
    ):
        get_method("soup")
    assert set(MERGE_METHODS) == {"linear", "task_arithmetic", "ties", "dare_ties", "slerp"}


def test_merging_two_zoo_experts_keeps_both_skills(zoo_dir: Path) -> None:
    base, copy, sort = (
        load_state(zoo_dir / m) for m in ("zoo/base-llama", "zoo/expert-copy-1", "zoo/expert-sort-1")
    )
    experts = {"copy": evaluate(copy, "copy"), "sort": evaluate(sort, "sort")}
    before = {"copy_on_sort": evaluate(copy, "sort"), "sort_on_copy": evaluate(sort, "copy")}
    for name in MERGE_METHODS:
        merged = apply_method(name, base, [copy, sort])
        got_copy, got_sort = evaluate(merged, "copy"), evaluate(merged, "sort")
        # each merge lands between: above the expert that lacks the skill, at most the one that has it (+ noise)
        assert before["sort_on_copy"] < got_copy <= experts["copy"] + 0.02, name
        assert before["copy_on_sort"] < got_sort <= experts["sort"] + 0.02, name
