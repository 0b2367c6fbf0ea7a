from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from analysis.sampler import sample_model
from analysis.samples import load_sample, sample_path, save_sample
from analysis.schemes import SCHEMES
from analysis.tensor_names import canonical_tensor_name
from tests.analysis.conftest import BROKEN
from tests.hub.server import ReplayHub

DEFAULT = SCHEMES["default"]


def _arrays(result) -> dict[str, np.ndarray]:
    return {t.name: t.values for t in result.tensors}


def test_same_coordinates_in_every_model_and_few_bytes_read(ckpt_root: Path) -> None:
    base = sample_model("zoo/base", str(ckpt_root / "zoo/base"), DEFAULT)
    a1 = sample_model("zoo/ft-a1", str(ckpt_root / "zoo/ft-a1"), DEFAULT)
    assert base.status == a1.status == "ok"
    assert [(t.name, t.shape, t.values.shape) for t in base.tensors] == [
        (t.name, t.shape, t.values.shape) for t in a1.tensors
    ]
    assert base.n_values > 10_000
    # the header read, then the segments; on these small matrices neighbouring segments merge into one read
    assert base.requests <= sum(t.values.shape[0] for t in base.tensors) + 1
    # the values are the tensor's at the scheme's coordinates
    # named without the base-model prefix (`model.`), as a body class would have saved them
    whole = {
        canonical_tensor_name(n): v
        for n, v in load_file(str(ckpt_root / "zoo/ft-a1/model.safetensors")).items()
    }
    assert "layers.0.self_attn.q_proj.weight" in whole
    for t in a1.tensors:
        at = DEFAULT.plan(t.name, t.shape).value_offsets()
        np.testing.assert_array_equal(t.values, whole[t.name].float().numpy().ravel()[at])


@pytest.mark.parametrize("prefix", ["", "transformer."], ids=["body-class", "other-head-class"])
def test_a_checkpoint_saved_by_another_class_has_the_same_coordinates(
    ckpt_root: Path, tmp_path: Path, prefix: str
) -> None:
    """The same weights saved by the body class (`layers.0.*`, as gpt2 and sentence-transformers models are)
    or under another base-model prefix are sampled at the same coordinates, under the same names."""
    whole = load_file(str(ckpt_root / "zoo/ft-a1/model.safetensors"))
    renamed = {
        prefix + n.removeprefix("model.") if n.startswith("model.") else n: v for n, v in whole.items()
    }
    (tmp_path / "m").mkdir()
    save_file(renamed, str(tmp_path / "m/model.safetensors"))
    head, body = (
        _arrays(sample_model("m", str(p), DEFAULT)) for p in (ckpt_root / "zoo/ft-a1", tmp_path / "m")
    )
    assert head.keys() == body.keys() and "layers.0.mlp.up_proj.weight" in head
    for name, values in head.items():
        np.testing.assert_array_equal(body[name], values)


def test_half_precision_and_shards_decode_to_the_same_values(ckpt_root: Path) -> None:
    ref = _arrays(sample_model("m", str(ckpt_root / "zoo/ft-a1"), DEFAULT))
    for folder, atol in [("zoo/ft-a1-fp16", 1e-3), ("zoo/ft-a1-bf16", 4e-3), ("zoo/ft-a1-sharded", 0.0)]:
        got = sample_model(folder, str(ckpt_root / folder), DEFAULT)
        assert got.status == "ok", got.error
        arrays = _arrays(got)
        assert arrays.keys() == ref.keys()
        for name, values in ref.items():
            np.testing.assert_allclose(arrays[name], values, atol=atol, rtol=0)


def test_bf16_is_decoded_exactly(tmp_path: Path) -> None:
    t = torch.randn(64, 256).bfloat16()
    (tmp_path / "m").mkdir()
    save_file({"w": t}, str(tmp_path / "m" / "model.safetensors"))
    got = sample_model("m", str(tmp_path / "m"), SCHEMES["full"])
    np.testing.assert_array_equal(got.tensors[0].values, t.float().numpy())


def test_a_checkpoint_in_a_subfolder_is_not_mixed_into_the_model(tmp_path: Path) -> None:
    """A trainer's output folder holds the final weights and `checkpoint-N/` folders with the same tensor
    names: the model's sample is its own weights only."""
    final, early = torch.randn(64, 256), torch.randn(64, 256)
    (tmp_path / "run/checkpoint-50").mkdir(parents=True)
    save_file({"w": final}, str(tmp_path / "run/model.safetensors"))
    save_file({"w": early}, str(tmp_path / "run/checkpoint-50/model.safetensors"))
    got = sample_model("o/run", str(tmp_path / "run"), SCHEMES["full"])
    assert [t.name for t in got.tensors] == ["w"]
    np.testing.assert_array_equal(got.tensors[0].values, final.numpy())
    (tmp_path / "run/model.safetensors").unlink()
    got = sample_model("o/run", str(tmp_path / "run"), SCHEMES["full"])
    assert got.status == "error" and "only in subfolders (checkpoint-50/model.safetensors)" in got.error


