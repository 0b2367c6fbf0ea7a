"""The zoo's synthetic sequence tasks, batches for training, and held-out evaluation.

A sequence is `[task] x1..xn [sep] y1..yn`; a model is scored on the y tokens (teacher forced), so a
merge of two experts can be measured on each expert's task with the same function.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from analysis.zoo_model import ARCHS, StateDict, ZooArch, arch_of, forward

N_DIGITS = 10  # digit tokens 0..9
SEQ_LEN = 6  # digits per input
EVAL_SIZE = 256  # held-out examples per task
EVAL_SEED = 7_000_003  # held-out sets never depend on the zoo seed
SEP = 16
PAD = 17


def _copy(x: torch.Tensor) -> torch.Tensor:
    return x


def _reverse(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


def _sort(x: torch.Tensor) -> torch.Tensor:
    return x.sort(-1).values


def _add(x: torch.Tensor) -> torch.Tensor:
    return (x + x.flip(-1)) % N_DIGITS  # digit i plus digit n-1-i, modulo 10


def _rotate(x: torch.Tensor) -> torch.Tensor:
    return x.roll(-1, -1)


# Task name -> (task token, target function); the registry every caller lists tasks from.
TASKS: dict[str, tuple[int, Callable[[torch.Tensor], torch.Tensor]]] = {
    "copy": (10, _copy),
    "reverse": (11, _reverse),
    "sort": (12, _sort),
    "add": (13, _add),
    "rotate": (14, _rotate),
}


def make_batch(task: str, n: int, generator: torch.Generator) -> torch.Tensor:
    """`n` sequences of `task` as token ids (n, 2 * SEQ_LEN + 2)."""
    token, fn = TASKS[task]
    x = torch.randint(0, N_DIGITS, (n, SEQ_LEN), generator=generator)  # (n, len)
    head = torch.full((n, 1), token)
    sep = torch.full((n, 1), SEP)
    return torch.cat([head, x, sep, fn(x)], dim=1)


def mixture_batch(tasks: list[str], n: int, generator: torch.Generator) -> torch.Tensor:
    """`n` sequences drawn evenly from several tasks (rows shuffled)."""
    per = -(-n // len(tasks))
    rows = torch.cat([make_batch(t, per, generator) for t in tasks])[:n]
    return rows[torch.randperm(rows.shape[0], generator=generator)]


def target_logits(logits: torch.Tensor) -> torch.Tensor:
    """The logits that predict the answer tokens: (batch, SEQ_LEN, vocab)."""
    return logits[:, SEQ_LEN + 1 : -1]


def loss_on(sd: StateDict, arch: ZooArch, tokens: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the answer tokens only."""
    logits = target_logits(forward(sd, arch, tokens))
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), tokens[:, SEQ_LEN + 2 :].reshape(-1)
    )


def eval_set(task: str) -> torch.Tensor:
    """The fixed held-out set of a task (same for every zoo and seed)."""
    g = torch.Generator().manual_seed(EVAL_SEED + list(TASKS).index(task))
    return make_batch(task, EVAL_SIZE, g)


@torch.no_grad()
def accuracy(sd: StateDict, task: str, arch: ZooArch | None = None) -> float:
    """Token accuracy of answers on the task's held-out set (teacher forced), in [0, 1]."""
    arch = arch or arch_of(sd)
    tokens = eval_set(task)
    pred = target_logits(forward(sd, arch, tokens)).argmax(-1)  # (n, len)
    return round(float((pred == tokens[:, SEQ_LEN + 2 :]).float().mean()), 4)


def evaluate(model: str | Path | StateDict, task: str) -> float:
    """Accuracy of a zoo model (a folder with model.safetensors or adapter files, or a state dict) on `task`.

    A LoRA adapter folder is evaluated merged into its base, found through `adapter_config.json`
    (`base_model_name_or_path` relative to the zoo root, or the zoo's lineage.json).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; zoo tasks are {', '.join(TASKS)}")
    if isinstance(model, dict):
        return accuracy(model, task)
    from analysis.zoo_io import load_state

    return accuracy(load_state(Path(model)), task)


__all__ = ["ARCHS", "TASKS", "accuracy", "evaluate", "loss_on", "make_batch", "mixture_batch"]
