"""mergekit configurations (`mergekit-yaml config.yml out/`) for a suggested merge.

Models are referred to by their local folder when the atlas has one (scanned or zoo models), so the
YAML runs as it is on this machine, else by their Hub id. The header comments say what was merged and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from analysis.merge_candidates import ModelFacts
from analysis.merge_methods import MergeMethod

# safetensors dtype -> mergekit `dtype`
DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def model_reference(model: ModelFacts) -> str:
    """What mergekit loads: the local folder when there is one, else the Hub id."""
    return model.location or model.id


def mergekit_config(
    method: MergeMethod, models: Sequence[ModelFacts], base: ModelFacts, *, weight: float | None = None
) -> dict[str, Any]:
    """The configuration as a dict (mergekit's `MergeConfiguration` fields).

    `models[0]` is the model asked about: SLERP's `base_model` (t = 0). Task-vector methods use `base`,
    the common ancestor; linear and SLERP need none. `weight` overrides the method's per-model weight.
    """
    if method.max_models is not None and len(models) > method.max_models:
        raise ValueError(f"{method.name} merges at most {method.max_models} models, got {len(models)}")
    params = dict(method.model_params)
    if weight is not None and "weight" in params:
        params["weight"] = weight
    entries: list[dict[str, Any]] = []
    for m in models:
        entry: dict[str, Any] = {"model": model_reference(m)}
        if params:
            entry["parameters"] = dict(params)
        entries.append(entry)
    cfg: dict[str, Any] = {"merge_method": method.name}
    if method.needs_base:
        cfg["base_model"] = model_reference(base)
    elif method.name == "slerp":
        cfg["base_model"] = model_reference(models[0])
    cfg["models"] = entries
    if method.global_params:
        cfg["parameters"] = dict(method.global_params)
    cfg["dtype"] = DTYPES.get(models[0].dtype or "", "bfloat16")
    return cfg


def mergekit_yaml(
    method: MergeMethod,
    models: Sequence[ModelFacts],
    base: ModelFacts,
    *,
    header: Sequence[str] = (),
    weight: float | None = None,
) -> str:
    """The configuration as YAML text, with `header` lines as comments on top."""
    body = yaml.safe_dump(
        mergekit_config(method, models, base, weight=weight), sort_keys=False, allow_unicode=True
    )
    head = "".join(f"# {line}\n" for line in header)
    return head + body