def test_a_variant_beside_the_weights_is_not_sampled_twice(tmp_path: Path) -> None:
    w, extra = torch.randn(64, 256), torch.randn(64, 256)
    (tmp_path / "m").mkdir()
    save_file({"w": w}, str(tmp_path / "m/model.safetensors"))
    save_file({"w": w.half()}, str(tmp_path / "m/model.fp16.safetensors"))
    got = sample_model("o/m", str(tmp_path / "m"), SCHEMES["full"])
    assert [t.name for t in got.tensors] == ["w"]
    np.testing.assert_array_equal(got.tensors[0].values, w.numpy())
    # other weight files with no `model.safetensors`: each tensor once, from the first file that has it
    (tmp_path / "m/model.safetensors").rename(tmp_path / "m/a-pruned.safetensors")
    save_file({"w": w.half(), "v": extra}, str(tmp_path / "m/model.fp16.safetensors"))
    got = sample_model("o/m", str(tmp_path / "m"), SCHEMES["full"])
    assert sorted(t.name for t in got.tensors) == ["v", "w"]
    np.testing.assert_array_equal(_arrays(got)["w"], w.numpy())


def test_lora_adapter_is_sampled_as_scaled_b_times_a(ckpt_root: Path) -> None:
    adapter = sample_model("zoo/lora-a", str(ckpt_root / "zoo/lora-a"), DEFAULT)
    base = _arrays(sample_model("zoo/base", str(ckpt_root / "zoo/base"), DEFAULT))
    merged = _arrays(sample_model("zoo/lora-a-merged", str(ckpt_root / "zoo/lora-a-merged"), DEFAULT))
    assert adapter.status == "ok" and adapter.kind == "adapter" and adapter.base == "zoo/base"
    names = {t.name for t in adapter.tensors}
    assert names == {f"layers.{i}.self_attn.{m}.weight" for i in range(2) for m in ("q_proj", "v_proj")}
    for t in adapter.tensors:
        np.testing.assert_allclose(base[t.name] + t.values, merged[t.name], atol=1e-6)
    # a small adapter file is read once: the header's first read holds its tensors too
    files = [ckpt_root / "zoo/lora-a" / f for f in ("adapter_config.json", "adapter_model.safetensors")]
    assert adapter.requests == 2 and adapter.bytes_read == sum(f.stat().st_size for f in files)


@pytest.mark.parametrize("model_id", BROKEN)
def test_broken_checkpoints_give_one_line_reasons(ckpt_root: Path, model_id: str) -> None:
    got = sample_model(model_id, str(ckpt_root / model_id), DEFAULT)
    expected = "unsupported" if model_id in ("bad/gguf", "bad/int8") else "error"
    assert got.status == expected
    assert got.error and "\n" not in got.error
    assert model_id in got.error
    words = {"bad/truncated": "past", "bad/lying-header": "do not match", "bad/missing-shard": "missing shard",
             "bad/gguf": "gguf", "bad/int8": "I8", "bad/lora-wrong-r": "r=8"}  # fmt: skip
    assert words[model_id] in got.error


@pytest.mark.parametrize("scheme", ["default", "rows"])
def test_http_range_reads_equal_local_reads(ckpt_root: Path, scheme: str) -> None:
    with ReplayHub(repo_dirs=[ckpt_root]) as hub:
        for model_id in ("zoo/ft-a1", "zoo/ft-a1-sharded", "zoo/lora-a", "zoo/ft-a1-bf16"):
            local = sample_model(model_id, str(ckpt_root / model_id), SCHEMES[scheme])
            remote = sample_model(model_id, hub.url, SCHEMES[scheme])
            assert remote.status == "ok", remote.error
            assert remote.bytes_read == local.bytes_read
            # the default's segments lie closer than a request is worth in these small matrices: read whole
            if model_id != "zoo/lora-a" and scheme == "rows":  # a small adapter is read whole with its header
                assert remote.bytes_read < remote.total_bytes
            assert remote.total_bytes == local.total_bytes
            for a, b in zip(local.tensors, remote.tensors, strict=True):
                assert a.name == b.name
                np.testing.assert_array_equal(a.values, b.values)
        bad = sample_model("bad/missing-shard", hub.url, SCHEMES[scheme])
        assert bad.status == "error" and "missing shard" in bad.error


def test_a_server_ignoring_range_is_an_error(ckpt_root: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Whole(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "8")
            self.end_headers()
            self.wfile.write(bytes(8))

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Whole)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        got = sample_model(
            "zoo/base", f"http://127.0.0.1:{server.server_address[1]}", DEFAULT, files=["model.safetensors"]
        )
    finally:
        server.shutdown()
        server.server_close()
    assert got.status == "error" and "not 206" in got.error


