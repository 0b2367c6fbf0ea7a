"""Zoo build time and the zoo's per-task accuracies; writes bench/results/zoo.json.

Usage: python bench/bench_zoo.py [--sizes small bench] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.zoo import TASKS, build_zoo


def accuracy_table(models: list[dict]) -> dict:
    """Mean accuracy per kind of model on its own task(s), and the bases' scores."""
    by_id = {m["id"]: m for m in models}
    out: dict = {"bases": {m["id"]: m["scores"] for m in models if m["kind"] == "base"}}
    for kind in ("finetune", "checkpoint", "adapter", "quantized", "merge"):
        per_task: dict[str, list[float]] = {t: [] for t in TASKS}
        for m in models:
            if m["kind"] == kind:
                tasks = m["tasks"] or [t for p in m["parents"] for t in by_id[p]["tasks"]] or TASKS
                for t in dict.fromkeys(tasks):
                    per_task[t].append(m["scores"][t])
        out[kind] = {t: round(statistics.mean(v), 4) for t, v in per_task.items() if v}
    return out


def nearest_earlier_accuracy(root: Path, models: list[dict]) -> dict:
    """How recoverable lineage is: share of single-parent models whose nearest (full-weight L2) earlier
    model of the same architecture is their true parent, per relation kind."""

    from analysis.zoo import load_state

    flat = {
        m["id"]: torch.cat([v.flatten() for _, v in sorted(load_state(root / m["path"]).items())])
        for m in models
    }
    hits: dict[str, list[bool]] = {}
    for m in models:
        if len(m["parents"]) != 1:
            continue
        earlier = [c["id"] for c in models if c["arch"] == m["arch"] and c["created_at"] < m["created_at"]]
        best = min(earlier, key=lambda c: float((flat[c] - flat[m["id"]]).norm()))
        hits.setdefault(m["kind"], []).append(best == m["parents"][0])
    every = [h for v in hits.values() for h in v]
    return {
        "all": round(sum(every) / len(every), 4),
        **{k: round(sum(v) / len(v), 4) for k, v in hits.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="+", default=["small", "bench"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "torch": torch.__version__, "threads": torch.get_num_threads()}}  # fmt: skip
    for size in args.sizes:
        load = [round(v, 2) for v in os.getloadavg()]
        with tempfile.TemporaryDirectory() as tmp:
            summary = build_zoo(Path(tmp), seed=args.seed, size=size)
            models = json.loads(summary.lineage_path.read_text())["models"]
            recover = nearest_earlier_accuracy(Path(tmp), models)
            nbytes = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
        results[size] = {
            "seed": args.seed, "models": summary.n_models, "declared": summary.n_declared,
            "relations": summary.relations, "build_seconds": summary.seconds, "bytes": nbytes,
            "accuracy": accuracy_table(models), "nearest_earlier_parent_accuracy": recover,
            "load_before": load, "load_after": [round(v, 2) for v in os.getloadavg()],
        }  # fmt: skip
        print(size, json.dumps(results[size], indent=1))
    out = Path(__file__).resolve().parent / "results" / "zoo.json"
    out.parent.mkdir(exist_ok=True)
    previous = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps({**previous, **results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
