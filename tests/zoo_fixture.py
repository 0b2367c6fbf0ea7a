"""The session-scoped small zoo (`zoo_dir`), shared by every area's tests.

The build is deterministic, so it is cached across runs under a key made of the zoo's source code,
the seed and torch's version (env HUBATLAS_TEST_ZOO_CACHE picks the folder; "0" turns caching off).
Treat the folder as read-only: copy what a test needs to change (shutil.copytree keeps the times).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

ZOO_SEED = 0
REPO = Path(__file__).resolve().parents[1]


def zoo_cache_key(seed: int = ZOO_SEED, size: str = "small") -> str:
    """A hash of everything the zoo's bytes depend on."""
    import torch

    h = hashlib.sha256(f"{seed}/{size}/{torch.__version__}".encode())
    for path in sorted((REPO / "analysis").glob("zoo*.py")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:16]


def _cache_root() -> Path | None:
    value = os.environ.get("HUBATLAS_TEST_ZOO_CACHE")
    if value == "0":
        return None
    return Path(value) if value else Path.home() / ".cache" / "hubatlas-test-zoo"


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built small zoo (seed 0): owner/name model folders plus lineage.json."""
    from analysis.zoo import build_zoo

    root = _cache_root()
    if root is None:
        out = tmp_path_factory.mktemp("zoo")
        build_zoo(out, seed=ZOO_SEED, size="small")
        return out
    final = root / zoo_cache_key()
    if (final / "lineage.json").is_file():
        return final
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:  # no writable cache: build for this session only
        out = tmp_path_factory.mktemp("zoo")
        build_zoo(out, seed=ZOO_SEED, size="small")
        return out
    staging = root / f".build-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    build_zoo(staging, seed=ZOO_SEED, size="small")
    try:
        os.replace(staging, final)  # atomic: a concurrent run sees a whole zoo or none
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another run won the race
    return final
