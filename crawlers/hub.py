"""The Hub crawler: breadth-first through `base_model:{id}` listings, one transaction per page.

Requests are spent on listing pages, not on models: a listing with `expand` returns metadata, card data,
files and `childrenModelCount` for up to a thousand models at once, and a model whose children count is
zero needs no listing of its own. Roots are read with one model-info request each. With `cards`, the
README (and small lineage files such as `adapter_config.json`) of each new or changed model is read too.

Each page is written with its resume state in one transaction (see `crawlers.crawl_state`), so a crash
loses at most the page in flight; models whose `sha` and `lastModified` are unchanged are not rewritten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import duckdb

from atlas.db import transaction, upsert
from atlas.records import FlagRecord, ModelBundle, parse_hub_time
from atlas.store import write_bundles
from crawlers import crawl_state as state
from crawlers.hub_client import FetchError, HubClient

# Fields asked of every listing page and root: what `bundle_from_info` reads, plus the children count.
EXPAND: tuple[str, ...] = (
    "author", "sha", "createdAt", "lastModified", "downloads", "downloadsAllTime", "likes",
    "library_name", "pipeline_tag", "tags", "cardData", "config", "safetensors", "siblings", "gated",
    "private", "disabled", "transformersInfo", "model-index", "childrenModelCount",
)  # fmt: skip
# Small repo files read with `cards` when the model lists them: they state lineage in their own way
# (the listing's `config` is a digest without `_name_or_path`, so config.json itself is read).
LINEAGE_FILES: tuple[str, ...] = ("config.json", "adapter_config.json", "mergekit_config.yml")


@dataclass(frozen=True)
class CrawlConfig:
    """What to crawl. Roots are followed down to `depth` (None: all the way); other seeds list once."""

    roots: tuple[str, ...] = ()
    author: str | None = None
    search: str | None = None
    all_models: bool = False
    depth: int | None = None  # levels below the seeds; default: unlimited for roots, 0 otherwise
    limit: int | None = None  # stop after this many models
    cards: bool = False  # also read README.md and small lineage files
    page_size: int = 1000  # models per listing page (the Hub's maximum)
    workers: int = 8  # parallel file reads with `cards`
    max_attempts: int = 3  # attempts per queued item (each already retried with backoff)

    def seeds(self) -> list[str]:
        out = [f"seed:root:{r}" for r in self.roots]
        if self.author:
            out.append(f"seed:author:{self.author}")
        if self.search:
            out.append(f"seed:search:{self.search}")
        if self.all_models:
            out.append("seed:all")
        return out

    def max_depth(self) -> int | None:
        if self.depth is not None:
            return self.depth
        return None if self.roots and not self.all_models else 0

    def key(self, endpoint: str) -> str:
        """The identity of a crawl: the same command on the same endpoint resumes it."""
        spec = [endpoint, self.seeds(), self.max_depth(), self.limit, self.cards]
        return hashlib.sha1(json.dumps(spec).encode()).hexdigest()[:16]


@dataclass
class CrawlStats:
    models: int = 0  # models met
    written: int = 0  # models stored (new or changed)
    unchanged: int = 0  # models met whose stored sha/lastModified matched
    edges: int = 0  # declared edges stored
    pages: int = 0
    requests: int = 0
    retries: int = 0
    errors: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    resumed: bool = False

    @property
    def requests_per_model(self) -> float:
        return self.requests / self.models if self.models else 0.0


BundleFn = Callable[..., ModelBundle]
ProgressFn = Callable[[CrawlStats], None]


def crawl(
    con: duckdb.DuckDBPyConnection,
    client: HubClient,
    config: CrawlConfig,
    *,
    bundle_fn: BundleFn | None = None,
    on_progress: ProgressFn | None = None,
    restart: bool = False,
) -> CrawlStats:
    """Run (or resume) a crawl into the database; returns its counts. Never raises for one bad model."""
    if not config.seeds():
        raise ValueError("nothing to crawl: give roots, an author, a search or all_models")
    bundle_fn = bundle_fn or _default_bundle_fn()
    key = config.key(client.endpoint)
    stats = CrawlStats()
    if not restart and state.has_pending(con, key):
        stats.resumed = True
        stats.models = state.count_models(con, key)
    else:
        state.reset(con, key, config.seeds())
    run = _Run(con, client, config, key, stats, bundle_fn, on_progress or (lambda s: None))
    while (item := state.next_item(con, key, config.max_attempts)) is not None:
        run.process(item)
        if config.limit is not None and stats.models >= config.limit:
            state.stop_all(con, key, f"limit of {config.limit} models reached")
            break
    stats.failed = state.failures(con, key)
    run.sync_counts()
    return stats


@dataclass
class _Run:
    con: duckdb.DuckDBPyConnection
    client: HubClient
    config: CrawlConfig
    key: str
    stats: CrawlStats
    bundle_fn: BundleFn
    on_progress: ProgressFn

    def process(self, item: state.Item) -> None:
        try:
            if item.kind == "root":
                info = self.client.model_info(item.value, expand=EXPAND)
                items, next_url = [info], None
            else:
                items, next_url = self.client.list_page(
                    item.cursor, [] if item.cursor else self._params(item)
                )
        except FetchError as e:
            self._fail(item, e)
        else:
            self._store_page(item, items, next_url)
        self.sync_counts()

    def sync_counts(self) -> None:
        self.stats.requests, self.stats.retries = self.client.requests, self.client.retries
        self.on_progress(self.stats)

    def _params(self, item: state.Item) -> list[tuple[str, Any]]:
        params: list[tuple[str, Any]] = []
        if item.kind == "model":
            params.append(("filter", f"base_model:{item.value}"))
        elif item.kind == "author":
            params.append(("author", item.value))
        elif item.kind == "search":
            params.append(("search", item.value))
        params += [("expand", e) for e in EXPAND]
        params.append(("limit", self.config.page_size))
        return params

    def _store_page(self, item: state.Item, infos: list[dict[str, Any]], next_url: str | None) -> None:
        cfg, stats = self.config, self.stats
        infos = [i for i in infos if isinstance(i, dict) and (i.get("id") or i.get("modelId"))]
        ids = list(dict.fromkeys(str(i.get("id") or i.get("modelId")) for i in infos))
        by_id = {str(i.get("id") or i.get("modelId")): i for i in infos}
        seen = state.known(self.con, self.key, ids)
        new = [m for m in ids if m not in seen]
        if cfg.limit is not None:
            new = new[: max(cfg.limit - stats.models, 0)]
        changed = _changed(self.con, [by_id[m] for m in new], cards=cfg.cards)
        files = self._read_files([by_id[m] for m in new if m in changed]) if cfg.cards else {}
        bundles, flags = [], []
        for model_id in new:
            if model_id not in changed:
                continue
            readme, repo_files, error = files.get(model_id, (None, None, None))
            try:
                bundle = self.bundle_fn(
                    by_id[model_id], readme=readme, repo_files=repo_files, source="hub",
                    location=self.client.endpoint,
                )  # fmt: skip
            except ValueError as e:
                flags.append(FlagRecord(model_id, "fetch_error", f"unusable model info: {e}"))
                continue
            if error:
                bundle = _with_flag(bundle, FlagRecord(model_id, "fetch_error", error))
            bundles.append(bundle)
        depth = item.depth + (1 if item.kind == "model" else 0)
        max_depth = cfg.max_depth()
        queue = []
        for model_id in new:
            children = _children_count(by_id[model_id].get("childrenModelCount"))
            expand = children != 0 and (max_depth is None or depth < max_depth)
            queue.append(
                (state.model_item(model_id), depth, state.PENDING if expand else state.DONE, children)
            )

        def also(con: duckdb.DuckDBPyConnection) -> None:
            upsert(con, "flags", flags)
            state.enqueue(con, self.key, queue)
            state.advance(con, self.key, item.item, next_url)
            if item.kind in ("model", "root"):
                con.execute("DELETE FROM flags WHERE model_id = ? AND flag = 'fetch_error'", [item.value])

        write_bundles(self.con, bundles, also=also)
        stats.pages += 1
        stats.models += len(new)
        stats.written += len(bundles)
        stats.unchanged += len(new) - len(changed)
        stats.edges += sum(len(b.edges) for b in bundles)
        stats.errors += len(flags) + sum(1 for m in files.values() if m[2])

    def _fail(self, item: state.Item, error: FetchError) -> None:
        final = not error.transient or item.attempts + 1 >= self.config.max_attempts
        message = str(error)
        self.stats.errors += 1
        with transaction(self.con):
            state.record_failure(self.con, self.key, item.item, message, final=final)
            if final:
                what = "model info" if item.kind == "root" else "listing"
                subject = item.value if item.kind in ("root", "model") else item.item
                upsert(self.con, "flags", [FlagRecord(subject, "fetch_error", f"{what} failed: {message}")])

    def _read_files(
        self, infos: Sequence[Mapping[str, Any]]
    ) -> dict[str, tuple[str | None, dict | None, str | None]]:
        """README text and small lineage files per model, read in parallel: (readme, files, error)."""

        def read(info: Mapping[str, Any]) -> tuple[str, tuple[str | None, dict | None, str | None]]:
            model_id = str(info.get("id") or info.get("modelId"))
            names = {s.get("rfilename") for s in info.get("siblings") or [] if isinstance(s, dict)}
            revision = info.get("sha") or "main"
            try:
                readme = None
                if not names or "README.md" in names:
                    raw = self.client.read_file(model_id, "README.md", revision=revision)
                    readme = None if raw is None else _decode(raw)
                extra = {}
                for name in LINEAGE_FILES:
                    if name in names:
                        raw = self.client.read_file(model_id, name, revision=revision)
                        if raw is not None:
                            extra[name] = raw.decode("utf-8", errors="replace")
                return model_id, (readme, extra or None, None)
            except FetchError as e:
                return model_id, (None, None, f"reading files failed: {e}")

        with ThreadPoolExecutor(max_workers=max(self.config.workers, 1)) as pool:
            return dict(pool.map(read, infos))


def _changed(con: duckdb.DuckDBPyConnection, infos: Sequence[Mapping[str, Any]], *, cards: bool) -> set[str]:
    """Models whose stored copy differs (sha or lastModified), is missing, or lacks the card text asked for."""
    ids = [str(i.get("id") or i.get("modelId")) for i in infos]
    if not ids:
        return set()
    rows = con.execute(
        """SELECT m.id, m.sha, m.last_modified, c.text IS NOT NULL
           FROM models m LEFT JOIN cards c ON c.model_id = m.id WHERE m.id IN (SELECT unnest(?))""",
        [ids],
    ).fetchall()
    stored = {r[0]: r[1:] for r in rows}
    out = set()
    for info, model_id in zip(infos, ids, strict=True):
        old = stored.get(model_id)
        if (
            old is None
            or old[0] != info.get("sha")
            or old[1] != parse_hub_time(info.get("lastModified"))
            or (cards and not old[2])
        ):
            out.add(model_id)
    return out


def _children_count(value: Any) -> int | None:
    """`childrenModelCount` as an int: the Hub answers an int or an object of counts per relation."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        return sum(v for v in value.values() if isinstance(v, int) and not isinstance(v, bool))
    return None


def _decode(raw: bytes) -> str:
    """README bytes as text; undecodable bytes are replaced (the card parser flags what it cannot read)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace")


def _with_flag(bundle: ModelBundle, flag: FlagRecord) -> ModelBundle:
    return replace(bundle, flags=(*bundle.flags, flag))


def _default_bundle_fn() -> BundleFn:
    from crawlers.bundle import bundle_from_info

    return bundle_from_info
