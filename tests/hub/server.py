"""A loopback replay of the Hugging Face Hub API, for tests, benchmarks and local demos.

Serves real recorded model records (and/or Hub-style repo folders) with the Hub's wire format:
`GET /api/models` (filter, author, search, expand, full, cardData, config, limit, sort, cursor
pagination through an absolute `Link` header), `GET /api/models/{id}[/revision/{rev}]`,
`GET|HEAD /{id}/resolve/{rev}/{path}` (ETag, X-Repo-Commit, Content-Length, Range -> 206; LFS files, as
on the Hub, answer a 302 to a signed CDN URL with `X-Linked-Size`/`X-Linked-Etag`, served here under `/cdn/`),
the Hub's error headers (`X-Error-Code`, `X-Error-Message`), 307 redirects for renamed repos, and
switchable faults. It counts requests per kind so tests can assert request budgets.

Run by hand: `python -m tests.hub.server --data ../shared/data/hub-trees-2025 --port 8077`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, unquote_plus, urlencode, urlsplit

from tests.hub.repos import LFS_SUFFIXES, Catalog, Repo, load_records, repos_from_dirs, repos_from_records

MAX_PAGE_SIZE = 1000  # the Hub caps `limit` per page
CDN_URL_SECONDS = 3600  # how long a CDN URL from a `resolve` redirect stays valid
FAULT_KINDS = ("403", "429", "500", "502", "503", "slow", "truncate")
_TRUTHY = {"1", "true", "True", "yes"}
_EXPOSE = (
    "X-Repo-Commit,X-Request-Id,X-Error-Code,X-Error-Message,X-Total-Count,ETag,Link,Accept-Ranges,"
    "Content-Range,X-Linked-Size,X-Linked-ETag"
)
_INFO_PATH = re.compile(r"^/api/models/(?P<id>[^/]+(?:/[^/]+)?)(?:/revision/(?P<rev>[^/]+))?$")


@dataclass
class Fault:
    """A switchable failure: requests whose path matches `pattern` get `kind`, `times` times (None = always)."""

    pattern: str
    kind: str
    times: int | None = 1
    retry_after: int = 0  # seconds, for 429
    delay: float = 0.5  # seconds, for 'slow'
    method: str | None = None  # only requests with this method (None: all)
    hits: int = 0

    def active(self) -> bool:
        return self.times is None or self.hits < self.times


@dataclass(frozen=True)
class Logged:
    method: str
    path: str  # path with query string, as requested
    kind: str  # 'list' | 'info' | 'resolve' | 'cdn' | 'other'
    status: int
    authorized: bool = False  # an Authorization header came with it
    body_bytes: int = 0  # bytes of body answered (a HEAD answers none)


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class ReplayHub:
    """The replay server: `with ReplayHub(records=...) as hub: HfApi(endpoint=hub.url)...`.

    Args:
        records: `{"info": <wire JSON>, "readme": <text or None>}` items (the hub-trees-2025 lines).
        repo_dirs: folders of Hub-style repos `<root>/<owner>/<name>/...`, served with all their files.
        page_size: models per listing page when the request gives no `limit`.
        children_counts: 'int' or 'dict' (per relation): how `childrenModelCount` is answered.
        redirects: old repo id -> new id, answered with a 307 like a renamed repo.
    """

    def __init__(
        self,
        *,
        records: Iterable[Mapping[str, Any]] = (),
        repo_dirs: Iterable[str | Path] = (),
        page_size: int = MAX_PAGE_SIZE,
        children_counts: str = "int",
        redirects: Mapping[str, str] | None = None,
        gated: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        repos: list[Repo] = [*repos_from_records(records), *repos_from_dirs(repo_dirs)]
        self.gated = set(gated)  # these repos' files need a token (any token stands for an approved one)
        for repo in repos:
            if repo.id in self.gated:
                repo.info["gated"] = "manual"
        self.catalog = Catalog(repos, children_counts=children_counts)
        self.page_size = page_size
        self.redirects = dict(redirects or {})
        self.counts: Counter[str] = Counter()
        self.log: list[Logged] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def cdn_url(self) -> str:
        """Where `resolve` redirects weights: the same server under another host name, so that clients
        treat it as the Hub's CDN (another origin: no token sent, a HEAD not followed there)."""
        host, port = self._server.server_address[:2]
        other = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}.get(host, host)
        return f"http://{other}:{port}"

    def start(self) -> ReplayHub:
        self._thread = threading.Thread(target=self._server.serve_forever, name="replay-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ReplayHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ test controls

    @property
    def total_requests(self) -> int:
        return sum(self.counts.values())

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.log.clear()

    def add_fault(self, pattern: str, kind: str, *, times: int | None = 1, **options: Any) -> Fault:
        """Make requests whose path and query (URL-decoded) match the regex `pattern` fail with `kind`.

        `kind` is one of FAULT_KINDS: an HTTP status ('429' with `retry_after=`; '403' as an expired CDN URL
        answers), 'slow' (`delay=` seconds, then the normal answer) or 'truncate' (the full Content-Length,
        half the body, then close).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; choose one of {FAULT_KINDS}")
        fault = Fault(pattern, kind, times, **options)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method not in (None, method):
                    continue
                if fault.active() and re.search(fault.pattern, path):
                    fault.hits += 1
                    return fault
        return None

    def _record(self, entry: Logged) -> None:
        with self._lock:
            self.counts[entry.kind] += 1
            self.log.append(entry)

    # ------------------------------------------------------------------ routes

    def answer(
        self, method: str, raw_path: str, range_header: str | None = None, authorized: bool = False
    ) -> tuple[str, _Response]:
        """Route one request (`authorized`: it carries an Authorization header); returns (kind, response)
        without touching the socket."""
        split = urlsplit(raw_path)
        path, query = split.path, parse_qs(split.query, keep_blank_values=True)
        if path == "/api/models" and method == "GET":
            return "list", self._list(query)
        if path.startswith("/api/models/") and method in ("GET", "HEAD"):
            return "info", self._info(path, query)
        if "/resolve/" in path and method in ("GET", "HEAD"):
            return "resolve", self._resolve(path, method, range_header, authorized)
        if path.startswith("/cdn/") and method in ("GET", "HEAD"):
            return "cdn", self._cdn(path, query, method, range_header, authorized)
        return "other", _error(404, None, "Sorry, we can't find the page you are looking for.")

    def _list(self, query: dict[str, list[str]]) -> _Response:
        expand = [*query.get("expand", []), *query.get("expand[]", [])]
        full, card, config = (_flag(query, k) for k in ("full", "cardData", "config"))
        if expand and (full or card or config):
            return _error(400, None, '"expand" cannot be combined with "full", "cardData" or "config"')
        try:
            size = min(int(_one(query, "limit") or self.page_size), MAX_PAGE_SIZE)
            start = _decode_cursor(_one(query, "cursor"))
        except ValueError as e:
            return _error(400, None, f"Invalid query parameter: {e}")
        found = self.catalog.search(
            filters=query.get("filter", []), author=_one(query, "author"),
            search=_one(query, "search"), sort=_one(query, "sort"),
        )  # fmt: skip
        page = found[start : start + size]
        body = [self.catalog.render(r, expand=expand, full=full, card=card, config=config) for r in page]
        headers = {"X-Total-Count": str(len(found))}
        if start + size < len(found):
            params = [(k, v) for k, vs in query.items() if k != "cursor" for v in vs]
            params.append(("cursor", _encode_cursor(start + size)))
            headers["Link"] = f'<{self.url}/api/models?{urlencode(params)}>; rel="next"'
        return _json(200, body, headers)

    def _info(self, path: str, query: dict[str, list[str]]) -> _Response:
        match = _INFO_PATH.match(path)
        if not match:
            return _error(404, None, "Sorry, we can't find the page you are looking for.")
        repo_id, rev = unquote(match["id"]), unquote(match["rev"]) if match["rev"] else None
        if repo_id in self.redirects:
            target = path.replace(match["id"], quote(self.redirects[repo_id], safe="/"), 1)
            return _redirect(target)
        repo = self.catalog.get(repo_id)
        if repo is None:
            return _error(404, "RepoNotFound", "Repository not found")
        if rev is not None and rev not in ("main", repo.sha):
            return _error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        expand = [*query.get("expand", []), *query.get("expand[]", [])]
        return _json(200, self.catalog.model_info(repo, expand=expand))

    def _resolve(self, path: str, method: str, range_header: str | None, authorized: bool) -> _Response:
        repo_part, _, rest = path.partition("/resolve/")
        repo_id = unquote(repo_part.lstrip("/"))
        rev_raw, _, file_raw = rest.partition("/")
        rev, file_path = unquote(rev_raw), unquote(file_raw)
        if repo_id in self.redirects:
            return _redirect(path.replace(repo_part, "/" + quote(self.redirects[repo_id], safe="/"), 1))
        repo = self.catalog.get(repo_id)
        if repo is None:
            return _error(404, "RepoNotFound", "Repository not found")
        if rev not in ("main", repo.sha):
            return _error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        if repo.id in self.gated and not authorized:
            return _error(
                401,
                "GatedRepo",
                f"Access to model {repo.id} is restricted. You must have access to it and be authenticated "
                "to access it. Please log in.",
            )
        size = repo.file_size(file_path)
        if size is None:
            return _error(404, "EntryNotFound", f"Entry not found: {file_path}")
        if file_path.endswith(LFS_SUFFIXES):
            return self._to_cdn(repo, file_path, size)
        return _file_response(repo, file_path, size, method, range_header)

    def _to_cdn(self, repo: Repo, file_path: str, size: int) -> _Response:
        """The Hub's answer for an LFS file: 302 to a signed, expiring URL of the content's sha256."""
        sha256 = repo.etag(file_path)
        expires = int(time.time()) + CDN_URL_SECONDS
        signature = _cdn_signature(repo.id, file_path, sha256, expires)
        location = (
            f"{self.cdn_url}/cdn/{quote(repo.id, safe='/')}/{sha256}/{quote(file_path, safe='/')}"
            f"?Expires={expires}&Signature={signature}"
        )
        body = f"Found. Redirecting to {location}".encode()
        pointer = hashlib.sha1(
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
        )
        return _Response(
            302,
            body,
            {
                "Location": location,
                "ETag": f'"{pointer.hexdigest()}"',
                "X-Linked-Etag": f'"{sha256}"',
                "X-Linked-Size": str(size),
                "X-Repo-Commit": repo.sha,
                "Content-Type": "text/plain; charset=utf-8",
            },
        )

    def _cdn(
        self, path: str, query: dict[str, list[str]], method: str, range_header: str | None, authorized: bool
    ) -> _Response:
        """A CDN URL from `_to_cdn`: refused (403) to anything but a GET, once expired, or when its
        signature does not match; refused (400) with an Authorization header, as an S3 presigned URL is
        (a Hub token sent on to the CDN breaks the read, and should not leave the Hub anyway)."""
        if authorized:
            return _Response(400, b"InvalidArgument: Only one auth mechanism allowed", {})
        parts = unquote(path.removeprefix("/cdn/")).split("/")
        if len(parts) < 4:
            return _error(404, None, "Not Found")
        repo_id, sha256, file_path = "/".join(parts[:2]), parts[2], "/".join(parts[3:])
        repo = self.catalog.get(repo_id)
        try:
            expires = int(_one(query, "Expires") or "0")
        except ValueError:
            expires = 0
        if (
            method != "GET"  # signed for GET only, as an S3 presigned URL is
            or repo is None
            or repo.file_size(file_path) is None
            or repo.etag(file_path) != sha256
            or _one(query, "Signature") != _cdn_signature(repo_id, file_path, sha256, expires)
            or expires < time.time()
        ):
            return _Response(403, b"AccessDenied: Request has expired or signature does not match", {})
        return _file_response(repo, file_path, repo.file_size(file_path) or 0, method, range_header)


def _cdn_signature(repo_id: str, file_path: str, sha256: str, expires: int) -> str:
    return hashlib.sha256(f"{repo_id}\0{file_path}\0{sha256}\0{expires}".encode()).hexdigest()[:32]


def _file_response(repo: Repo, file_path: str, size: int, method: str, range_header: str | None) -> _Response:
    """A file's bytes (whole, or one `Range`) with the Hub's headers."""
    headers = {
        "ETag": f'"{repo.etag(file_path)}"',
        "X-Repo-Commit": repo.sha,
        "Accept-Ranges": "bytes",
        "Content-Type": "text/plain; charset=utf-8"
        if file_path.endswith(".md")
        else "application/octet-stream",
        "Content-Disposition": f'inline; filename="{Path(file_path).name}"',
    }
    status, start, end = 200, 0, size - 1
    if range_header is not None:
        span = _parse_range(range_header, size)
        if span is None:
            return _Response(416, b"", {"Content-Range": f"bytes */{size}"})
        status, (start, end) = 206, span
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    # Only the asked-for bytes are read: a ranged read of a 1 GB checkpoint costs what it sends.
    body = b"" if method == "HEAD" or end < start else repo.read_range(file_path, start, end)
    return _Response(status, body, headers)


# ---------------------------------------------------------------------- wire helpers


def _one(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[-1] if values else None


def _flag(query: dict[str, list[str]], key: str) -> bool:
    return _one(query, key) in _TRUTHY


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return int(json.loads(base64.urlsafe_b64decode(padded))["offset"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"bad cursor {cursor!r}") from e


def _json(status: int, obj: Any, headers: Mapping[str, str] | None = None) -> _Response:
    body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
    tag = base64.b64encode(hashlib.sha1(body).digest()).decode()[:27]
    return _Response(
        status,
        body,
        {
            "Content-Type": "application/json; charset=utf-8",
            "ETag": f'W/"{len(body):x}-{tag}"',
            **(headers or {}),
        },
    )


def _error(status: int, code: str | None, message: str) -> _Response:
    response = _json(status, {"error": message})
    if code:
        response.headers["X-Error-Code"] = code
    response.headers["X-Error-Message"] = message
    return response


def _redirect(location: str) -> _Response:
    body = f"Temporary Redirect. Redirecting to {location}".encode()
    return _Response(307, body, {"Location": location, "Content-Type": "text/plain; charset=utf-8"})


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """A single `bytes=a-b` / `bytes=a-` / `bytes=-n` range as inclusive offsets, or None if unsatisfiable."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", value.strip())
    if not match or (not match[1] and not match[2]):
        return None
    if not match[1]:
        start, end = max(size - int(match[2]), 0), size - 1
    else:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    return (start, end) if start <= end and start < size else None


