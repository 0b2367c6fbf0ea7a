"""Model cards: split README.md into YAML front matter and text, read model-index results.

Real cards are messy (invalid YAML, lists instead of mappings, templates, Windows line breaks, BOMs,
non-UTF-8 bytes): every problem becomes a flag with a one-line message, never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from atlas.records import EvalRecord, FlagRecord

_FRONT_MATTER = re.compile(r"\A\s*---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)


@dataclass(frozen=True)
class ParsedCard:
    """A README split into its metadata and body."""

    metadata: dict[str, Any]  # {} when absent or invalid
    text: str  # body without the front matter
    flags: tuple[FlagRecord, ...] = ()


def decode_readme(raw: bytes | str, *, model_id: str) -> tuple[str, tuple[FlagRecord, ...]]:
    """Text of a README: UTF-8 (BOM stripped), else Latin-1 with a `non_utf8_card` flag."""
    if isinstance(raw, str):
        return raw.lstrip("\ufeff"), ()
    try:
        return raw.decode("utf-8-sig"), ()
    except UnicodeDecodeError as e:
        flag = FlagRecord(
            model_id, "non_utf8_card", f"README.md is not UTF-8 (byte {e.start}); read as Latin-1"
        )
        return raw.decode("latin-1"), (flag,)


def parse_card(readme: bytes | str, *, model_id: str) -> ParsedCard:
    """Split a README into front matter (parsed YAML mapping) and text."""
    text, flags = decode_readme(readme, model_id=model_id)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    match = _FRONT_MATTER.match(text)
    if not match:
        return ParsedCard({}, text, flags)
    body = text[match.end() :]
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as e:
        detail = " ".join(str(e).split())[:200]
        return ParsedCard({}, body, (*flags, FlagRecord(model_id, "yaml_error", f"front matter: {detail}")))
    if data is None:
        return ParsedCard({}, body, flags)
    if not isinstance(data, dict):
        kind = type(data).__name__
        flag = FlagRecord(model_id, "yaml_error", f"front matter is a {kind}, not a mapping")
        return ParsedCard({}, body, (*flags, flag))
    return ParsedCard({str(k): v for k, v in data.items()}, body, flags)


def iter_model_index_evals(
    model_id: str, metadata: dict[str, Any], *, origin: str = "model-index"
) -> list[EvalRecord]:
    """Evaluation results of a card's `model-index` (entries without a task or value are skipped)."""
    out: list[EvalRecord] = []
    index = metadata.get("model-index")
    if not isinstance(index, list):
        return out
    for entry in index:
        results = entry.get("results") if isinstance(entry, dict) else None
        for result in results if isinstance(results, list) else []:
            if not isinstance(result, dict):
                continue
            task = result.get("task") if isinstance(result.get("task"), dict) else {}
            dataset = result.get("dataset") if isinstance(result.get("dataset"), dict) else {}
            task_name = task.get("type") or task.get("name")
            dataset_name = dataset.get("name") or dataset.get("type")
            for metric in result.get("metrics") or []:
                if not isinstance(metric, dict):
                    continue
                value = _as_float(metric.get("value"))
                metric_name = metric.get("type") or metric.get("name")
                if task_name and metric_name and value is not None:
                    key_task = f"{task_name}/{dataset_name}" if dataset_name else str(task_name)
                    out.append(
                        EvalRecord(
                            model_id,
                            key_task,
                            str(metric_name),
                            value,
                            None if dataset_name is None else str(dataset_name),
                            origin,
                        )
                    )
    return out


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().rstrip("%"))
        except ValueError:
            return None
    return None
