"""Writing one zoo model as a Hub-style folder: weights, config, README card, adapter/mergekit files."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml

from analysis.zoo_io import save_lora, save_state
from analysis.zoo_model import ARCHS, StateDict
from analysis.zoo_plan import ModelSpec
from analysis.zoo_train import LORA_TARGETS

# How the card states each true relation; the Hub's base_model_relation has no "checkpoint".
CARD_RELATION = {"finetune": "finetune", "checkpoint": "finetune", "adapter": "adapter",
                 "quantized": "quantized", "merge": "merge"}  # fmt: skip
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def write_model(
    out_dir: Path,
    spec: ModelSpec,
    sd: StateDict | None,
    lora: dict[str, tuple[torch.Tensor, torch.Tensor]] | None,
    scores: dict[str, float],
    when: datetime,
    lora_shape: tuple[int, int],
) -> Path:
    """Write the folder `out_dir/<owner>/<name>` and stamp its files with `when`; returns the folder."""
    folder = out_dir / spec.id
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        if stale.is_file():
            stale.unlink()
    arch = ARCHS[spec.arch]
    if lora is not None:
        r, alpha = lora_shape
        base = spec.parents[0] if spec.declared else f"/home/trainer/runs/{spec.parents[0].split('/')[-1]}"
        adapter_cfg = {
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha, "lora_dropout": 0.0,
            "target_modules": list(LORA_TARGETS), "bias": "none", "base_model_name_or_path": base,
            "fan_in_fan_out": False, "inference_mode": True,
        }  # fmt: skip
        (folder / "adapter_config.json").write_text(json.dumps(adapter_cfg, indent=2) + "\n")
        save_lora(folder, lora)
    else:
        assert sd is not None
        (folder / "config.json").write_text(
            json.dumps(arch.config_json(torch_dtype=spec.dtype), indent=2) + "\n"
        )
        save_state(folder, sd, DTYPES[spec.dtype])
    if spec.kind == "merge" and spec.declared:
        (folder / "mergekit_config.yml").write_text(_mergekit_yaml(spec))
    (folder / "README.md").write_text(_readme(spec, scores))
    ts = when.replace(tzinfo=timezone.utc).timestamp()
    import os

    for f in folder.iterdir():
        os.utime(f, (ts, ts))
    return folder


def _mergekit_yaml(spec: ModelSpec) -> str:
    params = {"density": 0.5} if spec.method == "ties" else {}
    cfg = {
        "merge_method": spec.method,
        "models": [
            {"model": p, "parameters": {"weight": w, **params}}
            for p, w in zip(spec.parents, spec.weights, strict=True)
        ],
        "dtype": "float32",
    }
    if spec.method == "ties":
        cfg["base_model"] = spec.family
    return yaml.safe_dump(cfg, sort_keys=False)


def _readme(spec: ModelSpec, scores: dict[str, float]) -> str:
    name = spec.id.split("/")[-1]
    front: dict = {
        "license": spec.license,
        "library_name": "peft" if spec.kind == "adapter" else "transformers",
    }
    tags = ["zoo", "text-generation", *[f"task:{t}" for t in spec.tasks]]
    if spec.parents and spec.declared:
        front["base_model"] = spec.parents[0] if len(spec.parents) == 1 else list(spec.parents)
        front["base_model_relation"] = CARD_RELATION[spec.kind]
    if spec.kind == "merge":
        tags.append("mergekit")
    front["tags"] = tags
    front["pipeline_tag"] = "text-generation"
    front["model-index"] = [
        {
            "name": name,
            "results": [
                {
                    "task": {"type": "text-generation", "name": task},
                    "dataset": {"name": f"zoo-{task}", "type": f"zoo/{task}"},
                    "metrics": [{"type": "accuracy", "value": acc, "name": "token accuracy"}],
                }
                for task, acc in scores.items()
            ],
        }
    ]
    what = {
        "base": "pretrained on a mixture of synthetic sequence tasks",
        "finetune": f"fine-tuned on {', '.join(spec.tasks)}",
        "checkpoint": f"checkpoint {spec.run_index} of a fine-tuning run on {', '.join(spec.tasks)}",
        "adapter": f"a LoRA adapter trained on {', '.join(spec.tasks)}",
        "quantized": f"a {spec.dtype} copy",
        "merge": f"a {spec.method} merge",
    }[spec.kind]
    body = f"# {name}\n\nA tiny causal language model, {what}.\n"
    return "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n\n" + body
