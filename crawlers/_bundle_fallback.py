"""A minimal `bundle_from_info` used by the local scan only while `crawlers.bundle` is absent.

It reads the same declarations (card `base_model`/`base_model_relation`, adapter_config
`base_model_name_or_path`, mergekit sources) and model-index evals; `crawlers.bundle` supersedes it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

from atlas.records import (
    CardRecord,
    EdgeRecord,
    EvalRecord,
    FileRecord,
    FlagRecord,
    ModelBundle,
    ModelRecord,
    TagRecord,
)

_ID = re.compile(r"^[\w.\-]+/[\w.\-]+$")
_CARD_RELATIONS = {"finetune", "adapter", "quantized", "merge"}


def split_front_matter(readme: str) -> tuple[dict[str, Any] | None, str, str | None]:
    """(front matter dict, body, error) of a README; never raises."""
    if not readme.startswith("---"):
        return None, readme, None
    end = readme.find("\n---", 3)
    if end < 0:
        return None, readme, "front matter not closed"
    try:
        front = yaml.safe_load(readme[3:end])
    except yaml.YAMLError as e:
        return None, readme[end + 4 :], f"yaml: {str(e).splitlines()[0]}"
    return (front if isinstance(front, dict) else None), readme[end + 4 :].lstrip("\n"), None


def bundle_from_info(
    info: dict,
    *,
    readme: str | None = None,
    repo_files: Mapping[str, str] | None = None,
    source: str = "hub",
    location: str | None = None,
) -> ModelBundle:
    """Model, tags, card, declared edges, files, flags and evals of one model's info and files."""
    mid = str(info.get("id") or "")
    if not mid:
        raise ValueError("model info without an id")
    flags: list[FlagRecord] = []
    front, body = None, None
    if readme is not None:
        front, body, err = split_front_matter(readme)
        if err:
            flags.append(FlagRecord(mid, "yaml_error", err))
    info = {**info, "cardData": front or info.get("cardData") or {}}
    model = ModelRecord.from_api(
        info, source=source, location=location, card_length=len(readme) if readme else None
    )
    card = CardRecord(mid, json.dumps(front, default=str) if front else None, body, None) if readme else None
    edges: list[EdgeRecord] = []

    def edge(parent: Any, relation: str, origin: str, weight: float | None = None) -> None:
        parent = str(parent).strip()
        flag = "self_loop" if parent == mid else None if _ID.match(parent) else "invalid_id"
        edges.append(EdgeRecord(mid, parent, relation, origin, merge_weight=weight, flag=flag))
        if flag:
            flags.append(FlagRecord(mid, "invalid_base_model" if flag == "invalid_id" else flag, parent))

    front = front or {}
    bases = front.get("base_model")
    bases = [bases] if isinstance(bases, str) else [b for b in bases or [] if isinstance(b, str)]
    rel = str(front.get("base_model_relation") or "")
    rel = rel if rel in _CARD_RELATIONS else ("merge" if len(bases) > 1 else "unknown")
    for b in bases:
        edge(b, rel, "card")
    files = dict(repo_files or {})
    if "adapter_config.json" in files:
        try:
            base = json.loads(files["adapter_config.json"]).get("base_model_name_or_path")
            if base:
                edge(base, "adapter", "adapter_config")
        except (json.JSONDecodeError, AttributeError):
            flags.append(FlagRecord(mid, "bad_adapter_config", "adapter_config.json is not a JSON object"))
    if "mergekit_config.yml" in files:
        try:
            cfg = yaml.safe_load(files["mergekit_config.yml"]) or {}
            for m in cfg.get("models") or []:
                w = (m.get("parameters") or {}).get("weight")
                edge(m["model"], "merge", "mergekit", float(w) if isinstance(w, int | float) else None)
        except (yaml.YAMLError, AttributeError, KeyError, TypeError):
            flags.append(FlagRecord(mid, "bad_mergekit_config", "mergekit_config.yml unreadable"))
    tags = tuple(TagRecord(mid, str(t)) for t in front.get("tags") or [] if isinstance(t, str | int))
    sib = tuple(FileRecord(mid, s["rfilename"], s.get("size")) for s in info.get("siblings") or [])
    return ModelBundle(model, tags, card, tuple(edges), sib, tuple(flags), tuple(_evals(mid, front)))


def _evals(mid: str, front: dict) -> list[EvalRecord]:
    out = []
    for entry in front.get("model-index") or []:
        for res in (entry or {}).get("results") or [] if isinstance(entry, dict) else []:
            task = (res.get("task") or {}).get("name") or (res.get("task") or {}).get("type")
            dataset = (res.get("dataset") or {}).get("name")
            for m in res.get("metrics") or []:
                v = m.get("value")
                out.append(
                    EvalRecord(
                        mid,
                        str(task),
                        str(m.get("type")),
                        v if isinstance(v, int | float) else None,
                        dataset,
                        "model-index",
                    )
                )
    return out
