"""The zoo: really trained, deterministic, with a ground truth consistent with its folders."""

from __future__ import annotations

import filecmp
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from analysis.zoo import ARCHS, TASKS, build_zoo, evaluate, load_state, merge_linear, merge_ties, plan_zoo
from atlas.safetensors_header import read_local_header


def _lineage(zoo_dir: Path) -> dict[str, dict]:
    return {m["id"]: m for m in json.loads((zoo_dir / "lineage.json").read_text())["models"]}


def _front_matter(folder: Path) -> dict:
    import yaml

    text = (folder / "README.md").read_text()
    return yaml.safe_load(text.split("---\n")[1])


def _when(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def test_small_zoo_has_every_kind_of_lineage(zoo_dir: Path) -> None:
    models = _lineage(zoo_dir)
    assert 30 <= len(models) <= 40
    kinds = {m["kind"] for m in models.values()}
    assert kinds == {"base", "finetune", "checkpoint", "adapter", "quantized", "merge"}
    assert {m["method"] for m in models.values() if m["kind"] == "merge"} == {"linear", "ties"}
    assert any(not m["declared"] for m in models.values())
    assert sum(m["declared"] for m in models.values() if m["parents"]) >= 0.6 * len(models)


@pytest.mark.slow
def test_same_seed_gives_identical_bytes(zoo_dir: Path, tmp_path: Path) -> None:
    build_zoo(tmp_path, seed=0, size="small")
    for mid in _lineage(zoo_dir):
        for name in ("model.safetensors", "adapter_model.safetensors", "README.md", "config.json"):
            a, b = zoo_dir / mid / name, tmp_path / mid / name
            assert a.exists() == b.exists(), f"{mid}/{name}"
            if a.exists():
                assert filecmp.cmp(a, b, shallow=False), f"{mid}/{name} differs between two builds"
    assert (zoo_dir / "lineage.json").read_text() == (tmp_path / "lineage.json").read_text()


def test_other_seed_gives_other_lineage_and_weights() -> None:
    a, b = plan_zoo(0, "small"), plan_zoo(1, "small")
    assert [s.id for s in a] == [s.id for s in b]
    assert [s.declared for s in a] != [s.declared for s in b]


def test_experts_learn_their_task(zoo_dir: Path) -> None:
    models = _lineage(zoo_dir)
    for base in ("zoo/base-llama", "zoo/base-wide"):
        for m in models.values():
            if m["kind"] == "finetune" and m["parents"] == [base]:
                (task,) = m["tasks"]
                score, before = m["scores"][task], models[base]["scores"][task]
                # A task the base nearly knows already (copy can start at 0.99) only has to be perfected.
                assert score > before + 0.05 or (score >= 0.99 and score > before), (
                    f"{m['id']}: {before} -> {score} on {task}"
                )
    # The base learned something from pretraining: far above chance (0.1) on the easy tasks.
    assert models["zoo/base-llama"]["scores"]["copy"] > 0.5


def test_scores_are_reproducible_with_evaluate(zoo_dir: Path) -> None:
    models = _lineage(zoo_dir)
    for mid in ("zoo/expert-sort-1", "zoo/lora-copy", "zoo/expert-copy-1-fp16", "zoo/wide-expert-copy-1"):
        for task in ("copy", "sort"):
            assert evaluate(zoo_dir / mid, task) == pytest.approx(models[mid]["scores"][task], abs=1e-4)
    with pytest.raises(ValueError, match="unknown task"):
        evaluate(zoo_dir / "zoo/base-llama", "translate")


def test_lineage_matches_folders_and_times(zoo_dir: Path) -> None:
    models = _lineage(zoo_dir)
    order = list(models)
    for i, (mid, m) in enumerate(models.items()):
        folder = zoo_dir / m["path"]
        weights = folder / ("adapter_model.safetensors" if m["kind"] == "adapter" else "model.safetensors")
        assert weights.is_file(), mid
        mtime = datetime.fromtimestamp(weights.stat().st_mtime, tz=timezone.utc)
        assert abs((mtime - _when(m["created_at"])).total_seconds()) < 1e-3, mid
        for p in m["parents"]:
            assert order.index(p) < i and _when(models[p]["created_at"]) < _when(m["created_at"]), (mid, p)
        front = _front_matter(folder)
        declared = front.get("base_model")
        if m["parents"] and m["declared"]:
            assert (declared if isinstance(declared, list) else [declared]) == m["parents"], mid
        else:
            assert declared is None, f"{mid} declares a parent it should hide"
        card_scores = {
            r["task"]["name"]: r["metrics"][0]["value"] for r in front["model-index"][0]["results"]
        }
        assert card_scores == m["scores"]


def test_second_architecture_has_other_shapes(zoo_dir: Path) -> None:
    a = read_local_header(zoo_dir / "zoo/base-llama/model.safetensors", model_id="a").tensors
    b = read_local_header(zoo_dir / "zoo/base-wide/model.safetensors", model_id="b").tensors
    shapes_a, shapes_b = {t.name: t.shape for t in a}, {t.name: t.shape for t in b}
    assert shapes_a["model.embed_tokens.weight"] == (32, 64)
    assert shapes_b["model.embed_tokens.weight"] == (32, ARCHS["wide"].hidden_size)
    assert (
        "model.layers.2.mlp.up_proj.weight" in shapes_b
        and "model.layers.2.mlp.up_proj.weight" not in shapes_a
    )
    config = json.loads((zoo_dir / "zoo/base-wide/config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["hidden_size"] == 96


def test_low_precision_copies_are_near_identical(zoo_dir: Path) -> None:
    parent = load_state(zoo_dir / "zoo/expert-sort-1")
    with safe_open(str(zoo_dir / "zoo/expert-sort-1-bf16/model.safetensors"), "pt") as f:
        assert f.get_tensor("lm_head.weight").dtype == torch.bfloat16
    copy = load_state(zoo_dir / "zoo/expert-sort-1-bf16")
    for name, w in parent.items():
        assert torch.allclose(copy[name], w, rtol=1e-2, atol=1e-3), name
    ft = load_state(zoo_dir / "zoo/expert-sort-2")
    assert (ft["lm_head.weight"] - parent["lm_head.weight"]).abs().max() > 10 * (
        copy["lm_head.weight"] - parent["lm_head.weight"]
    ).abs().max()


def test_lora_adapter_is_peft_format(zoo_dir: Path) -> None:
    folder = zoo_dir / "zoo/lora-sort"
    cfg = json.loads((folder / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["r"] == 4 and cfg["target_modules"] == ["q_proj", "v_proj"]
    assert not (folder / "config.json").exists()
    names = {
        t.name: t.shape for t in read_local_header(folder / "adapter_model.safetensors", model_id="x").tensors
    }
    assert names["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"] == (4, 64)
    assert names["base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"] == (64, 4)


def test_merges_are_pure_and_correct() -> None:
    g = torch.Generator().manual_seed(0)
    base = {"w": torch.randn(4, 6, generator=g)}
    a = {"w": base["w"] + torch.randn(4, 6, generator=g)}
    b = {"w": base["w"] + torch.randn(4, 6, generator=g)}
    snapshot = {k: v.clone() for k, v in a.items()}
    avg = merge_linear(base, [a, b], [1.0, 3.0])
    assert torch.allclose(avg["w"], 0.25 * a["w"] + 0.75 * b["w"])
    assert torch.equal(a["w"], snapshot["w"])
    assert torch.allclose(merge_ties(base, [a], [1.0], density=1.0)["w"], a["w"], atol=1e-6)
    ties = merge_ties(base, [a, b], [1.0, 1.0], density=1.0)["w"] - base["w"]
    da, db = a["w"] - base["w"], b["w"] - base["w"]
    agree = torch.sign(da) == torch.sign(db)
    assert torch.allclose(ties[agree], ((da + db) / 2)[agree], atol=1e-6)
    # Where the signs disagree, only the side with the larger mass survives.
    assert torch.all((ties[~agree] == da[~agree]) | (ties[~agree] == db[~agree]))


def test_merges_of_experts_keep_both_skills(zoo_dir: Path) -> None:
    models = _lineage(zoo_dir)
    merge = models["zoo/merge-linear-copy-reverse"]
    base = models["zoo/base-llama"]
    for parent in merge["parents"]:
        (task,) = models[parent]["tasks"]
        assert merge["scores"][task] > 0.5 * (base["scores"][task] + models[parent]["scores"][task]) - 0.15


def test_bench_plan_is_large_and_varied() -> None:
    specs = plan_zoo(0, "bench")
    assert len(specs) >= 250
    seen: set[str] = set()
    for s in specs:
        assert all(p in seen for p in s.parents), s.id
        seen.add(s.id)
    kinds = [s.kind for s in specs]
    assert all(kinds.count(k) > 5 for k in ("finetune", "checkpoint", "adapter", "quantized", "merge"))
    assert len({s.family for s in specs}) >= 4 and len({s.arch for s in specs}) == 2
    with pytest.raises(ValueError, match="unknown zoo size"):
        plan_zoo(0, "huge")


def test_large_plan_is_two_families_of_large_models_of_every_kind() -> None:
    from analysis.zoo_model import ARCHS, init_state

    specs = plan_zoo(0, "large")
    assert len(specs) == 48 and {s.arch for s in specs} == {"large"} and len({s.family for s in specs}) == 2
    kinds = {s.kind for s in specs}
    assert kinds == {"base", "finetune", "checkpoint", "adapter", "quantized", "merge"}
    n_values = sum(t.numel() for t in init_state(ARCHS["large"], torch.Generator().manual_seed(0)).values())
    assert n_values > 10_000_000


def test_tasks_registry_is_complete() -> None:
    assert set(TASKS) == {"copy", "reverse", "sort", "add", "rotate"}