def _handler_for(hub: ReplayHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "replay-hub"
        timeout = 30  # idle keep-alive connections close by themselves
        # Headers and body go out as two writes; with Nagle's algorithm the second waits for the client's
        # delayed ACK of the first (tens of ms a request), which a CDN does not do.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            self._serve("GET")

        def do_HEAD(self) -> None:
            self._serve("HEAD")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _serve(self, method: str) -> None:
            authorized = "Authorization" in self.headers
            kind, response = hub.answer(method, self.path, self.headers.get("Range"), authorized)
            fault = hub._take_fault(method, unquote_plus(self.path))
            truncate = False
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.delay)
            elif fault is not None and fault.kind == "truncate":
                truncate = True
            elif fault is not None:
                status = int(fault.kind)
                message = {403: "Forbidden", 429: "Too Many Requests"}.get(status, "Internal Error")
                response = _error(status, None, message)
                if status == 429:
                    response.headers["Retry-After"] = str(fault.retry_after)
            sent = 0 if method == "HEAD" else len(response.body) // (2 if truncate else 1)
            hub._record(Logged(method, self.path, kind, response.status, authorized, sent))
            self._send(method, response, truncate)

        def _send(self, method: str, response: _Response, truncate: bool) -> None:
            self.send_response(response.status)
            headers = {
                "Access-Control-Expose-Headers": _EXPOSE,
                "X-Powered-By": "huggingface-moon",
                "X-Request-Id": f"Root=1-{uuid.uuid4().hex[:24]}",
                "Vary": "Origin",
                "Content-Length": str(len(response.body)),
                **response.headers,
            }
            if truncate:
                headers["Connection"] = "close"
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if method == "HEAD":
                return
            body = response.body[: len(response.body) // 2] if truncate else response.body
            try:
                self.wfile.write(body)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            if truncate:
                self.close_connection = True

    return Handler


def main(argv: list[str] | None = None) -> None:
    """Serve a data folder (a `models.jsonl.gz` of records) and/or repo folders until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="folder holding models.jsonl(.gz), or such a file")
    parser.add_argument(
        "--repos", type=Path, action="append", default=[], help="folder of <owner>/<name> repos"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8077)
    parser.add_argument("--page-size", type=int, default=MAX_PAGE_SIZE)
    args = parser.parse_args(argv)
    records: list[dict[str, Any]] = []
    if args.data is not None:
        path = args.data
        if path.is_dir():
            path = next(p for p in (path / "models.jsonl.gz", path / "models.jsonl") if p.exists())
        records = load_records(path)
    hub = ReplayHub(
        records=records, repo_dirs=args.repos, page_size=args.page_size, host=args.host, port=args.port
    )
    print(f"replay Hub with {len(hub.catalog.repos)} models at {hub.url} (Ctrl-C to stop)", flush=True)
    try:
        hub._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        hub._server.server_close()


if __name__ == "__main__":
    main()
