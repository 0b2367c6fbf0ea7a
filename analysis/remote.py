"""Reading byte ranges of checkpoint files, from a local folder or over HTTP `Range` requests.

Ranges are coalesced (adjacent or nearly adjacent ones become one read) and, over HTTP, several are in
flight at once. Every source counts its requests and bytes, the figures a sample reports.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, urlsplit
from urllib.request import getproxies

import httpx
import numpy as np

from atlas.retry import RETRY_STATUS, RetryConfig, retry_after

MERGE_GAP = 1024  # ranges closer than this are read as one (a request costs more than a KB)
HEAD_PROBE = 65536  # first read of a file: the 8-byte length and, usually, the whole header
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class FetchError(OSError):
    """A file or range that could not be read; the message names the file."""


@dataclass
class ReadStats:
    requests: int = 0
    bytes_read: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, n_bytes: int, requests: int = 1) -> None:
        with self.lock:
            self.requests += requests
            self.bytes_read += n_bytes


class ByteSource(Protocol):
    """Files of one model, read by byte range."""

    stats: ReadStats

    def exists(self, file: str) -> bool: ...
    def read(self, file: str, start: int, end: int) -> bytes: ...
    def size(self, file: str) -> int | None: ...
    def close(self) -> None: ...


def coalesce(ranges: list[tuple[int, int]], gap: int = MERGE_GAP) -> list[tuple[int, int]]:
    """Merge sorted half-open byte ranges that overlap or lie within `gap` bytes of each other."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def read_ranges(
    source: ByteSource, file: str, ranges: list[tuple[int, int]], *, in_flight: int = 8
) -> dict[tuple[int, int], bytes]:
    """Read each requested range of `file`, coalescing them and running up to `in_flight` reads at once."""
    blocks = coalesce(ranges)
    if isinstance(source, LocalSource):  # a disk read costs less than a thread hand-off: one handle, in order
        datas = source.read_blocks(file, blocks)
    elif in_flight > 1 and len(blocks) > 1:
        with ThreadPoolExecutor(min(in_flight, len(blocks))) as pool:
            datas = list(pool.map(lambda b: source.read(file, *b), blocks))
    else:
        datas = [source.read(file, *b) for b in blocks]
    out: dict[tuple[int, int], bytes] = {}
    for start, end in ranges:
        i = _block_index(blocks, start)
        b_start = blocks[i][0]
        out[(start, end)] = datas[i][start - b_start : end - b_start]
    return out


def coalesced_extent(starts: np.ndarray, ends: np.ndarray, gap: int = MERGE_GAP) -> tuple[int, int]:
    """(reads, bytes) that `coalesce` makes of these ranges, vectorised for many thousands of them."""
    if len(starts) == 0:
        return 0, 0
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], np.maximum.accumulate(ends[order])  # running max: the current block's end
    new = np.ones(len(s), bool)
    new[1:] = s[1:] > e[:-1] + gap
    heads = np.flatnonzero(new)
    return len(heads), int((np.maximum.reduceat(e, heads) - s[heads]).sum())


def _block_index(blocks: list[tuple[int, int]], pos: int) -> int:
    lo, hi = 0, len(blocks) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if blocks[mid][0] <= pos:
            lo = mid
        else:
            hi = mid - 1
    return lo


