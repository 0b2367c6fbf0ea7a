"""Range reads over HTTP as the Hub serves weights: a redirect to a CDN URL, rate limits, tokens."""

from __future__ import annotations

import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.remote import HttpSource, KeepAliveOrigin
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


@pytest.mark.parametrize("proxied", [False, True], ids=["direct", "through-httpx"])
def test_the_hub_token_goes_to_the_hub_and_not_to_its_cdn(
    wide_root: Path, monkeypatch: pytest.MonkeyPatch, proxied: bool
) -> None:
    """A logged-in user's token is sent to `resolve` (the model is gated) and never with the CDN's ranges, which
    a presigned URL refuses (400) and which should not see it. Both ways a range is read: the keep-alive
    connections, and httpx where a proxy is configured (here a proxy setting that bypasses loopback)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", False)  # the sandbox's, undone
    monkeypatch.setenv("HF_TOKEN", "hf_example_token")  # as a user with a token sets it
    if proxied:
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with ReplayHub(repo_dirs=[wide_root], gated={"wide/model"}) as hub:
        got = sample_model("wide/model", hub.url, SCHEMES["default"])
        by_kind = Counter((e.kind, e.authorized) for e in hub.log)
    assert got.status == "ok", got.error
    assert by_kind[("resolve", True)] >= 1 and by_kind[("resolve", False)] == 0
    assert by_kind[("cdn", True)] == 0 and by_kind[("cdn", False)] > 500


def test_a_gated_model_without_a_token_says_how_to_get_access(wide_root: Path) -> None:
    with ReplayHub(repo_dirs=[wide_root], gated={"wide/model"}) as hub:
        got = sample_model("wide/model", hub.url, SCHEMES["default"])
        statuses = Counter(e.status for e in hub.log)
    assert got.status == "error" and "\n" not in got.error
    assert got.error.startswith("wide/model") and "refused (401)" in got.error and "HF_TOKEN" in got.error
    assert "restricted" in got.error  # the Hub's own message comes with it
    assert statuses == {401: 1}  # no retries, no guessing at other file names


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


class _RangeOk(BaseHTTPRequestHandler):
    """Answers every GET with the first two bytes of a ten-byte file, keeping the connection alive."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(206)
        self.send_header("Content-Range", "bytes 0-1/10")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        return


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """A threaded HTTP(S) server on a free loopback port for the block: yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


def test_a_keep_alive_connection_the_server_closed_is_replaced() -> None:
    """A CDN closes idle keep-alive connections without saying so: the next range read on one such
    connection is sent again on a new connection, not counted as a failure."""
    connections: list[int] = []

    class Closing(_RangeOk):
        def setup(self) -> None:
            super().setup()
            connections.append(1)

        def do_GET(self) -> None:
            super().do_GET()
            self.close_connection = True  # closed after answering, with no `Connection: close`

    with _serving(Closing) as port:
        origin = KeepAliveOrigin(f"http://127.0.0.1:{port}/", timeout=5, headers={})
        answers = [origin.get(f"http://127.0.0.1:{port}/f?i={i}", {}) for i in range(5)]
        origin.close()
    assert [(a.status_code, a.content) for a in answers] == [(206, b"ok")] * 5
    assert len(connections) == 5


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself, and its key."""
    import datetime
    import ipaddress

    x509 = pytest.importorskip("cryptography.x509", reason="cryptography makes the test certificate")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def test_cdn_ranges_over_https_verify_the_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Hub's CDN is HTTPS: its ranges are read over TLS, verified like httpx does (`SSL_CERT_FILE`
    honoured); a certificate nobody vouches for fails at once, naming the file, not after retries."""
    cert_file, key_file = _self_signed(tmp_path)

    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    slept: list[float] = []
    with _serving(_RangeOk, tls) as port:
        url = f"https://127.0.0.1:{port}/cdn/f?sig=1"
        source = HttpSource("http://127.0.0.1:9", "tls/model", sleep=slept.append)
        source._direct["model.safetensors"] = url  # as a resolve's redirect leaves it
        with pytest.raises(OSError, match=r"^tls/model/model.safetensors: .*certificate verify failed"):
            source.read("model.safetensors", 0, 2)
        source.close()
        assert slept == []
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
        trusting = HttpSource("http://127.0.0.1:9", "tls/model")
        trusting._direct["model.safetensors"] = url
        assert trusting.read("model.safetensors", 0, 2) == b"ok"
        trusting.close()
