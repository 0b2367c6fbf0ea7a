"""Stored samples: one safetensors file per model under `samples/<scheme>/`, and its `weight_samples` row.

The file holds each sampled tensor's segments (float32) under the base model's tensor name, and in its
metadata the model id, the kind ('full' or 'adapter' deltas), each tensor's whole shape and the scheme's
fingerprint: scheme, name and shape fix the coordinates, identical for every model with that tensor.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
from safetensors.numpy import load_file, save_file

from analysis.sampler import SampleResult, sample_model
from analysis.schemes import Scheme
from atlas.db import query_dicts, upsert


@dataclass(frozen=True)
class WeightSampleRecord:
    model_id: str
    scheme: str
    status: str
    error: str | None
    n_values: int | None
    bytes_read: int | None
    total_bytes: int | None
    requests: int | None
    seconds: float | None
    location: str | None
    sampled_at: datetime


@dataclass(frozen=True)
class StoredSample:
    model_id: str
    kind: str  # 'full' | 'adapter'
    base: str | None  # an adapter's base model id
    tensors: dict[str, tuple[tuple[int, ...], np.ndarray]]  # name -> (whole shape, segments)
    fingerprint: str  # of the scheme definition the sample was taken under ('' when not recorded)


@dataclass(frozen=True)
class SampleJob:
    model_id: str
    location: str  # local folder/file, or endpoint URL
    files: tuple[str, ...] | None  # repo files when known (Hub models), else listed from the folder


def sample_path(samples_root: Path, scheme: str, model_id: str) -> Path:
    """Where a model's sample lives: `<samples>/<scheme>/<owner>__<name>.safetensors`."""
    return samples_root / scheme / (model_id.replace("/", "__") + ".safetensors")


def save_sample(result: SampleResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    index = [{"name": t.name, "shape": list(t.shape)} for t in result.tensors]
    meta = {"model_id": result.model_id, "scheme": result.scheme, "kind": result.kind,
            "base": result.base or "", "index": json.dumps(index), "fingerprint": result.fingerprint}  # fmt: skip
    tmp = path.with_suffix(".tmp")
    save_file({t.name: np.ascontiguousarray(t.values) for t in result.tensors}, str(tmp), metadata=meta)
    tmp.replace(path)


def load_sample(path: Path) -> StoredSample:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    arrays = load_file(str(path))
    tensors = {e["name"]: (tuple(e["shape"]), arrays[e["name"]]) for e in json.loads(meta["index"])}
    return StoredSample(
        meta["model_id"], meta["kind"], meta["base"] or None, tensors, meta.get("fingerprint", "")
    )


def list_jobs(
    con: duckdb.DuckDBPyConnection, ids: list[str] | None, *, endpoint: str | None = None
) -> tuple[list[SampleJob], list[str]]:
    """Jobs for the given models (all when None; dump-only snapshot models only with an endpoint) and the ids
    that cannot be sampled (unknown id, no location)."""
    rows = query_dicts(
        con,
        """SELECT m.id, m.source, m.location, list(f.path ORDER BY f.path) FILTER (WHERE f.path IS NOT NULL) AS files
           FROM models m LEFT JOIN files f ON f.model_id = m.id
           WHERE (? AND (m.source <> 'snapshot' OR ?)) OR m.id IN (SELECT unnest(?)) GROUP BY ALL ORDER BY m.id""",
        [ids is None, endpoint is not None, ids or []],
    )
    found = {r["id"] for r in rows}
    missing = [i for i in ids or [] if i not in found]
    jobs = []
    for r in rows:
        remote = r["source"] in ("hub", "snapshot")
        # A snapshot's location is the dump file: its weights are on the Hub, reachable only via --endpoint.
        stored = r["location"] if r["source"] != "snapshot" else None
        location = (endpoint or stored) if remote else stored
        if not location:
            missing.append(r["id"])
            continue
        files = tuple(r["files"]) if remote and r["files"] else None
        jobs.append(SampleJob(r["id"], str(location), files))
    return jobs, missing


def iter_samples(
    jobs: Iterable[SampleJob], scheme: Scheme, *, workers: int = 4, in_flight: int = 8
) -> Iterator[SampleResult]:
    """Sample models in parallel (each a pure task), yielding results as they finish."""
    with ThreadPoolExecutor(max(1, workers)) as pool:
        futures = [
            pool.submit(sample_model, j.model_id, j.location, scheme,
                        files=list(j.files) if j.files else None, in_flight=in_flight)
            for j in jobs
        ]  # fmt: skip
        for fut in as_completed(futures):
            yield fut.result()


def record_samples(
    con: duckdb.DuckDBPyConnection, results: Sequence[SampleResult], samples_root: Path
) -> list[WeightSampleRecord]:
    """Write each sample file (when ok) and upsert all their `weight_samples` rows in one statement
    (a statement per model would cost a commit per model)."""
    rows = []
    for result in results:
        path = sample_path(samples_root, result.scheme, result.model_id)
        if result.status == "ok":
            save_sample(result, path)
        rows.append(
            WeightSampleRecord(
                model_id=result.model_id,
                scheme=result.scheme,
                status=result.status,
                error=result.error,
                n_values=result.n_values if result.status == "ok" else None,
                bytes_read=result.bytes_read,
                total_bytes=result.total_bytes,
                requests=result.requests,
                seconds=round(result.seconds, 4),
                location=str(path) if result.status == "ok" else None,
                sampled_at=datetime.now(timezone.utc).replace(tzinfo=None),
            )
        )
    upsert(con, "weight_samples", rows)
    return rows


@dataclass
class SamplingSummary:
    """Totals of a sampling run; bytes and requests are over the models sampled ok."""

    counts: dict[str, int]  # status -> models
    bytes_read: int = 0
    total_bytes: int = 0
    requests: int = 0
    seconds: float = 0.0


def sample_jobs(
    con: duckdb.DuckDBPyConnection,
    jobs: Sequence[SampleJob],
    scheme: Scheme,
    samples_root: Path,
    *,
    workers: int = 4,
    in_flight: int = 8,
    batch: int = 64,
    on_result: Callable[[WeightSampleRecord], None] | None = None,
) -> SamplingSummary:
    """Sample every job in parallel, storing samples and `weight_samples` rows `batch` models at a time
    (an interrupted run keeps what it wrote); `on_result` sees each model's row as it is stored."""
    t0 = time.perf_counter()
    summary = SamplingSummary({"ok": 0, "unsupported": 0, "error": 0})
    pending: list[SampleResult] = []

    def flush() -> None:
        for row in record_samples(con, pending, samples_root):
            summary.counts[row.status] += 1
            if row.status == "ok":
                summary.bytes_read += row.bytes_read or 0
                summary.total_bytes += row.total_bytes or 0
                summary.requests += row.requests or 0
            if on_result is not None:
                on_result(row)
        pending.clear()

    for result in iter_samples(jobs, scheme, workers=workers, in_flight=in_flight):
        pending.append(result)
        if len(pending) >= batch:
            flush()
    flush()
    summary.seconds = time.perf_counter() - t0
    return summary