class LocalSource:
    """A model's folder (or a single safetensors file) on disk."""

    def __init__(self, location: str | Path) -> None:
        path = Path(location)
        self.single = path if path.is_file() else None
        self.root = path.parent if self.single else path
        self.stats = ReadStats()

    def list_files(self) -> list[str]:
        if self.single is not None:
            return [self.single.name]
        if not self.root.is_dir():
            raise FetchError(f"{self.root}: no such folder")
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())

    def exists(self, file: str) -> bool:
        return (self.root / file).is_file()

    def path(self, file: str) -> Path:
        return self.root / file

    def size(self, file: str) -> int | None:
        return (self.root / file).stat().st_size

    def read(self, file: str, start: int, end: int) -> bytes:
        try:
            with (self.root / file).open("rb") as f:
                f.seek(start)
                data = f.read(end - start)
        except OSError as e:
            raise FetchError(f"{file}: {e.strerror or e}") from e
        self.stats.add(len(data))
        return data

    def read_blocks(self, file: str, blocks: list[tuple[int, int]]) -> list[bytes]:
        """Several ranges of one file through one open handle (each counts as one read)."""
        out = []
        try:
            with (self.root / file).open("rb") as f:
                for start, end in blocks:
                    f.seek(start)
                    out.append(f.read(end - start))
                    self.stats.add(len(out[-1]))
        except OSError as e:
            raise FetchError(f"{file}: {e.strerror or e}") from e
        return out

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class RangeAnswer:
    """A CDN read's answer, with the fields of an httpx.Response that `HttpSource` reads."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes
    url: str
    history: tuple[()] = ()


# a reused connection that fails like this was closed by the server while idle: try a new one at once
_STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class KeepAliveOrigin:
    """Keep-alive HTTP/1.1 connections to one origin (a CDN) for range GETs, shared by a read's threads.

    A sample is thousands of ranges of tens of bytes, so a request's client-side cost bounds it once
    enough are in flight: through http.client a range costs about a third of httpx's CPU (0.3 against
    0.9-1.2 ms, measured against the replay Hub). Only these headers are sent: no Hub token."""

    def __init__(self, url: str, *, timeout: float, headers: Mapping[str, str]) -> None:
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname or "", parts.port
        self.timeout, self.headers = timeout, dict(headers)
        # certificates verified as httpx verifies them (SSL_CERT_FILE, SSL_CERT_DIR, else certifi's bundle)
        self._tls = httpx.create_ssl_context() if self.https else None
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connect(self) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self._tls)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def get(self, url: str, headers: Mapping[str, str]) -> RangeAnswer:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        while True:
            reused, conn = conn is not None, conn or self._connect()
            try:
                conn.request("GET", target, headers={**self.headers, **headers})
                response = conn.getresponse()
                body = response.read()
            except _STALE_CONNECTION:
                conn.close()
                if not reused:
                    raise
                conn = None
                continue
            except BaseException:
                conn.close()
                raise
            if response.will_close:
                conn.close()
            else:
                with self._lock:
                    self._idle.append(conn)
            return RangeAnswer(response.status, response.headers, body, url)  # type: ignore[arg-type]

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


# Range reads give up sooner than the crawler: a model that stays unreadable is recorded and the run goes on.
SAMPLE_RETRY = RetryConfig(max_retries=4, base_wait=0.5, max_wait=30.0)
# A CDN URL stops working when its signature expires (403) or the file changes: resolve the file again
# (also when it redirects: the resolve path follows redirects, the CDN reads do not).
STALE_DIRECT_STATUS = frozenset({301, 302, 303, 307, 308, 401, 403, 404, 410})
# errors of a request that no retry mends: the endpoint is down or mistyped, or its certificate is bad
_FAIL_AT_ONCE = (httpx.ConnectError, ConnectionRefusedError, socket.gaierror, ssl.SSLCertVerificationError)
MAX_RELATIVE_REDIRECTS = 5
# the Hub's refusals of a model's files: what the user can do about each
ACCESS_REFUSED = {
    401: "needs a Hub token with access (a gated or private model: set HF_TOKEN or run `hf auth login`)",
    403: "the Hub token has no access to it (a gated model: ask for access on its page)",
}


class HttpSource:
    """A Hub repo (or the replay server) read through `{endpoint}/{id}/resolve/{revision}/{file}`.

    The Hub answers `resolve` of a weights file with a redirect to a signed CDN URL, and rate-limits
    `resolve` (a few thousand requests in five minutes). So a file is resolved once and its thousands of
    ranges go to the URL the redirect gave; when that URL is refused (its signature expired), the file is
    resolved again. The Hub token huggingface_hub finds (`HF_TOKEN`, a saved login) is sent to the Hub, for
    gated models, and never to the CDN (a presigned URL refuses a request that carries one). CDN ranges go
    through keep-alive http.client connections (`KeepAliveOrigin`), or through httpx where a proxy is set
    in the environment (httpx implements proxies; the connections do not).
    """

    def __init__(
        self,
        endpoint: str,
        model_id: str,
        *,
        revision: str = "main",
        client: httpx.Client | None = None,
        retry: RetryConfig = SAMPLE_RETRY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base = f"{endpoint.rstrip('/')}/{model_id}/resolve/{quote(revision, safe='')}/"
        self.model_id = model_id
        self._own = client is None
        headers = _hub_headers()
        self.client = client or httpx.Client(timeout=retry.timeout, follow_redirects=True, headers=headers)
        self._cdn_headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        # where the environment sets a proxy, CDN reads go through a token-less httpx client instead
        proxied = any(scheme != "no" for scheme in getproxies())
        self._cdn_client = httpx.Client(timeout=retry.timeout, headers=self._cdn_headers) if proxied else None
        self._origins: dict[tuple[str, str], KeepAliveOrigin] = {}
        self._origins_lock = threading.Lock()
        self.stats = ReadStats()
        self.retry = retry
        self._sleep = sleep
        self._sizes: dict[str, int | None] = {}
        self._direct: dict[str, str] = {}  # file -> the CDN URL its resolve redirected to

    def _url(self, file: str) -> str:
        return self.base + quote(file, safe="/")

    def _send(
        self, method: str, url: str, source: str, *, cdn: bool = False, **options: object
    ) -> httpx.Response | RangeAnswer:
        """One request (`cdn`: a range GET of a CDN URL), retried on 429/5xx answers and dropped
        connections; every attempt is counted."""
        for attempt in range(self.retry.max_retries + 1):
            last = attempt == self.retry.max_retries
            try:
                if cdn:
                    r: httpx.Response | RangeAnswer = self._cdn_get(url, options["headers"])  # type: ignore[arg-type]
                else:
                    r = self.client.request(method, url, **options)  # type: ignore[arg-type]
            except (httpx.TransportError, OSError, http.client.HTTPException) as e:
                self.stats.add(0)
                if last or isinstance(e, _FAIL_AT_ONCE):
                    raise FetchError(f"{source}: {e}") from e
                self._sleep(self.retry.wait(attempt))
                continue
            except httpx.HTTPError as e:
                raise FetchError(f"{source}: {e}") from e
            self.stats.add(len(r.content), requests=1 + len(r.history))  # a redirect is a request too
            if r.status_code not in RETRY_STATUS or last:
                return r
            self._sleep(self.retry.wait(attempt, retry_after(r.headers)))
        raise AssertionError("unreachable")

    def _cdn_get(self, url: str, headers: Mapping[str, str]) -> httpx.Response | RangeAnswer:
        """A GET of a CDN URL, with no Hub token: through the keep-alive connections of its origin, or
        through httpx where a proxy is set."""
        if self._cdn_client is not None:
            return self._cdn_client.get(url, headers=headers)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        with self._origins_lock:
            origin = self._origins.get(key)
            if origin is None:
                origin = KeepAliveOrigin(url, timeout=self.retry.timeout, headers=self._cdn_headers)
                self._origins[key] = origin
        return origin.get(url, headers)

    def _get(self, file: str, headers: dict[str, str]) -> httpx.Response | RangeAnswer:
        """A GET of `file`: from its CDN URL once a redirect has given one, else through `resolve`."""
        source = f"{self.model_id}/{file}"
        direct = self._direct.get(file)
        if direct is not None:
            r = self._send("GET", direct, source, cdn=True, headers=headers)
            if r.status_code not in STALE_DIRECT_STATUS:
                return r
            self._direct.pop(file, None)  # expired: resolve again
        r = self._send("GET", self._url(file), source, headers=headers)
        if r.history and r.status_code < 300:
            self._direct[file] = str(r.url)
        return r

    def exists(self, file: str) -> bool:
        """Whether the repo has `file`. A HEAD does not follow the Hub's redirect to its CDN (a signed URL
        may be valid for GET only); the redirect itself says the file exists. Same-site redirects (a
        renamed repo) are followed."""
        url = self._url(file)
        for _ in range(MAX_RELATIVE_REDIRECTS + 1):
            r = self._send("HEAD", url, f"{self.model_id}/{file}", follow_redirects=False)
            _raise_if_refused(r, self.model_id)
            location = r.headers.get("Location", "")
            if not (r.is_redirect and location):
                return r.status_code == 200
            target = r.url.join(location)
            if (target.host, target.port) != (r.url.host, r.url.port):
                return True  # to the CDN: the file is there
            url = str(target)
        return False

    def size(self, file: str) -> int | None:
        return self._sizes.get(file)

    def read(self, file: str, start: int, end: int) -> bytes:
        source = f"{self.model_id}/{file}"
        r = self._get(file, {"Range": f"bytes={start}-{end - 1}"})
        _raise_if_refused(r, source)
        if r.status_code == 416:  # asked past the end: the file is shorter than its header says
            raise FetchError(f"{source}: range {start}-{end - 1} is past the end of the file (truncated)")
        if r.status_code != 206:
            raise FetchError(f"{source}: server answered {r.status_code} to a range request, not 206")
        m = _CONTENT_RANGE.fullmatch(r.headers.get("Content-Range", "").strip())
        if m is None or int(m.group(1)) != start:
            raise FetchError(f"{source}: missing or wrong Content-Range for bytes {start}-{end - 1}")
        if m.group(3) != "*":
            self._sizes[file] = int(m.group(3))
        return r.content

    def close(self) -> None:
        if self._own:
            self.client.close()
        if self._cdn_client is not None:
            self._cdn_client.close()
        for origin in self._origins.values():
            origin.close()


def _raise_if_refused(r: httpx.Response | RangeAnswer, source: str) -> None:
    """A 401/403 from the Hub as a one-line error saying what to do (not "file not found")."""
    reason = ACCESS_REFUSED.get(r.status_code)
    if reason is not None and not r.history and not isinstance(r, RangeAnswer):  # the Hub's, not its CDN's
        hub = r.headers.get("X-Error-Message", "").strip()
        raise FetchError(
            f"{source}: refused ({r.status_code}): {reason}" + (f"; the Hub says: {hub}" if hub else "")
        )


def _hub_headers() -> dict[str, str]:
    """huggingface_hub's headers for the Hub: user agent and, when it finds one, the token."""
    from huggingface_hub.utils import build_hf_headers

    return build_hf_headers(library_name="hubatlas")
