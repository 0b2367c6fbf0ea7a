"""PyTorch checkpoints (`pytorch_model.bin`) are sampled by range like safetensors, and their pickle never runs."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from analysis.sampler import sample_model
from analysis.schemes import SCHEMES
from tests.hub.server import ReplayHub

DEFAULT = SCHEMES["default"]


def _by_name(result) -> dict[str, np.ndarray]:
    assert result.status == "ok", result.error
    return {t.name: t.values for t in result.tensors}


def _save_bin(folder: Path, tensors: dict[str, torch.Tensor], name: str = "pytorch_model.bin", **kw) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(tensors, str(folder / name), **kw)
    return folder


@pytest.fixture(scope="module")
def bin_root(ckpt_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test checkpoints saved again by torch.save: whole (as parameters, the way a Trainer's
    `state_dict` holds them), sharded with an index, and a LoRA adapter."""
    root = tmp_path_factory.mktemp("bins")
    a1 = load_file(str(ckpt_root / "zoo/ft-a1/model.safetensors"))
    _save_bin(root / "pt/ft-a1", {n: torch.nn.Parameter(t, requires_grad=False) for n, t in a1.items()})
    names = sorted(a1)
    shards = {"pytorch_model-00001-of-00002.bin": names[::2], "pytorch_model-00002-of-00002.bin": names[1::2]}
    for shard, part in shards.items():
        _save_bin(root / "pt/ft-a1-sharded", {n: a1[n] for n in part}, shard)
    weight_map = {n: shard for shard, part in shards.items() for n in part}
    (root / "pt/ft-a1-sharded/pytorch_model.bin.index.json").write_text(
        json.dumps({"weight_map": weight_map})
    )
    adapter = load_file(str(ckpt_root / "zoo/lora-a/adapter_model.safetensors"))
    _save_bin(root / "pt/lora-a", adapter, "adapter_model.bin")
    (root / "pt/lora-a/adapter_config.json").write_text(
        (ckpt_root / "zoo/lora-a/adapter_config.json").read_text()
    )
    return root


@pytest.mark.parametrize(
    ("model_id", "same_as"),
    [("pt/ft-a1", "zoo/ft-a1"), ("pt/ft-a1-sharded", "zoo/ft-a1"), ("pt/lora-a", "zoo/lora-a")],
)
def test_a_torch_checkpoint_samples_like_its_safetensors_copy(
    ckpt_root: Path, bin_root: Path, model_id: str, same_as: str
) -> None:
    want = _by_name(sample_model(same_as, str(ckpt_root / same_as), DEFAULT))
    local = sample_model(model_id, str(bin_root / model_id), DEFAULT)
    got = _by_name(local)
    assert got.keys() == want.keys()
    for name, values in want.items():
        np.testing.assert_array_equal(got[name], values)
    with ReplayHub(repo_dirs=[bin_root]) as hub:
        remote = sample_model(model_id, hub.url, DEFAULT)
    assert remote.bytes_read == local.bytes_read and remote.total_bytes == local.total_bytes
    for name, values in _by_name(remote).items():
        np.testing.assert_array_equal(values, want[name])


def test_a_large_torch_checkpoint_is_read_in_part(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    tensors = {f"model.layers.{i}.mlp.up_proj.weight": torch.randn(1024, 512, generator=g) for i in range(4)}
    got = sample_model("o/m", str(_save_bin(tmp_path / "m", tensors)), DEFAULT)
    assert got.status == "ok", got.error
    assert got.bytes_read < 0.1 * got.total_bytes and got.total_bytes == 4 * 1024 * 512 * 4


def test_a_pickle_that_would_run_code_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class RunsCode:
        def __reduce__(self):  # what a malicious checkpoint does on torch.load(weights_only=False)
            return (os.system, (f"touch {marker}",))

    (tmp_path / "m").mkdir()
    with zipfile.ZipFile(tmp_path / "m/pytorch_model.bin", "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": RunsCode()}, protocol=2))
        z.writestr("archive/byteorder", "little")
    got = sample_model("o/m", str(tmp_path / "m"), DEFAULT)
    assert got.status == "unsupported" and not marker.exists()
    assert got.error.startswith("o/m/pytorch_model.bin: its pickle asks for") and "system" in got.error


def test_a_pickle_with_a_malformed_tensor_is_refused(tmp_path: Path) -> None:
    """Globals a state dict may use, given arguments no torch.save writes (2 dims, 1 stride)."""
    storage = object()

    class WithStorage(pickle.Pickler):
        def persistent_id(self, obj: object) -> tuple | None:
            return ("storage", torch.FloatStorage, "0", "cpu", 4) if obj is storage else None

    class Malformed:
        def __reduce__(self):
            return (torch._utils._rebuild_tensor_v2, (storage, 0, (2, 2), (1,), False, OrderedDict()))

    buffer = io.BytesIO()
    WithStorage(buffer, protocol=2).dump({"w": Malformed()})
    (tmp_path / "m").mkdir()
    with zipfile.ZipFile(tmp_path / "m/pytorch_model.bin", "w") as z:
        z.writestr("archive/data.pkl", buffer.getvalue())
        z.writestr("archive/data/0", bytes(16))
    got = sample_model("o/m", str(tmp_path / "m"), DEFAULT)
    assert got.status == "unsupported" and "malformed shape [2, 2] / strides [1]" in got.error


def test_unreadable_torch_checkpoints_give_one_line_reasons(tmp_path: Path) -> None:
    w = torch.randn(64, 64)
    cases = {
        "legacy": (_save_bin(tmp_path / "legacy", {"w": w}, _use_new_zipfile_serialization=False), "unsupported",
                   "not a zip archive"),
        "transposed": (_save_bin(tmp_path / "transposed", {"w": w.T}), "unsupported", "not stored row-major"),
    }  # fmt: skip
    cut = _save_bin(tmp_path / "cut", {"w": w, "v": torch.randn(256, 64)})
    data = (cut / "pytorch_model.bin").read_bytes()
    (cut / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    cases["cut"] = (cut, "error", "")
    for name, (folder, status, words) in cases.items():
        got = sample_model(f"o/{name}", str(folder), DEFAULT)
        assert got.status == status, (name, got.error)
        assert got.error.startswith(f"o/{name}") and "\n" not in got.error and words in got.error
