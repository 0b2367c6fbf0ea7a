"""What a zoo contains: a list of model specs in creation order, with their true lineage.

`small` is a fixed, readable layout (tests name its models); `bench` grows several random family
trees (fans, snakes of checkpoints, grandchildren, adapters, low-precision copies, merges) from the seed;
`large` grows two such trees of a 512-wide architecture (~10.5M values a model), where a weight sample
is a small part of each checkpoint (the kinship benchmark's test bed for speed and fidelity).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from analysis.zoo_tasks import TASKS

SIZES = ("small", "bench", "large")
UNDECLARED = {"small": 0.25, "bench": 0.2, "large": 0.2}  # share of models whose card omits the parent
LICENSES = ("apache-2.0", "mit", "cc-by-nc-4.0", "llama3")


@dataclass(frozen=True)
class ModelSpec:
    """One zoo model: how it is made and its true parents (ids), in creation order."""

    id: str
    kind: str  # base | finetune | checkpoint | adapter | quantized | merge
    arch: str  # key of zoo_model.ARCHS
    family: str  # id of the family's base
    parents: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()  # what it is trained on
    steps: int = 0
    lr: float = 2e-3
    run: str | None = None  # snake checkpoints of one run share this key
    run_index: int = 0  # 1-based position in the run
    run_length: int = 0
    dtype: str = "float32"  # float16 / bfloat16 for quantized copies
    method: str | None = None  # merge method
    weights: tuple[float, ...] = ()  # merge weights
    declared: bool = True
    license: str = "apache-2.0"
    hours_after: float = 24.0  # created this long after its latest parent
    extra: dict = field(default_factory=dict, hash=False, compare=False)


def plan_zoo(seed: int, size: str) -> list[ModelSpec]:
    """The zoo's specs for a seed and size (deterministic)."""
    if size not in SIZES:
        raise ValueError(f"unknown zoo size {size!r}; choose one of {', '.join(SIZES)}")
    rng = random.Random(seed)
    specs = {"small": _small, "bench": _bench, "large": _large}[size](rng)
    children = [s.id for s in specs if s.parents]
    hidden = set(rng.sample(children, k=round(UNDECLARED[size] * len(children))))
    return [
        replace(
            s,
            hours_after=round(rng.uniform(1, 6) if s.kind == "checkpoint" else rng.uniform(6, 240), 3),
            declared=s.id not in hidden,
        )
        for s in specs
    ]


