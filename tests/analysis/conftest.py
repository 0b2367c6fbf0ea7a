"""A folder of small real checkpoints with known lineage (Hub-style `<owner>/<name>` folders)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.analysis import checkpoints as ck

# child -> parent, relation; the lineage the tests recover
LINEAGE = {
    "zoo/ft-a": ("zoo/base", "finetune"),
    "zoo/ft-b": ("zoo/base", "finetune"),
    "zoo/ft-a1": ("zoo/ft-a", "finetune"),
    "zoo/ft-a2": ("zoo/ft-a", "finetune"),
    "zoo/ft-b1": ("zoo/ft-b", "finetune"),
    "zoo/ft-a1-fp16": ("zoo/ft-a1", "quantized"),
    "zoo/ft-a1-bf16": ("zoo/ft-a1", "quantized"),
    "zoo/ft-a1-sharded": ("zoo/ft-a1", "conversion"),
    "zoo/lora-a": ("zoo/base", "adapter"),
    "zoo/lora-a-merged": ("zoo/base", "merge"),
}
BROKEN = (
    "bad/truncated",
    "bad/lying-header",
    "bad/missing-shard",
    "bad/gguf",
    "bad/int8",
    "bad/lora-wrong-r",
)


@pytest.fixture(scope="session")
def ckpt_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("checkpoints")
    base = ck.llama_like(0)
    ft_a, ft_b = ck.finetune(base, 1, 0.02), ck.finetune(base, 2, 0.02)
    a1, a2, b1 = ck.finetune(ft_a, 3, 0.01), ck.finetune(ft_a, 4, 0.01), ck.finetune(ft_b, 5, 0.01)
    for mid, t in [("zoo/base", base), ("zoo/ft-a", ft_a), ("zoo/ft-b", ft_b), ("zoo/ft-a1", a1),
                   ("zoo/ft-a2", a2), ("zoo/ft-b1", b1)]:  # fmt: skip
        ck.write_model(root, mid, t)
    ck.write_model(root, "zoo/ft-a1-fp16", {n: t.half() for n, t in a1.items()})
    ck.write_model(root, "zoo/ft-a1-bf16", {n: t.bfloat16() for n, t in a1.items()})
    ck.write_sharded(root, "zoo/ft-a1-sharded", a1)
    adapter, merged = ck.lora(base, 7)
    ck.write_adapter(root, "zoo/lora-a", adapter, "zoo/base")
    ck.write_model(root, "zoo/lora-a-merged", merged)
    ck.truncate(ck.write_model(root, "bad/truncated", a1))
    ck.lie_in_header(ck.write_model(root, "bad/lying-header", a1))
    ck.write_sharded(root, "bad/missing-shard", a1, drop_shard=True)
    (root / "bad" / "gguf").mkdir(parents=True)
    (root / "bad" / "gguf" / "model.Q4_K_M.gguf").write_bytes(b"GGUF" + bytes(60))
    ck.write_model(root, "bad/int8", {n: (t * 100).to(torch.int8) for n, t in a1.items()})
    ck.write_adapter(root, "bad/lora-wrong-r", adapter, "zoo/base", r=8)
    return root


@pytest.fixture(scope="session")
def scrape_2022(real_data: Path) -> tuple:
    """The 2022 scrape's models (as metadata inference reads them) and the edges inference gives them."""
    from analysis.infer_eval import iter_dump
    from analysis.infer_meta import infer_metadata_edges

    models = [m.facts for m in iter_dump(real_data / "hub-scrape-2022" / "models.jsonl.gz")]
    return models, infer_metadata_edges(models)
