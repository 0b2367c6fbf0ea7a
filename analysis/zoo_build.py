"""Build a zoo: train, merge and save each planned model as a Hub-style folder, plus lineage.json.

Deterministic from the seed: every model's randomness comes from (seed, model id), training runs on
one thread with deterministic algorithms, and creation times come from the plan, not the clock.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import torch

from analysis.merge_methods import apply_method
from analysis.zoo_model import ARCHS, StateDict, init_state
from analysis.zoo_plan import ModelSpec, plan_zoo
from analysis.zoo_tasks import TASKS, accuracy
from analysis.zoo_train import TrainConfig, apply_lora, train, train_lora
from analysis.zoo_write import write_model

EPOCH = datetime(2025, 1, 6, 9, 0, 0)  # the first base model's creation time (UTC)
LORA_R, LORA_ALPHA = 4, 8
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
GENERATOR = "hubatlas zoo"  # marks lineage.json as a zoo's ground truth


@dataclass(frozen=True)
class ZooSummary:
    """What a build made."""

    out_dir: Path
    lineage_path: Path
    n_models: int
    n_declared: int
    relations: dict[str, int]
    seconds: float


def _seed(seed: int, *parts: str) -> int:
    return zlib.crc32("/".join([str(seed), *parts]).encode())


def build_zoo(
    out_dir: Path,
    *,
    seed: int = 0,
    size: str = "small",
    progress: Callable[[int, int, str], None] | None = None,
) -> ZooSummary:
    """Train and write the zoo into `out_dir` (created; existing zoo folders are overwritten)."""
    import time

    start = time.perf_counter()
    specs = plan_zoo(seed, size)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)  # bitwise-reproducible and, for these shapes, the fastest
    torch.use_deterministic_algorithms(True)
    try:
        entries = _build(out_dir, seed, specs, progress)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)
    lineage = {"generator": GENERATOR, "seed": seed, "size": size, "tasks": list(TASKS), "models": entries}
    lineage_path = out_dir / "lineage.json"
    lineage_path.write_text(json.dumps(lineage, indent=1) + "\n")
    relations: dict[str, int] = {}
    for e in entries:
        relations[e["relation"] or "root"] = relations.get(e["relation"] or "root", 0) + 1
    return ZooSummary(
        out_dir, lineage_path, len(entries), sum(e["declared"] for e in entries if e["parents"]),
        relations, round(time.perf_counter() - start, 2),
    )  # fmt: skip


def _build(
    out_dir: Path, seed: int, specs: list[ModelSpec], progress: Callable[[int, int, str], None] | None
) -> list[dict]:
    full: dict[str, StateDict] = {}  # effective float32 weights of every model (adapters merged)
    runs: dict[str, list[StateDict]] = {}
    created: dict[str, datetime] = {}
    entries = []
    for i, spec in enumerate(specs):
        arch = ARCHS[spec.arch]
        s = _seed(seed, spec.id)
        lora = None
        if spec.kind == "base":
            sd = train(init_state(arch, torch.Generator().manual_seed(s)), arch, _cfg(spec, s))[-1]
        elif spec.kind == "finetune":
            sd = train(full[spec.parents[0]], arch, _cfg(spec, s))[-1]
        elif spec.kind == "checkpoint":
            if spec.run not in runs:  # one run, checkpoints saved along it
                cfg = _cfg(spec, _seed(seed, spec.run or ""))
                cfg = TrainConfig(
                    cfg.tasks, spec.steps * spec.run_length, cfg.lr, cfg.batch, cfg.seed, spec.steps
                )
                runs[spec.run or ""] = train(full[spec.parents[0]], arch, cfg)
            sd = runs[spec.run or ""][spec.run_index - 1]
        elif spec.kind == "adapter":
            lora = train_lora(full[spec.parents[0]], arch, _cfg(spec, s), r=LORA_R, alpha=LORA_ALPHA)
            sd = apply_lora(full[spec.parents[0]], lora, LORA_ALPHA / LORA_R)
        elif spec.kind == "quantized":
            sd = {k: v.to(DTYPES[spec.dtype]).float() for k, v in full[spec.parents[0]].items()}
        elif spec.kind == "merge":
            sd = apply_method(
                spec.method or "linear", full[spec.family], [full[p] for p in spec.parents], spec.weights
            )
        else:
            raise ValueError(f"{spec.id}: unknown kind {spec.kind!r}")
        full[spec.id] = sd
        after = max((created[p] for p in spec.parents), default=EPOCH - timedelta(hours=spec.hours_after))
        created[spec.id] = when = after + timedelta(hours=spec.hours_after)
        scores = {t: accuracy(sd, t, arch) for t in TASKS}
        write_model(out_dir, spec, sd if lora is None else None, lora, scores, when, (LORA_R, LORA_ALPHA))
        entries.append(_entry(spec, when, scores))
        if progress:
            progress(i + 1, len(specs), spec.id)
    return entries


def _cfg(spec: ModelSpec, seed: int) -> TrainConfig:
    return TrainConfig(tasks=spec.tasks, steps=spec.steps, lr=spec.lr, seed=seed)


def _entry(spec: ModelSpec, when: datetime, scores: dict[str, float]) -> dict:
    relation = {"base": None, "finetune": "finetune"}.get(spec.kind, spec.kind)
    if spec.kind == "checkpoint" and spec.run_index == 1:
        relation = "finetune"  # the first checkpoint of a run is fine-tuned from where the run started
    return {
        "id": spec.id, "path": spec.id, "parents": list(spec.parents), "relation": relation,
        "declared": spec.declared, "created_at": when.replace(tzinfo=timezone.utc).isoformat().replace("+00:00", "Z"),
        "scores": scores, "kind": spec.kind, "arch": spec.arch, "family": spec.family, "tasks": list(spec.tasks),
        "dtype": spec.dtype, "license": spec.license, "method": spec.method, "merge_weights": list(spec.weights) or None,
        "merge_base": spec.family if spec.method == "ties" else None,
    }  # fmt: skip