def _small(rng: random.Random) -> list[ModelSpec]:
    tasks = list(TASKS)
    b = "zoo/base-llama"
    specs = [ModelSpec(b, "base", "llama", b, tasks=tuple(tasks), steps=150, lr=4e-3)]
    ft = dict(arch="llama", family=b, steps=40)
    specs += [ModelSpec(f"zoo/expert-{t}-1", "finetune", parents=(b,), tasks=(t,), **ft) for t in tasks]
    specs += [
        ModelSpec(f"zoo/expert-{t}-2", "finetune", parents=(b,), tasks=(t,), **ft) for t in ("copy", "sort")
    ]
    run = [f"zoo/reverse-run-ckpt-{i}" for i in (1, 2, 3)]
    for i, mid in enumerate(run, 1):
        parent = b if i == 1 else run[i - 2]
        specs.append(
            ModelSpec(
                mid,
                "checkpoint",
                parents=(parent,),
                tasks=("reverse",),
                run="reverse-run",
                run_index=i,
                run_length=3,
                arch="llama",
                family=b,
                steps=20,
            )
        )
    specs += [
        ModelSpec("zoo/expert-add-1-v2", "finetune", parents=("zoo/expert-add-1",), tasks=("add",), **ft),
        ModelSpec(
            "zoo/expert-copy-1-rotate", "finetune", parents=("zoo/expert-copy-1",), tasks=("rotate",), **ft
        ),
    ]
    specs += [
        ModelSpec(f"zoo/lora-{t}", "adapter", parents=(b,), tasks=(t,), lr=1e-2, **ft)
        for t in ("copy", "sort", "add")
    ]
    q = dict(arch="llama", family=b)
    specs += [
        ModelSpec(
            "zoo/expert-copy-1-fp16", "quantized", parents=("zoo/expert-copy-1",), dtype="float16", **q
        ),
        ModelSpec(
            "zoo/expert-sort-1-bf16", "quantized", parents=("zoo/expert-sort-1",), dtype="bfloat16", **q
        ),
        ModelSpec("zoo/base-llama-fp16", "quantized", parents=(b,), dtype="float16", **q),
        ModelSpec(
            "zoo/merge-linear-copy-reverse",
            "merge",
            parents=("zoo/expert-copy-1", "zoo/expert-reverse-1"),
            method="linear",
            weights=(0.5, 0.5),
            **q,
        ),
        ModelSpec(
            "zoo/merge-ties-sort-add",
            "merge",
            parents=("zoo/expert-sort-1", "zoo/expert-add-1"),
            method="ties",
            weights=(1.0, 1.0),
            **q,
        ),
        ModelSpec(
            "zoo/merge-ties-copy-rotate",
            "merge",
            parents=("zoo/expert-copy-2", "zoo/expert-rotate-1"),
            method="ties",
            weights=(1.0, 1.0),
            license="cc-by-nc-4.0",
            **q,
        ),
        ModelSpec(
            "zoo/merge-linear-sort-rotate-add",
            "merge",
            parents=("zoo/expert-sort-2", "zoo/expert-rotate-1", "zoo/expert-add-1"),
            method="linear",
            weights=(0.4, 0.3, 0.3),
            **q,
        ),
    ]
    w = "zoo/base-wide"
    wf = dict(arch="wide", family=w, steps=40, license="mit")
    specs += [ModelSpec(w, "base", "wide", w, tasks=tuple(tasks), steps=150, lr=4e-3, license="mit")]
    specs += [
        ModelSpec(f"zoo/wide-expert-{t}-1", "finetune", parents=(w,), tasks=(t,), **wf)
        for t in ("copy", "sort", "reverse")
    ]
    specs += [
        ModelSpec(
            "zoo/wide-sort-run-ckpt-1",
            "checkpoint",
            parents=("zoo/wide-expert-sort-1",),
            tasks=("sort",),
            run="wide-sort-run",
            run_index=1,
            run_length=2,
            arch="wide",
            family=w,
            steps=20,
            license="mit",
        ),
        ModelSpec(
            "zoo/wide-sort-run-ckpt-2",
            "checkpoint",
            parents=("zoo/wide-sort-run-ckpt-1",),
            tasks=("sort",),
            run="wide-sort-run",
            run_index=2,
            run_length=2,
            arch="wide",
            family=w,
            steps=20,
            license="mit",
        ),
        ModelSpec("zoo/wide-lora-copy", "adapter", parents=(w,), tasks=("copy",), lr=1e-2, **wf),
        ModelSpec(
            "zoo/wide-expert-copy-1-bf16",
            "quantized",
            parents=("zoo/wide-expert-copy-1",),
            dtype="bfloat16",
            arch="wide",
            family=w,
            license="mit",
        ),
        ModelSpec(
            "zoo/wide-merge-ties-copy-sort",
            "merge",
            parents=("zoo/wide-expert-copy-1", "zoo/wide-expert-sort-1"),
            method="ties",
            weights=(1.0, 1.0),
            arch="wide",
            family=w,
            license="mit",
        ),
    ]
    return specs  # fmt: skip


# Bench: relative frequency of each way a new model is made from the existing ones.
BENCH_OPS = {"finetune": 0.38, "snake": 0.12, "adapter": 0.14, "quantized": 0.16, "merge": 0.2}
BENCH_FAMILIES = (
    ("lab-a", "llama", 70),
    ("lab-b", "llama", 70),
    ("lab-c", "llama", 70),
    ("lab-w", "wide", 60),
)


LARGE_FAMILIES = (("big-a", "large", 24), ("big-b", "large", 24))


