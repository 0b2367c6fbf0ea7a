"""mergekit configs: which models a merge was made from, with which method and weights.

Handles `models:` lists, `slices: - sources:`, MoE `experts:`, `base_model`, and multi-document YAML whose
later documents refer to earlier ones by `name:` (those intermediate names resolve to their sources).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class MergeSource:
    model: str
    weight: float | None  # the scalar `parameters.weight`, None when absent or given per layer
    is_base: bool


@dataclass(frozen=True)
class MergeRecipe:
    method: str | None
    sources: tuple[MergeSource, ...]


class MergekitConfigError(ValueError):
    """A mergekit config that is not YAML or not a mapping."""


def parse_mergekit_config(text: str) -> MergeRecipe:
    """Parse mergekit_config.yml text into the method and the source models of the final merge."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise MergekitConfigError(f"not valid YAML ({' '.join(str(e).split())[:160]})") from e
    if not docs or not all(isinstance(d, dict) for d in docs):
        raise MergekitConfigError("not a mapping of mergekit settings")
    named: dict[str, tuple[MergeSource, ...]] = {}
    recipe = MergeRecipe(None, ())
    for doc in docs:
        recipe = _recipe_of(doc, named)
        if isinstance(doc.get("name"), str):
            named[doc["name"]] = recipe.sources
    return recipe


def _recipe_of(doc: dict[str, Any], named: dict[str, tuple[MergeSource, ...]]) -> MergeRecipe:
    method = doc.get("merge_method") or ("moe" if "experts" in doc else None)
    base = _model_name(doc.get("base_model"))
    found: list[tuple[str, float | None]] = []
    for entry in doc.get("models") or []:
        if isinstance(entry, dict):
            found.append((_model_name(entry.get("model")), _weight(entry.get("parameters"))))
    for slice_ in doc.get("slices") or []:
        for src in (slice_ or {}).get("sources") or [] if isinstance(slice_, dict) else []:
            if isinstance(src, dict):
                found.append((_model_name(src.get("model")), _weight(src.get("parameters"))))
    for expert in doc.get("experts") or []:
        if isinstance(expert, dict):
            found.append((_model_name(expert.get("source_model")), None))
    if base:
        found.append((base, None))
    sources: dict[str, MergeSource] = {}
    for model, weight in found:
        if not model:
            continue
        for resolved in named.get(model, (MergeSource(model, weight, model == base),)):
            sources.setdefault(
                resolved.model,
                MergeSource(
                    resolved.model,
                    weight if weight is not None else resolved.weight,
                    resolved.model == base,
                ),
            )
    return MergeRecipe(str(method) if method else None, tuple(sources.values()))


def _model_name(value: Any) -> str:
    if isinstance(value, dict):  # mergekit's long form: {model: {path: ...}}
        value = value.get("model") or value.get("path")
        if isinstance(value, dict):
            value = value.get("path")
    if not isinstance(value, str):
        return ""
    return value.split("+", 1)[0].strip()  # "model+lora" applies a LoRA to model


def _weight(parameters: Any) -> float | None:
    if not isinstance(parameters, dict):
        return None
    weight = parameters.get("weight")
    if isinstance(weight, bool):
        return None
    return float(weight) if isinstance(weight, int | float) else None
