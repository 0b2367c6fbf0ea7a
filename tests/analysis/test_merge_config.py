"""The mergekit YAML of a suggestion: valid for mergekit's own config model, and it merges what we merge."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from analysis.merge_candidates import ModelFacts
from analysis.merge_config import mergekit_config, mergekit_yaml
from analysis.merge_methods import MERGE_METHODS, apply_method
from analysis.zoo import load_state

HAS_MERGEKIT = importlib.util.find_spec("mergekit") is not None
needs_mergekit = pytest.mark.skipif(
    not HAS_MERGEKIT, reason="mergekit not installed (pip install -e '.[merge]')"
)

ME = ModelFacts("org/chat", "LlamaForCausalLM", "apache-2.0", None, "BF16")
PARTNER = ModelFacts("org/code", "LlamaForCausalLM", "mit", "/models/org/code", "BF16")
BASE = ModelFacts("org/base", "LlamaForCausalLM", "apache-2.0", None, "BF16")


def test_yaml_names_base_models_and_parameters_as_each_method_needs() -> None:
    for name, method in MERGE_METHODS.items():
        cfg = yaml.safe_load(mergekit_yaml(method, [ME, PARTNER], BASE, header=["why: because"]))
        assert cfg["merge_method"] == name and cfg["dtype"] == "bfloat16"
        assert [m["model"] for m in cfg["models"]] == [
            "org/chat",
            "/models/org/code",
        ]  # local folder when known
        if method.needs_base:
            assert cfg["base_model"] == "org/base"
        elif name == "slerp":
            assert cfg["base_model"] == "org/chat" and cfg["parameters"] == {"t": 0.5}
        else:
            assert "base_model" not in cfg
    text = mergekit_yaml(MERGE_METHODS["ties"], [ME, PARTNER], BASE, header=["shares base org/base"])
    assert text.startswith("# shares base org/base\n")
    with pytest.raises(ValueError, match="slerp merges at most 2 models"):
        mergekit_config(MERGE_METHODS["slerp"], [ME, PARTNER, BASE], BASE)


@needs_mergekit
def test_every_method_is_valid_for_mergekit() -> None:
    from mergekit.config import MergeConfiguration
    from mergekit.merge_methods import registry

    for name, method in MERGE_METHODS.items():
        for models in ([ME, PARTNER], [ME, PARTNER, BASE]) if method.max_models is None else ([ME, PARTNER],):
            cfg = MergeConfiguration.model_validate(yaml.safe_load(mergekit_yaml(method, models, BASE)))
            spec = registry.get(cfg.merge_method).spec
            known = {p.name for p in spec.parameters}
            used = set(cfg.parameters or {}) | {k for m in cfg.models for k in (m.parameters or {})}
            assert used <= known, (name, used - known)
            required = {p.name for p in spec.parameters if p.required and p.scope.value != "shared"}
            assert all(
                required <= set(m.parameters or {}) for m in cfg.models if m.model != cfg.base_model
            ), name
            assert (cfg.base_model is not None) == (spec.contract.base.value == "required"), name


@needs_mergekit
@pytest.mark.slow
def test_mergekit_merges_the_zoo_as_we_do(zoo_dir: Path, tmp_path: Path) -> None:
    """Run mergekit itself on two zoo experts and compare with the in-project merge, method by method."""
    import torch
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    ids = ("zoo/expert-copy-1", "zoo/expert-sort-1")
    facts = [ModelFacts(m, "LlamaForCausalLM", None, str(zoo_dir / m), "F32") for m in ids]
    base = ModelFacts("zoo/base-llama", "LlamaForCausalLM", None, str(zoo_dir / "zoo/base-llama"), "F32")
    states = [load_state(zoo_dir / m) for m in ids]
    base_sd = load_state(zoo_dir / "zoo/base-llama")
    options = MergeOptions(copy_tokenizer=False, write_model_card=False, quiet=True, lazy_unpickle=False)
    for name in ("linear", "task_arithmetic", "ties", "slerp"):
        cfg = MergeConfiguration.model_validate(
            yaml.safe_load(mergekit_yaml(MERGE_METHODS[name], facts, base))
        )
        out = tmp_path / name
        run_merge(cfg, str(out), options)
        theirs = load_state(out)
        ours = apply_method(name, base_sd, states)
        assert theirs.keys() == ours.keys()
        worst = max(float((theirs[k] - ours[k]).abs().max()) for k in ours)
        scale = max(float(v.abs().max()) for v in ours.values())
        assert worst <= 1e-5 * scale, (name, worst)  # the same weights, to float precision
        assert torch.isfinite(torch.cat([v.flatten() for v in theirs.values()])).all()
