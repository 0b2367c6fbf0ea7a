"""Range reads over HTTP as the Hub serves weights: a redirect to a CDN URL, rate limits, tokens."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.remote import HttpSource
from analysis.sampler import sample_model
from analysis.schemes import SCHEMES
from tests.analysis import checkpoints as ck
from tests.hub.server import ReplayHub


@pytest.fixture(scope="module")
def wide_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model whose 512-wide matrices the default scheme reads in hundreds of ranges each."""
    root = tmp_path_factory.mktemp("wide")
    gen = torch.Generator().manual_seed(0)
    tensors = {f"model.layers.{i}.mlp.up_proj.weight": torch.randn(512, 512, generator=gen) for i in range(4)}
    ck.write_model(root, "wide/model", tensors)
    return root


def test_a_weights_file_is_resolved_once_and_its_ranges_read_from_the_cdn(wide_root: Path) -> None:
    with ReplayHub(repo_dirs=[wide_root]) as hub:
        got = sample_model("wide/model", hub.url, SCHEMES["default"])
        kinds = Counter(e.kind for e in hub.log)
        local = sample_model("wide/model", str(wide_root / "wide/model"), SCHEMES["default"])
    assert got.status == "ok", got.error
    assert kinds["cdn"] > 500 and kinds["resolve"] <= 3  # the Hub rate-limits resolve, not its CDN
    assert got.requests == kinds["cdn"] + kinds["resolve"]  # a redirect counts as a request
    assert got.bytes_read == local.bytes_read
    for a, b in zip(local.tensors, got.tensors, strict=True):
        np.testing.assert_array_equal(a.values, b.values)


def test_an_expired_cdn_url_is_resolved_again(wide_root: Path) -> None:
    data = (wide_root / "wide/model/model.safetensors").read_bytes()
    with ReplayHub(repo_dirs=[wide_root]) as hub:
        source = HttpSource(hub.url, "wide/model")
        assert source.read("model.safetensors", 0, 8) == data[:8]
        hub.add_fault(r"^/cdn/", "403", times=1)
        assert source.read("model.safetensors", 100, 164) == data[100:164]
        source.close()
        tail = [(e.kind, e.status) for e in hub.log[-3:]]
    assert tail == [("cdn", 403), ("resolve", 302), ("cdn", 206)]


def test_rate_limits_and_server_errors_are_retried(wide_root: Path) -> None:
    with ReplayHub(repo_dirs=[wide_root]) as hub:
        hub.add_fault(r"/resolve/", "429", times=2, retry_after=0)
        hub.add_fault(r"^/cdn/", "503", times=3)
        got = sample_model("wide/model", hub.url, SCHEMES["rows"])
        statuses = Counter(e.status for e in hub.log)
    assert got.status == "ok", got.error
    assert statuses[429] == 2 and statuses[503] == 3


def test_a_model_that_keeps_failing_names_the_file(wide_root: Path) -> None:
    with ReplayHub(repo_dirs=[wide_root]) as hub:
        hub.add_fault(r"^/cdn/", "500", times=None)
        source = HttpSource(hub.url, "wide/model", sleep=lambda _: None)
        with pytest.raises(OSError, match=r"wide/model/model.safetensors: server answered 500"):
            source.read("model.safetensors", 0, 8)
        source.close()


def test_the_hub_token_is_sent(wide_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", False)  # the sandbox's, undone
    monkeypatch.setenv("HF_TOKEN", "hf_example_token")  # as a user with a token sets it
    with ReplayHub(repo_dirs=[wide_root]) as hub:
        got = sample_model("wide/model", hub.url, SCHEMES["rows"])
        resolved = [e for e in hub.log if e.kind == "resolve"]
    assert got.status == "ok", got.error
    assert resolved and all(e.authorized for e in resolved)


def test_an_endpoint_that_is_down_fails_at_once_without_retries() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    slept: list[float] = []
    source = HttpSource(f"http://127.0.0.1:{port}", "wide/model", sleep=slept.append)
    with pytest.raises(OSError, match=r"^wide/model/model.safetensors: .*(refused|connect)"):
        source.read("model.safetensors", 0, 8)
    source.close()
    assert slept == [] and source.stats.requests == 1
