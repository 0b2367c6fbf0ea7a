"""Where the app reads from: a published read-only snapshot of the atlas database.

DuckDB lets one process write a file and then no other process may open it, not even read-only. So the app
never keeps the real file open: when the file changes (mtime or size of the file or its WAL) and a brief
read-only open succeeds (no writer holds it), the file is copied to a private snapshot, and the app serves
from that copy. While a crawl holds the write lock the last good snapshot keeps serving; the crawl's data
appears after it commits and closes the file.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from atlas.db import SANDBOX_CONFIG, AtlasDBError

T = TypeVar("T")


@dataclass(frozen=True)
class Snapshot:
    path: Path  # the private copy the app reads
    version: int  # increases with every published copy
    signature: tuple[int, ...]  # (mtime_ns, size) of the source file and its WAL when copied
    published_at: float


def file_signature(db_path: Path) -> tuple[int, ...]:
    """What changes when a writer commits: mtime and size of the database file and its WAL."""
    sig: list[int] = []
    for p in (db_path, db_path.with_name(db_path.name + ".wal")):
        try:
            st = p.stat()
            sig += [st.st_mtime_ns, st.st_size]
        except FileNotFoundError:
            sig += [0, 0]
    return tuple(sig)


@dataclass
class AtlasSource:
    """The app's view of one database file: checks for changes at most every `check_every_s` seconds."""

    db_path: Path
    check_every_s: float = 1.0
    keep: int = 3  # snapshots kept on disk (older ones may still be read by requests in flight)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hubatlas-serve-")))
    _snapshot: Snapshot | None = field(default=None, init=False)
    _con: duckdb.DuckDBPyConnection | None = field(default=None, init=False)
    _retired: list[duckdb.DuckDBPyConnection] = field(default_factory=list, init=False)
    _checked_at: float = field(default=0.0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _cache: dict[tuple[int, str], Any] = field(default_factory=dict, init=False)
    last_error: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.db_path = Path(self.db_path)
        self.workdir.mkdir(parents=True, exist_ok=True)

    def snapshot(self) -> Snapshot:
        """The newest published snapshot, publishing a new one first when the file changed and is free."""
        now = time.monotonic()
        if self._snapshot is not None and now - self._checked_at < self.check_every_s:
            return self._snapshot
        with self._lock:
            self._checked_at = now
            sig = file_signature(self.db_path)
            if self._snapshot is None or sig != self._snapshot.signature:
                self._try_publish(sig)
            if self._snapshot is None:
                raise AtlasDBError(self.last_error or f"{self.db_path}: no snapshot could be made")
            return self._snapshot

    def _try_publish(self, sig: tuple[int, ...]) -> None:
        if not self.db_path.exists():
            self.last_error = (
                f"{self.db_path}: no such database (run `hubatlas crawl`, `import` or `demo` first)"
            )
            return
        version = (self._snapshot.version if self._snapshot else 0) + 1
        target = self.workdir / f"atlas-{version}.duckdb"
        try:
            # A read-only open holds a shared lock: no writer can start while the bytes are copied.
            probe = duckdb.connect(str(self.db_path), read_only=True)
        except duckdb.Error as e:  # a writer holds the file: keep serving the last snapshot
            self.last_error = (
                f"{self.db_path}: busy ({str(e).splitlines()[0][:120]}); serving the last snapshot"
            )
            return
        try:
            shutil.copyfile(self.db_path, target)
            wal = self.db_path.with_name(self.db_path.name + ".wal")
            if wal.exists():
                shutil.copyfile(wal, target.with_name(target.name + ".wal"))
            sig = file_signature(self.db_path)
        finally:
            probe.close()
        con = duckdb.connect(str(target), read_only=True, config=SANDBOX_CONFIG)
        old = self._con
        self._snapshot = Snapshot(target, version, sig, time.time())
        self._con = con
        self._cache.clear()
        self.last_error = None
        if old is not None:  # closed a few snapshots later: requests in flight may still hold its cursors
            self._retired.append(old)
        while len(self._retired) >= self.keep:
            self._retired.pop(0).close()
        self._prune(version)

    def _prune(self, version: int) -> None:
        for p in self.workdir.glob("atlas-*.duckdb*"):
            stem = p.name.split(".")[0]
            try:
                v = int(stem.removeprefix("atlas-"))
            except ValueError:
                continue
            if v <= version - self.keep:
                p.unlink(missing_ok=True)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor on the current snapshot (one per request: DuckDB cursors are not shared across threads)."""
        self.snapshot()
        assert self._con is not None
        return self._con.cursor()

    def read(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run `fn(cursor)` on the current snapshot and close the cursor."""
        cur = self.cursor()
        try:
            return fn(cur)
        finally:
            cur.close()

    def cached(self, key: str, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """`read(fn)` memoised until the next snapshot (for the atlas-wide point cloud)."""
        snap = self.snapshot()
        k = (snap.version, key)
        if k not in self._cache:
            self._cache[k] = self.read(fn)
        return self._cache[k]

    def close(self) -> None:
        """Close the connection and remove the snapshot copies."""
        for con in [*self._retired, self._con]:
            if con is not None:
                con.close()
        self._con, self._retired = None, []
        shutil.rmtree(self.workdir, ignore_errors=True)
