"""The model zoo: tiny real Llama-style models with known lineage, for tests, benchmarks and the demo.

Public surface (the rest lives in `zoo_*` modules):
- `build_zoo(out_dir, seed=, size=)` trains and writes Hub-style folders plus `lineage.json`;
- `evaluate(folder_or_state_dict, task)` is a model's held-out accuracy on a task;
- `merge_linear` / `merge_ties` merge state dicts; `load_state` reads a zoo folder's full weights.
"""

from __future__ import annotations

from analysis.zoo_build import GENERATOR, ZooSummary, build_zoo
from analysis.zoo_io import load_state
from analysis.zoo_merge import merge_linear, merge_ties
from analysis.zoo_model import ARCHS, ZooArch, forward, init_state
from analysis.zoo_plan import SIZES, ModelSpec, plan_zoo
from analysis.zoo_tasks import TASKS, accuracy, evaluate

__all__ = [
    "ARCHS", "GENERATOR", "SIZES", "TASKS", "ModelSpec", "ZooArch", "ZooSummary",
    "accuracy", "build_zoo", "evaluate", "forward", "init_state", "load_state", "merge_linear",
    "merge_ties", "plan_zoo",
]  # fmt: skip
