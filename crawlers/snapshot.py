"""Hub dumps: wire-format JSONL(.gz) files and `edges.csv` + `models.csv` folders, as model bundles.

Both are streamed in pages so an import of any size runs in bounded memory and a crash loses at most
a page; re-importing the same dump rewrites identical rows.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from atlas.records import EdgeRecord, ModelBundle, ModelRecord
from crawlers.bundle import bundle_from_info

# Edge kinds of the dependency-network dump mapped to our relations.
NETWORK_RELATIONS: dict[str, str] = {
    "finetuned": "finetune", "finetune": "finetune", "quantized": "quantized",
    "merged": "merge", "merge": "merge", "adapter": "adapter",
}  # fmt: skip


class SnapshotError(ValueError):
    """A dump that cannot be read at all (missing, unknown layout)."""


@dataclass(frozen=True)
class SkippedLine:
    """A line of a dump that could not be used, with why."""

    where: str
    reason: str


def dump_kind(path: Path) -> str:
    """'jsonl' for a (gzipped) JSON-lines file, 'network' for a folder with edges.csv and models.csv."""
    if path.is_dir():
        if (path / "edges.csv").is_file() and (path / "models.csv").is_file():
            return "network"
        jsonl = sorted(path.glob("*.jsonl*"))
        if len(jsonl) == 1:
            return "jsonl"
        raise SnapshotError(f"{path}: expected edges.csv + models.csv, or one .jsonl(.gz) file")
    if path.is_file() and (path.name.endswith((".jsonl", ".jsonl.gz", ".json.gz", ".ndjson"))):
        return "jsonl"
    if not path.exists():
        raise SnapshotError(f"{path}: no such file or folder")
    raise SnapshotError(f"{path}: not a .jsonl(.gz) dump nor a folder with edges.csv + models.csv")


def iter_snapshot_bundles(
    path: Path, *, on_skip: Callable[[SkippedLine], None] = lambda s: None
) -> Iterator[ModelBundle]:
    """Yield one bundle per model of the dump at `path` (see `dump_kind`)."""
    kind = dump_kind(path)
    if kind == "network":
        yield from _iter_network(path)
        return
    if path.is_dir():
        path = sorted(path.glob("*.jsonl*"))[0]
    crawled_at = _mtime(path)
    with _open_text(path) as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{number}"
            try:
                record = json.loads(line)
                info = record.get("info", record) if isinstance(record, dict) else None
                if not isinstance(info, dict):
                    raise ValueError("no model info object")
                if "id" not in info and "modelId" not in info and record.get("id"):
                    info = {**info, "id": record["id"]}
                readme = record.get("readme") if isinstance(record.get("readme"), str) else None
                yield bundle_from_info(
                    info, readme=readme, source="snapshot", location=str(path), crawled_at=crawled_at
                )
            except (ValueError, AttributeError, TypeError) as e:
                on_skip(SkippedLine(where, str(e).splitlines()[0][:200] if str(e) else type(e).__name__))


def _iter_network(folder: Path) -> Iterator[ModelBundle]:
    crawled_at = _mtime(folder / "models.csv")
    parents: dict[str, list[EdgeRecord]] = defaultdict(list)
    with (folder / "edges.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            child, parent, kind = (
                (row.get("target") or "").strip(),
                (row.get("source") or "").strip(),
                row.get("edge") or "",
            )
            if child and parent:
                relation = NETWORK_RELATIONS.get(kind.strip().lower(), "unknown")
                flag = "self_loop" if child == parent else None
                parents[child].append(
                    EdgeRecord(child, parent, relation, "tag", 1.0, None, f"dependency network: {kind}", flag)
                )
    seen: set[str] = set()
    with (folder / "models.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            model_id = (row.get("id") or "").strip()
            if not model_id or model_id in seen:
                continue
            seen.add(model_id)
            extra = json.dumps({"type": row.get("type")}) if row.get("type") else None
            model = ModelRecord(
                id=model_id, author=row.get("owner") or model_id.split("/")[0], architecture=row.get("architecture") or None,
                source="snapshot", location=str(folder), crawled_at=crawled_at, extra=extra,
            )  # fmt: skip
            yield ModelBundle(model=model, edges=tuple(_dedup_edges(parents.pop(model_id, []))))
    # Children named only in edges.csv still get their edges (the node shows as a placeholder).
    for child, edges in parents.items():
        model = ModelRecord(id=child, source="snapshot", location=str(folder), crawled_at=crawled_at)
        yield ModelBundle(model=model, edges=tuple(_dedup_edges(edges)))


def _dedup_edges(edges: list[EdgeRecord]) -> list[EdgeRecord]:
    out: dict[tuple[str, str, str], EdgeRecord] = {}
    for e in edges:
        out.setdefault((e.child, e.parent, e.origin), e)
    return list(out.values())


def _open_text(path: Path) -> IO[str]:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc).replace(tzinfo=None)
