"""Small real safetensors checkpoints with known lineage, written by torch for the sampler and kinship tests."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch
from safetensors.torch import save_file

HIDDEN, INTER, VOCAB, LAYERS, RANK = 128, 256, 512, 2, 4
LORA_TARGETS = ("q_proj", "v_proj")


def llama_like(seed: int, scale: float = 0.05) -> dict[str, torch.Tensor]:
    """Random weights with Llama-style tensor names."""
    g = torch.Generator().manual_seed(seed)
    shapes = {
        "model.embed_tokens.weight": (VOCAB, HIDDEN),
        "lm_head.weight": (VOCAB, HIDDEN),
        "model.norm.weight": (HIDDEN,),
    }
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        for m in ("q_proj", "k_proj", "v_proj", "o_proj"):
            shapes[f"{p}self_attn.{m}.weight"] = (HIDDEN, HIDDEN)
        shapes[f"{p}mlp.gate_proj.weight"] = (INTER, HIDDEN)
        shapes[f"{p}mlp.up_proj.weight"] = (INTER, HIDDEN)
        shapes[f"{p}mlp.down_proj.weight"] = (HIDDEN, INTER)
        shapes[f"{p}input_layernorm.weight"] = (HIDDEN,)
    return {n: torch.randn(s, generator=g) * scale for n, s in shapes.items()}


def finetune(parent: dict[str, torch.Tensor], seed: int, scale: float) -> dict[str, torch.Tensor]:
    """Parent plus a small dense delta on every matrix (a full fine-tune)."""
    g = torch.Generator().manual_seed(seed)
    return {
        n: (t + torch.randn(t.shape, generator=g) * scale if t.dim() == 2 else t.clone())
        for n, t in parent.items()
    }


def write_model(root: Path, model_id: str, tensors: dict[str, torch.Tensor], **config: object) -> Path:
    folder = root / model_id
    folder.mkdir(parents=True, exist_ok=True)
    save_file({n: t.contiguous() for n, t in tensors.items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], **config}))
    return folder


def lora(
    base: dict[str, torch.Tensor], seed: int, alpha: float = 8.0
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A LoRA adapter's tensors (PEFT names) and the same update merged into full weights."""
    g = torch.Generator().manual_seed(seed)
    adapter, merged = {}, {n: t.clone() for n, t in base.items()}
    for name in base:
        if any(f"{m}.weight" in name for m in LORA_TARGETS):
            module = name.removesuffix(".weight")
            a = torch.randn(RANK, HIDDEN, generator=g) * 0.05  # (r, in)
            b = torch.randn(HIDDEN, RANK, generator=g) * 0.05  # (out, r)
            adapter[f"base_model.model.{module}.lora_A.weight"] = a
            adapter[f"base_model.model.{module}.lora_B.weight"] = b
            merged[name] = base[name] + (alpha / RANK) * b @ a
    return adapter, merged


def write_adapter(
    root: Path, model_id: str, adapter: dict[str, torch.Tensor], base_id: str, r: int = RANK
) -> Path:
    folder = root / model_id
    folder.mkdir(parents=True, exist_ok=True)
    save_file(adapter, str(folder / "adapter_model.safetensors"))
    config = {"peft_type": "LORA", "r": r, "lora_alpha": 8.0, "target_modules": list(LORA_TARGETS),
              "base_model_name_or_path": base_id}  # fmt: skip
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def write_sharded(
    root: Path, model_id: str, tensors: dict[str, torch.Tensor], drop_shard: bool = False
) -> Path:
    folder = root / model_id
    folder.mkdir(parents=True, exist_ok=True)
    names = sorted(tensors)
    halves = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2 :]}  # fmt: skip
    weight_map = {}
    for shard, part in halves.items():
        save_file({n: tensors[n].contiguous() for n in part}, str(folder / shard))
        weight_map.update(dict.fromkeys(part, shard))
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    if drop_shard:
        (folder / "model-00002-of-00002.safetensors").unlink()
    return folder


def truncate(folder: Path, keep: float = 0.6) -> None:
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def lie_in_header(folder: Path) -> None:
    """Rewrite the header so one tensor claims a shape its byte range does not hold."""
    path = folder / "model.safetensors"
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    name = next(k for k in header if k != "__metadata__")
    header[name]["shape"] = [header[name]["shape"][0] * 2, *header[name]["shape"][1:]]
    raw = json.dumps(header).encode().ljust(n)
    path.write_bytes(
        data[:8] + raw[:n] + data[8 + n :]
        if len(raw) == n
        else struct.pack("<Q", len(raw)) + raw + data[8 + n :]
    )
