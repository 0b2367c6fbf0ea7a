"""One model's metadata → a ModelBundle: the record, tags, card, declared edges, files, flags and evals.

Shared by the Hub crawler, the snapshot importer and the local scanner, so a model reads the same
wherever its metadata comes from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from atlas.records import CardRecord, FileRecord, FlagRecord, ModelBundle, ModelRecord, TagRecord
from crawlers.cards import iter_model_index_evals, parse_card
from crawlers.relations import (
    edges_from_adapter_config,
    edges_from_card,
    edges_from_config,
    edges_from_mergekit,
    edges_from_tags,
)


def bundle_from_info(
    info: Mapping[str, Any],
    *,
    readme: str | bytes | None = None,
    repo_files: Mapping[str, str] | None = None,
    source: str = "hub",
    location: str | None = None,
    crawled_at: datetime | None = None,
) -> ModelBundle:
    """Everything one model's metadata declares.

    `info` is the Hub wire JSON of the model (GET /api/models/{id} or a listing item); `readme` the whole
    README.md when it was read; `repo_files` the text of small files when read (`config.json`,
    `adapter_config.json`, `mergekit_config.yml`). Bad content becomes flags; only a missing id raises.
    """
    info = dict(info)
    model_id = info.get("id") or info.get("modelId")
    if not model_id:
        raise ValueError("model info without an id")
    model_id = str(model_id)
    repo_files = repo_files or {}
    flags: list[FlagRecord] = []

    card_data = info.get("cardData") if isinstance(info.get("cardData"), dict) else None
    text: str | None = None
    if readme is not None:
        parsed = parse_card(readme, model_id=model_id)
        text = parsed.text
        flags.extend(parsed.flags)
        if card_data is None and (parsed.metadata or not parsed.flags):
            card_data = parsed.metadata
    if card_data is not None and "cardData" not in info:
        info["cardData"] = card_data
    config = info.get("config") if isinstance(info.get("config"), dict) else None
    if "config.json" in repo_files:
        config = _json_file(model_id, "config.json", repo_files["config.json"], flags) or config
        if config is not None:
            info["config"] = config

    model = ModelRecord.from_api(
        info, source=source, location=location, crawled_at=crawled_at or _now(),
        card_length=None if text is None else len(text),
    )  # fmt: skip
    tags = tuple(TagRecord(model_id, t) for t in dict.fromkeys(info.get("tags") or []) if isinstance(t, str))
    edges = [
        *edges_from_card(model_id, card_data or {}, flags),
        *edges_from_tags(model_id, list(info.get("tags") or []), flags),
        *edges_from_config(model_id, config or {}, flags),
    ]
    if "adapter_config.json" in repo_files:
        edges.extend(edges_from_adapter_config(model_id, repo_files["adapter_config.json"], flags))
    if "mergekit_config.yml" in repo_files:
        edges.extend(edges_from_mergekit(model_id, repo_files["mergekit_config.yml"], flags))
    card = None
    if card_data is not None or text is not None:
        card = CardRecord(
            model_id,
            json.dumps(card_data, default=str) if card_data is not None else None,
            text,
            info.get("sha"),
        )
    files = tuple(_files(model_id, info.get("siblings")))
    evals = tuple(iter_model_index_evals(model_id, card_data or {}))
    return ModelBundle(
        model=model, tags=tags, card=card, edges=tuple(edges), files=files, flags=tuple(flags), evals=evals
    )


def _files(model_id: str, siblings: Any) -> list[FileRecord]:
    out = []
    for s in siblings if isinstance(siblings, list) else []:
        if isinstance(s, dict) and isinstance(s.get("rfilename"), str):
            lfs = s.get("lfs") if isinstance(s.get("lfs"), dict) else {}
            size = s.get("size", lfs.get("size"))
            out.append(
                FileRecord(
                    model_id, s["rfilename"], size if isinstance(size, int) else None, lfs.get("sha256")
                )
            )
    return out


def _json_file(model_id: str, name: str, text: str, flags: list[FlagRecord]) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError) as e:
        flags.append(FlagRecord(model_id, "bad_config", f"{name} is not JSON ({str(e)[:100]})"))
        return None
    return value if isinstance(value, dict) else None


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
