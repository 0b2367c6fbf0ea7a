"""Records: one frozen dataclass per table row; field names are the column names (see schema.sql)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

# Relations a lineage edge can have, and what each means; the CLI and app list them from here.
RELATIONS: dict[str, str] = {
    "finetune": "trained further from the parent's weights",
    "adapter": "an adapter (LoRA, ...) on top of the parent",
    "quantized": "the parent's weights at lower precision (GGUF, AWQ, GPTQ, bnb, ...)",
    "merge": "a merge of several parents (mergekit)",
    "distill": "trained to imitate the parent",
    "checkpoint": "an intermediate checkpoint of the same run",
    "conversion": "the parent's weights in another format (ONNX, MLX, ...)",
    "unknown": "declared as a base model, relation not stated",
}

# Where lineage evidence comes from; the first five are declarations by the model's own repo.
ORIGINS: dict[str, str] = {
    "card": "model card front matter `base_model`",
    "tag": "`base_model:{relation}:{id}` tags",
    "config": "config.json `_name_or_path`",
    "adapter_config": "adapter_config.json `base_model_name_or_path`",
    "mergekit": "mergekit_config.yml sources",
    "card_text": "model card text (e.g. 'fine-tuned version of [X]')",
    "name": "the repo name (e.g. a -GGUF suffix)",
    "weights": "sampled weight distances",
    "time": "upload-time order",
}
DECLARED_ORIGINS = frozenset({"card", "tag", "config", "adapter_config", "mergekit"})

# Fields of the Hub's model info that ModelRecord models; the rest is kept in `extra`.
_MODELLED_FIELDS = frozenset(
    {
        "_id", "id", "modelId", "author", "sha", "createdAt", "lastModified", "downloads",
        "downloadsAllTime", "likes", "library_name", "pipeline_tag", "gated", "tags", "cardData",
        "siblings", "config", "safetensors", "private", "disabled",
    }
)  # fmt: skip


def parse_hub_time(value: Any) -> datetime | None:
    """Parse the Hub's ISO time ('2025-03-13T16:10:18.000Z') into a naive UTC datetime."""
    if not value:
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v is not None and not isinstance(v, dict | list)]
    return []


def _license_of(info: dict[str, Any]) -> str | None:
    card = info.get("cardData") or {}
    lic = card.get("license") if isinstance(card, dict) else None
    if isinstance(lic, list):
        lic = lic[0] if lic else None
    if lic:
        return str(lic)
    for tag in info.get("tags") or []:
        if isinstance(tag, str) and tag.startswith("license:"):
            return tag.split(":", 1)[1]
    return None


@dataclass(frozen=True)
class ModelRecord:
    id: str
    author: str | None = None
    sha: str | None = None
    created_at: datetime | None = None
    last_modified: datetime | None = None
    downloads: int | None = None
    downloads_all_time: int | None = None
    likes: int | None = None
    library_name: str | None = None
    pipeline_tag: str | None = None
    license: str | None = None
    gated: str | None = None
    architecture: str | None = None
    model_type: str | None = None
    num_parameters: int | None = None
    languages: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    card_length: int | None = None
    source: str = "hub"
    location: str | None = None
    crawled_at: datetime | None = None
    extra: str | None = None  # JSON text

    @classmethod
    def from_api(
        cls,
        info: dict[str, Any],
        *,
        source: str = "hub",
        location: str | None = None,
        card_length: int | None = None,
        crawled_at: datetime | None = None,
    ) -> ModelRecord:
        """Map the Hub's model info (wire JSON, camelCase) to a record; unmodelled fields go to `extra`."""
        model_id = info.get("id") or info.get("modelId")
        if not model_id:
            raise ValueError("model info without an id")
        card = info.get("cardData") if isinstance(info.get("cardData"), dict) else {}
        config = info.get("config") if isinstance(info.get("config"), dict) else {}
        archs = config.get("architectures") or []
        safetensors = info.get("safetensors") if isinstance(info.get("safetensors"), dict) else {}
        gated = info.get("gated")
        extra = {k: v for k, v in info.items() if k not in _MODELLED_FIELDS}
        return cls(
            id=str(model_id),
            author=info.get("author") or (str(model_id).split("/")[0] if "/" in str(model_id) else None),
            sha=info.get("sha"),
            created_at=parse_hub_time(info.get("createdAt")),
            last_modified=parse_hub_time(info.get("lastModified")),
            downloads=_as_int(info.get("downloads")),
            downloads_all_time=_as_int(info.get("downloadsAllTime")),
            likes=_as_int(info.get("likes")),
            library_name=info.get("library_name") or (card.get("library_name") if card else None),
            pipeline_tag=info.get("pipeline_tag"),
            license=_license_of(info),
            gated=None if gated is None else str(gated).lower(),
            architecture=str(archs[0]) if isinstance(archs, list) and archs else None,
            model_type=config.get("model_type") if isinstance(config.get("model_type"), str) else None,
            num_parameters=_as_int(safetensors.get("total")),
            languages=tuple(_as_list(card.get("language"))),
            datasets=tuple(_as_list(card.get("datasets"))),
            card_length=card_length,
            source=source,
            location=location,
            crawled_at=crawled_at or datetime.now(timezone.utc).replace(tzinfo=None),
            extra=json.dumps(extra, default=str) if extra else None,
        )


def _as_int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class TagRecord:
    model_id: str
    tag: str


@dataclass(frozen=True)
class CardRecord:
    model_id: str
    front_matter: str | None  # JSON text
    text: str | None
    sha: str | None


@dataclass(frozen=True)
class EdgeRecord:
    child: str
    parent: str
    relation: str
    origin: str
    confidence: float = 1.0
    merge_weight: float | None = None
    evidence: str | None = None
    flag: str | None = None


@dataclass(frozen=True)
class FileRecord:
    model_id: str
    path: str
    size: int | None = None
    lfs_sha256: str | None = None


@dataclass(frozen=True)
class FlagRecord:
    model_id: str
    flag: str
    detail: str | None = None


@dataclass(frozen=True)
class EvalRecord:
    model_id: str
    task: str
    metric: str
    value: float | None
    dataset: str | None
    origin: str


@dataclass(frozen=True)
class TensorRecord:
    model_id: str
    file: str
    name: str
    dtype: str
    shape: tuple[int, ...]
    data_start: int
    data_end: int


@dataclass(frozen=True)
class ModelBundle:
    """Everything known about one model from one read of its metadata: written together, atomically."""

    model: ModelRecord
    tags: tuple[TagRecord, ...] = ()
    card: CardRecord | None = None
    edges: tuple[EdgeRecord, ...] = ()
    files: tuple[FileRecord, ...] = ()
    flags: tuple[FlagRecord, ...] = ()
    evals: tuple[EvalRecord, ...] = ()
    tensors: tuple[TensorRecord, ...] = ()
