"""Declared lineage: every place a hub model states its parents, as edge records with their origin.

Sources: card `base_model` (+ `base_model_relation`), `base_model:{relation}:{id}` tags, config.json
`_name_or_path`, adapter_config.json `base_model_name_or_path`, mergekit_config.yml. Bad ids and
self-loops are kept as flagged data; cycles are left to the views, which terminate on them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from atlas.records import EdgeRecord, FlagRecord
from crawlers.mergekit import MergekitConfigError, parse_mergekit_config

# The Hub's relation names (and synonyms met in cards) mapped to ours (atlas.records.RELATIONS).
RELATION_ALIASES: dict[str, str] = {
    "finetune": "finetune", "fine-tune": "finetune", "finetuned": "finetune", "fine_tune": "finetune",
    "adapter": "adapter", "adapters": "adapter", "lora": "adapter", "peft": "adapter",
    "quantized": "quantized", "quantization": "quantized", "quant": "quantized",
    "merge": "merge", "merged": "merge",
    "distill": "distill", "distillation": "distill", "distilled": "distill",
    "checkpoint": "checkpoint", "conversion": "conversion", "converted": "conversion",
}  # fmt: skip

_HUB_PREFIX = re.compile(r"^(?:https?://)?(?:www\.)?(?:huggingface\.co|hf\.co)/(?:models/)?", re.IGNORECASE)
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(?:/[\w.\-]+)?$")
_LOCAL_PATH = re.compile(r"^(?:[./~]|[A-Za-z]:\\)|/(?:home|root|tmp|mnt|data|content|workspace|kaggle)/")


def normalise_id(raw: Any) -> str | None:
    """A repo id from how people write it (URLs, `hf.co/`, `@revision`, `/tree/main`, spaces); None if empty."""
    if not isinstance(raw, str):
        return None
    value = raw.strip().strip("\"'`").strip()
    value = _HUB_PREFIX.sub("", value)
    value = re.split(r"/(?:tree|blob|resolve)/", value, maxsplit=1)[0]
    value = value.split("@", 1)[0].split("?", 1)[0].split("#", 1)[0].strip().strip("/")
    return value or None


def is_valid_repo_id(value: str) -> bool:
    """An `owner/name` id, or a legacy single-name id such as `gpt2` or `bert-base-uncased`."""
    return bool(_REPO_ID.match(value)) and ".." not in value and not value.endswith((".", "-"))


def normalise_relation(raw: Any) -> str | None:
    """Our relation name for a declared one; None when unknown."""
    if not isinstance(raw, str):
        return None
    return RELATION_ALIASES.get(raw.strip().lower().replace(" ", ""))


def _edge(
    child: str, raw_parent: Any, relation: str, origin: str, evidence: str, flags: list[FlagRecord],
    merge_weight: float | None = None,
) -> EdgeRecord | None:  # fmt: skip
    parent = normalise_id(raw_parent)
    if parent is None:
        return None
    flag = None
    if parent == child:
        flag = "self_loop"
        flags.append(FlagRecord(child, "self_loop", f"{origin} names the model itself as its parent"))
    elif not is_valid_repo_id(parent):
        flag = "invalid_id"
        flags.append(
            FlagRecord(child, "invalid_base_model", f"{origin}: {str(raw_parent)[:120]!r} is not a repo id")
        )
    return EdgeRecord(child, parent, relation, origin, 1.0, merge_weight, evidence, flag)


def edges_from_card(child: str, card: Mapping[str, Any], flags: list[FlagRecord]) -> Iterator[EdgeRecord]:
    """Card front matter `base_model` (string or list) with `base_model_relation`."""
    raw = card.get("base_model")
    parents = (
        [raw]
        if isinstance(raw, str)
        else [p for p in raw if isinstance(p, str)]
        if isinstance(raw, list)
        else []
    )
    if raw is not None and not parents:
        flags.append(FlagRecord(child, "invalid_base_model", f"card base_model is a {type(raw).__name__}"))
    declared = card.get("base_model_relation")
    relation = normalise_relation(declared)
    if declared is not None and relation is None:
        flags.append(FlagRecord(child, "unknown_relation", f"base_model_relation {str(declared)[:60]!r}"))
    if relation is None:
        # Several base models without a stated relation is how merges are declared.
        relation = "merge" if len(parents) > 1 else "unknown"
    for parent in parents:
        edge = _edge(child, parent, relation, "card", "card base_model", flags)
        if edge:
            yield edge


def edges_from_tags(child: str, tags: list[Any], flags: list[FlagRecord]) -> Iterator[EdgeRecord]:
    """`base_model:{relation}:{id}` tags (relation given) and bare `base_model:{id}` tags (unknown)."""
    specific: set[str] = set()
    bare: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.startswith("base_model:"):
            continue
        rest = tag[len("base_model:") :]
        head, _, tail = rest.partition(":")
        relation = normalise_relation(head) if tail else None
        if relation:
            edge = _edge(child, tail, relation, "tag", tag, flags)
            if edge:
                specific.add(edge.parent)
                yield edge
        else:
            bare.append(rest)
    for parent in bare:
        edge = _edge(child, parent, "unknown", "tag", f"base_model:{parent}", flags)
        if edge and edge.parent not in specific:
            specific.add(edge.parent)
            yield edge


def edges_from_config(child: str, config: Mapping[str, Any], flags: list[FlagRecord]) -> Iterator[EdgeRecord]:
    """config.json `_name_or_path` when it names another repo (not a local path, not the model itself)."""
    raw = config.get("_name_or_path")
    parent = normalise_id(raw)
    if parent is None or _LOCAL_PATH.search(str(raw)) or "/" not in parent or parent == child:
        return
    if is_valid_repo_id(parent):
        edge = _edge(child, parent, "unknown", "config", "config.json _name_or_path", flags)
        if edge:
            yield edge


def edges_from_adapter_config(child: str, text: str, flags: list[FlagRecord]) -> Iterator[EdgeRecord]:
    """adapter_config.json `base_model_name_or_path`: the model the adapter applies to."""
    try:
        config = json.loads(text)
    except (json.JSONDecodeError, TypeError) as e:
        flags.append(FlagRecord(child, "bad_adapter_config", f"adapter_config.json is not JSON ({e})"))
        return
    if not isinstance(config, dict):
        return
    raw = config.get("base_model_name_or_path")
    if raw and _LOCAL_PATH.search(str(raw)):
        # The trainer's own folder, not a repo: kept so inference can match its name to a stored model.
        flags.append(FlagRecord(child, "local_base_path", str(raw)[:500]))
    elif raw:
        edge = _edge(
            child, raw, "adapter", "adapter_config", "adapter_config.json base_model_name_or_path", flags
        )
        if edge:
            yield edge


def edges_from_mergekit(child: str, text: str, flags: list[FlagRecord]) -> Iterator[EdgeRecord]:
    """mergekit_config.yml sources: merge edges with their weights and the method in the evidence."""
    try:
        recipe = parse_mergekit_config(text)
    except MergekitConfigError as e:
        flags.append(FlagRecord(child, "bad_mergekit_config", f"mergekit_config.yml: {e}"))
        return
    for source in recipe.sources:
        role = "base" if source.is_base else "source"
        evidence = f"mergekit {recipe.method or 'merge'} {role}"
        edge = _edge(child, source.model, "merge", "mergekit", evidence, flags, source.weight)
        if edge:
            yield edge