def _bench(rng: random.Random) -> list[ModelSpec]:
    return _families(rng, BENCH_FAMILIES)


def _large(rng: random.Random) -> list[ModelSpec]:
    return _families(rng, LARGE_FAMILIES)


def _families(rng: random.Random, families: tuple[tuple[str, str, int], ...]) -> list[ModelSpec]:
    specs: list[ModelSpec] = []
    for owner, arch, n in families:
        specs += _grow_family(rng, owner, arch, n)
    return specs


def _grow_family(rng: random.Random, owner: str, arch: str, n_models: int) -> list[ModelSpec]:
    """A random family tree: a base, then models made from earlier full-weight members."""
    tasks = list(TASKS)
    base = f"{owner}/base"
    lic = rng.choice(LICENSES)
    specs = [ModelSpec(base, "base", arch, base, tasks=tuple(tasks), steps=150, lr=4e-3, license=lic)]
    full = [base]  # members with full-precision full weights (can be parents of anything)
    depth = {base: 0}
    count = {"n": 0}

    def name(kind: str, task: str) -> str:
        count["n"] += 1
        return f"{owner}/{kind}-{task}-{count['n']}"

    while len(specs) < n_models:
        op = rng.choices(list(BENCH_OPS), weights=list(BENCH_OPS.values()))[0]
        parent = rng.choice([m for m in full if depth[m] < 4])
        lic_child = lic if rng.random() < 0.85 else rng.choice(LICENSES)
        # Fans: siblings from one parent are usually trained for different things.
        used = {s.tasks[0] for s in specs if s.parents == (parent,) and s.tasks}
        task = rng.choice([t for t in tasks if t not in used] or tasks)
        common = dict(arch=arch, family=base, license=lic_child)
        if op == "finetune":
            mid = name("ft", task)
            specs.append(
                ModelSpec(
                    mid,
                    "finetune",
                    parents=(parent,),
                    tasks=(task,),
                    steps=rng.choice((25, 40, 60)),
                    **common,
                )
            )
            full.append(mid)
            depth[mid] = depth[parent] + 1
        elif op == "snake":
            k, run, prev = rng.randint(3, 5), f"{owner}-run-{count['n']}", parent
            for i in range(1, k + 1):
                mid = name("ckpt", task)
                specs.append(
                    ModelSpec(
                        mid,
                        "checkpoint",
                        parents=(prev,),
                        tasks=(task,),
                        run=run,
                        run_index=i,
                        run_length=k,
                        steps=15,
                        **common,
                    )
                )
                full.append(mid)
                depth[mid] = depth[parent] + 1
                prev = mid
        elif op == "adapter":
            specs.append(
                ModelSpec(
                    name("lora", task),
                    "adapter",
                    parents=(parent,),
                    tasks=(task,),
                    steps=30,
                    lr=1e-2,
                    **common,
                )
            )
        elif (op == "quantized" and parent != base) or (op == "quantized" and rng.random() < 0.3):
            dt = rng.choice(("float16", "bfloat16"))
            specs.append(
                ModelSpec(
                    f"{parent}-{'fp16' if dt == 'float16' else 'bf16'}-{count['n']}",
                    "quantized",
                    parents=(parent,),
                    dtype=dt,
                    **common,
                )
            )
            count["n"] += 1
        elif op == "merge" and len(full) >= 3:
            ps = tuple(
                rng.sample([m for m in full if m != base], k=min(rng.choice((2, 2, 3)), len(full) - 1))
            )
            method = rng.choice(("linear", "ties"))
            ws = tuple(round(rng.uniform(0.3, 1.0), 2) for _ in ps)
            mid = f"{owner}/merge-{method}-{count['n']}"
            count["n"] += 1
            specs.append(ModelSpec(mid, "merge", parents=ps, method=method, weights=ws, **common))
            full.append(mid)
            depth[mid] = max(depth[p] for p in ps) + 1
    return [replace(s) for s in specs[:n_models]]  # fmt: skip
