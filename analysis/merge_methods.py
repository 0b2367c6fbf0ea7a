"""Merge methods as data: mergekit's names, what each needs, its parameters, and an in-project implementation.

Each implementation takes the same arguments as `analysis.zoo_merge` (base state dict, the models' state
dicts, per-model weights) plus the method's parameters, and follows the semantics of the mergekit method
of the same name (mergekit 0.1.5), so the advice can be checked by really merging on the zoo:

- `linear`: Σ wᵢ θᵢ / Σ wᵢ (normalised weighted average; no base).
- `task_arithmetic`: θ₀ + λ Σ wᵢ (θᵢ − θ₀) (not normalised).
- `ties`: trim each task vector to its top-`density` magnitudes, elect a sign per coordinate by weighted
  mass, average the agreeing entries (normalised by their weights) onto θ₀.
- `dare_ties`: drop each task-vector entry with probability 1 − `density` and rescale the rest to keep its
  L1 norm (DARE), then TIES sign election, summed (not normalised, mergekit's default).
- `slerp`: spherical interpolation, tensor by tensor, from the first model (t = 0) to the second (t = 1).
  mergekit's `base_model` is the first model; exactly two models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported only when a merge is really computed
    from analysis.zoo_model import StateDict


@dataclass(frozen=True)
class MergeMethod:
    """One merge method, by its mergekit name."""

    name: str  # mergekit `merge_method`
    needs_base: bool  # a common ancestor θ₀ is required (task-vector methods)
    max_models: int | None  # slerp merges exactly two models
    model_params: Mapping[str, float] = field(default_factory=dict)  # per-model parameters (mergekit names)
    global_params: Mapping[str, float | bool] = field(default_factory=dict)  # top-level `parameters:`
    impl: str = "merge_linear"  # the function of analysis.merge_ops that computes it
    op_args: tuple[str, ...] = ()  # parameters (from model_params or global_params) passed to `impl`
    summary: str = ""  # what it does, for --help


# The merge methods the advisor can choose, by mergekit name. Parameters are those written to the YAML and
# used by the in-project merge; they are mergekit's defaults or the values tuned on the zoo (see README).
MERGE_METHODS: dict[str, MergeMethod] = {
    m.name: m
    for m in (
        MergeMethod("linear", False, None, {"weight": 0.5}, {"normalize": True}, "merge_linear",
                    summary="weighted average of the weights"),
        MergeMethod("task_arithmetic", True, None, {"weight": 1.0}, {"normalize": False},
                    "merge_task_arithmetic", summary="adds both task vectors to the base"),
        MergeMethod("ties", True, None, {"weight": 1.0, "density": 0.5}, {"normalize": True}, "merge_ties",
                    op_args=("density",), summary="trims task vectors and resolves sign conflicts (TIES)"),
        MergeMethod("dare_ties", True, None, {"weight": 1.0, "density": 0.5}, {"normalize": False},
                    "merge_dare_ties", op_args=("density",), summary="drops and rescales task-vector entries, then resolves signs (DARE-TIES)"),
        MergeMethod("slerp", False, 2, {}, {"t": 0.5}, "merge_slerp", op_args=("t",),
                    summary="interpolates along the sphere between the two models"),
    )
}  # fmt: skip


def get_method(name: str) -> MergeMethod:
    """The registered method `name`, or a ValueError listing the known ones."""
    try:
        return MERGE_METHODS[name]
    except KeyError:
        raise ValueError(f"unknown merge method {name!r}; choose one of {', '.join(MERGE_METHODS)}") from None


def apply_method(
    method: MergeMethod | str,
    base_sd: StateDict | None,
    sds: Sequence[StateDict],
    weights: Sequence[float] | None = None,
    **overrides: Any,
) -> StateDict:
    """Merge state dicts with a registered method and its parameters (the YAML's values unless overridden).

    Args:
        method: a `MergeMethod` or its name.
        base_sd: θ₀, the common ancestor (required by task-vector methods).
        sds: the models, in order (slerp: the first is mergekit's base_model, t = 0).
        weights: per-model weights; default the method's `weight` for each model.
    """
    m = get_method(method) if isinstance(method, str) else method
    if m.needs_base and base_sd is None:
        raise ValueError(f"{m.name} needs a base model (the common ancestor)")
    if m.max_models is not None and len(sds) > m.max_models:
        raise ValueError(f"{m.name} merges at most {m.max_models} models, got {len(sds)}")
    w = list(weights) if weights is not None else [float(m.model_params.get("weight", 1.0))] * len(sds)
    params: dict[str, Any] = {a: {**m.global_params, **m.model_params}[a] for a in m.op_args}
    params.update(overrides)
    from analysis import merge_ops

    return getattr(merge_ops, m.impl)(base_sd if m.needs_base else None, sds, w, **params)