def test_stored_sample_round_trips(ckpt_root: Path, tmp_path: Path) -> None:
    got = sample_model("zoo/lora-a", str(ckpt_root / "zoo/lora-a"), DEFAULT)
    path = sample_path(tmp_path, "default", "zoo/lora-a")
    save_sample(got, path)
    back = load_sample(path)
    assert path.name == "zoo__lora-a.safetensors"
    assert (back.model_id, back.kind, back.base) == ("zoo/lora-a", "adapter", "zoo/base")
    for t in got.tensors:
        shape, values = back.tensors[t.name]
        assert shape == t.shape
        np.testing.assert_array_equal(values, t.values)


def test_sample_command_reads_hub_models_over_http(
    ckpt_root: Path, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from atlas.cli import app
    from atlas.commands import weights

    monkeypatch.setattr(weights, "REMOTE_REQUESTS_HINT", 10)  # these small models take ~60 requests
    from atlas.db import connect, query_dicts, upsert
    from atlas.records import FileRecord, ModelRecord

    con = connect(db_path)
    ids = ["zoo/ft-a1", "zoo/ft-a1-sharded", "bad/missing-shard"]
    upsert(con, "models", [ModelRecord(id=m, source="hub", location="https://huggingface.co") for m in ids])
    files = [FileRecord(m, p.name) for m in ids for p in (ckpt_root / m).iterdir()]
    upsert(con, "files", files)
    con.close()
    with ReplayHub(repo_dirs=[ckpt_root]) as hub:
        out = CliRunner().invoke(app, ["sample", *[a for m in ids for a in ("--model", m)], "--endpoint", hub.url,
                                       "--db", str(db_path), "-q", "--model", "nobody/nothing"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "sampled 2 models (0 unsupported, 1 errors)" in out.stdout
    assert "nobody/nothing: not in the atlas" in out.stderr
    assert "range requests a model; over a remote Hub `--scheme rows`" in out.stderr
    con = connect(db_path)
    rows = {r["model_id"]: r for r in query_dicts(con, "SELECT * FROM weight_samples")}
    assert rows["zoo/ft-a1"]["n_values"] == rows["zoo/ft-a1-sharded"]["n_values"] > 0
    assert rows["zoo/ft-a1"]["bytes_read"] < rows["zoo/ft-a1"]["total_bytes"]
    assert "missing shard" in rows["bad/missing-shard"]["error"]


def _broken_headers(root: Path) -> dict[str, str]:
    """Models whose safetensors header is cut, absurd, not JSON or lying about where data ends, with the
    words their one-line error must hold."""
    import struct

    from tests.analysis import checkpoints as ck

    tensors = ck.llama_like(11)
    data = (ck.write_model(root, "hdr/cut-in-header", tensors) / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    (root / "hdr/cut-in-header/model.safetensors").write_bytes(data[: 8 + n // 2])
    huge = ck.write_model(root, "hdr/absurd-length", tensors) / "model.safetensors"
    huge.write_bytes(struct.pack("<Q", 1 << 40) + data[8:])
    garbage = ck.write_model(root, "hdr/not-json", tensors) / "model.safetensors"
    garbage.write_bytes(data[:8] + b"\xff" * n + data[8 + n :])
    past = ck.write_model(root, "hdr/past-the-end", tensors) / "model.safetensors"
    past.write_bytes(data[: len(data) - 100])  # the header still promises every byte
    return {"hdr/cut-in-header": "truncated", "hdr/absurd-length": "not plausible",
            "hdr/not-json": "not valid JSON", "hdr/past-the-end": "past the file"}  # fmt: skip


def test_broken_headers_give_one_line_reasons_locally_and_over_http(tmp_path: Path) -> None:
    cases = _broken_headers(tmp_path)
    with ReplayHub(repo_dirs=[tmp_path]) as hub:
        for model_id, words in cases.items():
            for location in (str(tmp_path / model_id), hub.url):
                got = sample_model(model_id, location, DEFAULT)
                assert got.status == "error", (model_id, location)
                assert got.error and "\n" not in got.error and model_id in got.error
                assert words in got.error, (location, got.error)


def test_sample_command_fails_clearly_when_nothing_can_be_sampled(db_path: Path) -> None:
    from typer.testing import CliRunner

    from atlas.cli import app

    out = CliRunner().invoke(app, ["sample", "--model", "nobody/nothing", "--db", str(db_path), "-q"])
    assert out.exit_code == 1
    assert out.stderr.strip().splitlines() == [
        "warning: nobody/nothing: not in the atlas or no location to read from; skipped",
        "error: none of the models named can be sampled (add models with `hubatlas scan DIR` or `hubatlas crawl`)",
    ]
