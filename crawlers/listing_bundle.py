"""A listing-only `ModelBundle`: what the Hub's model info alone states, without parsing card text.

Used by the crawler when `crawlers.bundle.bundle_from_info` (full card and file parsing) is unavailable:
model record, tags, files, and declared edges from `base_model:*` tags and the card's `base_model`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from atlas.records import RELATIONS, CardRecord, EdgeRecord, FileRecord, ModelBundle, ModelRecord, TagRecord


def listing_bundle(
    info: dict[str, Any],
    *,
    readme: str | None = None,
    repo_files: Mapping[str, str] | None = None,
    source: str = "hub",
    location: str | None = None,
) -> ModelBundle:
    """Map one model's wire JSON to a bundle; raises ValueError only when the id is missing."""
    model = ModelRecord.from_api(
        info, source=source, location=location, card_length=len(readme) if readme is not None else None
    )
    mid = model.id
    tags = tuple(TagRecord(mid, t) for t in dict.fromkeys(info.get("tags") or []) if isinstance(t, str))
    edges: dict[tuple[str, str], EdgeRecord] = {}
    for tag in info.get("tags") or []:
        parts = tag.split(":") if isinstance(tag, str) else []
        if parts[:1] == ["base_model"] and len(parts) == 3 and parts[2]:
            rel = parts[1] if parts[1] in RELATIONS else "unknown"
            edges[(parts[2], "tag")] = EdgeRecord(
                mid, parts[2], rel, "tag", evidence=tag, flag=_flag(mid, parts[2])
            )
        elif parts[:1] == ["base_model"] and len(parts) == 2 and parts[1]:
            edges.setdefault((parts[1], "tag"), EdgeRecord(mid, parts[1], "unknown", "tag", evidence=tag,
                                                           flag=_flag(mid, parts[1])))  # fmt: skip
    card = info.get("cardData") if isinstance(info.get("cardData"), dict) else None
    if card:
        bases = card.get("base_model")
        bases = [bases] if isinstance(bases, str) else [b for b in bases or [] if isinstance(b, str)]
        rel = card.get("base_model_relation")
        rel = rel if isinstance(rel, str) and rel in RELATIONS else ("merge" if len(bases) > 1 else "unknown")
        for base in bases:
            base = base.strip()
            if base:
                edges[(base, "card")] = EdgeRecord(mid, base, rel, "card", evidence="card base_model",
                                                   flag=_flag(mid, base))  # fmt: skip
    files = tuple(
        FileRecord(mid, s["rfilename"], s.get("size"), (s.get("lfs") or {}).get("sha256"))
        for s in info.get("siblings") or []
        if isinstance(s, dict) and s.get("rfilename")
    )
    card_rec = None
    if card is not None or readme is not None:
        card_rec = CardRecord(mid, json.dumps(card, default=str) if card else None, readme, info.get("sha"))
    return ModelBundle(model=model, tags=tags, card=card_rec, edges=tuple(edges.values()), files=files)


def _flag(child: str, parent: str) -> str | None:
    if child == parent:
        return "self_loop"
    return None if parent.count("/") <= 1 and " " not in parent else "invalid_id"
