"""Training for the zoo: full fine-tuning (with checkpoints along the run) and LoRA adapters."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from analysis.zoo_model import StateDict, ZooArch
from analysis.zoo_tasks import loss_on, mixture_batch

LORA_TARGETS = ("q_proj", "v_proj")  # the PEFT default for Llama


@dataclass(frozen=True)
class TrainConfig:
    """One training run; small numbers keep the small zoo under a minute on two cores."""

    tasks: tuple[str, ...]  # a mixture for the base, one task for an expert
    steps: int = 60
    lr: float = 3e-3  # AdamW
    batch: int = 32
    seed: int = 0  # data order and LoRA init
    save_every: int = 0  # >0: also return checkpoints every this many steps (a "snake")


def train(sd: StateDict, arch: ZooArch, cfg: TrainConfig) -> list[StateDict]:
    """Fine-tune all weights from `sd`; returns the checkpoints saved along the run, the last is final."""
    g = torch.Generator().manual_seed(cfg.seed)
    params = {k: v.detach().float().clone().requires_grad_(True) for k, v in sd.items()}
    opt = torch.optim.AdamW(params.values(), lr=cfg.lr, weight_decay=0.0, foreach=True)
    saved: list[StateDict] = []
    for step in range(1, cfg.steps + 1):
        loss = loss_on(params, arch, mixture_batch(list(cfg.tasks), cfg.batch, g))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (cfg.save_every and step % cfg.save_every == 0) or step == cfg.steps:
            saved.append({k: v.detach().clone() for k, v in params.items()})
    return saved


def lora_names(arch: ZooArch) -> list[str]:
    """Weight names a LoRA adapter targets."""
    return [
        f"model.layers.{i}.self_attn.{t}.weight" for i in range(arch.num_hidden_layers) for t in LORA_TARGETS
    ]


def train_lora(
    sd: StateDict, arch: ZooArch, cfg: TrainConfig, *, r: int = 4, alpha: int = 8
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Train a LoRA adapter (A: (r, in), B: (out, r)) on frozen `sd`; returns {weight name: (A, B)}."""
    g = torch.Generator().manual_seed(cfg.seed)
    scale = alpha / r
    ab = {}
    for name in lora_names(arch):
        out_f, in_f = sd[name].shape
        a = (torch.randn(r, in_f, generator=g) / in_f**0.5).requires_grad_(True)  # (r, in)
        b = torch.zeros(out_f, r, requires_grad=True)  # (out, r): starts as the base model
        ab[name] = (a, b)
    opt = torch.optim.AdamW([t for pair in ab.values() for t in pair], lr=cfg.lr, weight_decay=0.0)
    for _ in range(cfg.steps):
        merged = dict(sd)
        for name, (a, b) in ab.items():
            merged[name] = sd[name] + scale * (b @ a)
        loss = loss_on(merged, arch, mixture_batch(list(cfg.tasks), cfg.batch, g))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return {k: (a.detach().clone(), b.detach().clone()) for k, (a, b) in ab.items()}


def apply_lora(sd: StateDict, lora: dict[str, tuple[torch.Tensor, torch.Tensor]], scale: float) -> StateDict:
    """The base weights with each adapter's update `scale * B @ A` added."""
    out = dict(sd)
    for name, (a, b) in lora.items():
        out[name] = sd[name].float() + scale * (b.float() @ a.float())
    return out
