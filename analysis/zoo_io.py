"""Reading and writing zoo models as Hub-style folders (safetensors, PEFT adapters)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from analysis.zoo_model import StateDict
from analysis.zoo_train import apply_lora

WEIGHTS = "model.safetensors"
ADAPTER = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."


def save_state(folder: Path, sd: StateDict, dtype: torch.dtype = torch.float32) -> Path:
    """Write `sd` as `model.safetensors` in `dtype`; returns the file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / WEIGHTS
    save_file(
        {k: v.detach().to(dtype).contiguous() for k, v in sorted(sd.items())}, str(path), {"format": "pt"}
    )
    return path


def save_lora(folder: Path, lora: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> Path:
    """Write a PEFT-format adapter: `base_model.model.<module>.lora_A.weight` / `lora_B.weight`."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, (a, b) in lora.items():
        module = name.removesuffix(".weight")
        tensors[f"{PEFT_PREFIX}{module}.lora_A.weight"] = a.contiguous()
        tensors[f"{PEFT_PREFIX}{module}.lora_B.weight"] = b.contiguous()
    path = folder / ADAPTER
    save_file(dict(sorted(tensors.items())), str(path), {"format": "pt"})
    return path


def load_lora(folder: Path) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], dict]:
    """An adapter's {weight name: (A, B)} and its adapter_config.json."""
    cfg = json.loads((folder / "adapter_config.json").read_text())
    raw = load_file(str(folder / ADAPTER))
    lora = {}
    for key, a in raw.items():
        if ".lora_A." in key:
            module = key.removeprefix(PEFT_PREFIX).split(".lora_A.")[0]
            lora[f"{module}.weight"] = (a, raw[key.replace(".lora_A.", ".lora_B.")])
    return lora, cfg


def _zoo_root(folder: Path) -> Path | None:
    for p in folder.resolve().parents:
        if (p / "lineage.json").is_file():
            return p
    return None


def load_state(folder: Path) -> StateDict:
    """Full float32 weights of a zoo model folder; an adapter is merged into its base."""
    folder = Path(folder)
    if (folder / WEIGHTS).is_file():
        return {k: v.float() for k, v in load_file(str(folder / WEIGHTS)).items()}
    if not (folder / ADAPTER).is_file():
        raise FileNotFoundError(f"{folder}: neither {WEIGHTS} nor {ADAPTER}")
    lora, cfg = load_lora(folder)
    root = _zoo_root(folder)
    base_id = cfg.get("base_model_name_or_path") or ""
    base_dir = root / base_id if root and (root / base_id).is_dir() else None
    if base_dir is None and root is not None:
        # Undeclared adapters name a training path; the zoo's ground truth knows the base.
        models = json.loads((root / "lineage.json").read_text())["models"]
        me = next(m for m in models if (root / m["path"]).resolve() == folder.resolve())
        base_dir = root / next(m for m in models if m["id"] == me["parents"][0])["path"]
    if base_dir is None:
        raise FileNotFoundError(f"{folder}: base model {base_id!r} of the adapter not found")
    return apply_lora(load_state(base_dir), lora, cfg["lora_alpha"] / cfg["r"])
