"""What the replay Hub serves: model records (wire JSON + README) and Hub-style repo folders on disk.

Both become `Repo`s: the model info the Hub would answer for `GET /api/models/{id}`, plus the files that
`resolve` can serve. Listing semantics (filters, search, expand, children counts) live here too, so the
HTTP layer in `server.py` only speaks the wire format.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

# Fields the Hub returns in a listing without `expand`/`full` (the model list "compact" form).
LIST_DEFAULT_FIELDS = (
    "_id", "id", "likes", "trendingScore", "private", "downloads", "tags", "pipeline_tag",
    "library_name", "createdAt", "modelId",
)  # fmt: skip
# Extra fields of `full=true` listings (no cardData/config unless asked).
LIST_FULL_FIELDS = ("author", "sha", "lastModified", "gated", "disabled", "siblings", "widgetData")
# Files read as text to build a disk repo's model info.
_SMALL_FILES = ("README.md", "config.json")
# Files the Hub stores in LFS (their ETag is the content's sha256).
LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx")


@dataclass
class Repo:
    """One model repository: its info (wire JSON) and the bytes of the files we can serve."""

    info: dict[str, Any]
    files: dict[str, Path | bytes] = field(default_factory=dict)
    _etags: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def id(self) -> str:
        return self.info["id"]

    @property
    def sha(self) -> str:
        return self.info.get("sha") or hashlib.sha1(self.id.encode()).hexdigest()

    def file_size(self, path: str) -> int | None:
        data = self.files.get(path)
        if isinstance(data, Path):
            return data.stat().st_size
        return None if data is None else len(data)

    def read_range(self, path: str, start: int, end: int) -> bytes:
        """Bytes `start..end` (inclusive) of a file; a file on disk is read there, not whole."""
        data = self.files[path]
        if isinstance(data, Path):
            with data.open("rb") as f:
                f.seek(start)
                return f.read(end - start + 1)
        return data[start : end + 1]

    def etag(self, path: str) -> str:
        """The Hub's ETag of a file: sha256 for LFS files, the git blob sha1 otherwise (hashed once)."""
        if path not in self._etags:
            lfs = path.endswith(LFS_SUFFIXES)
            size = self.file_size(path) or 0
            digest = hashlib.sha256() if lfs else hashlib.sha1(b"blob %d\0" % size)
            data = self.files[path]
            if isinstance(data, Path):
                _hash_file(digest, data)
            else:
                digest.update(data)
            self._etags[path] = digest.hexdigest()
        return self._etags[path]


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL(.gz) of `{"info": ..., "readme": ...}` lines (the hub-trees-2025 format)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def repos_from_records(records: Iterable[Mapping[str, Any]]) -> Iterator[Repo]:
    """Records as served by the Hub: the README (when known) is the one file with content."""
    for rec in records:
        info = dict(rec["info"]) if "info" in rec else dict(rec)
        readme = rec.get("readme") if "info" in rec else None
        files: dict[str, Path | bytes] = {}
        if readme is not None:
            files["README.md"] = readme.encode("utf-8") if isinstance(readme, str) else readme
        yield Repo(info=info, files=files)


def repos_from_dirs(roots: Iterable[str | Path]) -> Iterator[Repo]:
    """Hub-style repo folders `<root>/<owner>/<name>/...` as the Hub would describe them."""
    for root in roots:
        root = Path(root)
        for repo_dir in sorted(p for p in root.glob("*/*") if p.is_dir()):
            yield repo_from_dir(repo_dir, f"{repo_dir.parent.name}/{repo_dir.name}")


def _hash_file(digest: Any, path: Path) -> Any:
    """Feed a file to a hashlib digest in chunks (checkpoints can be gigabytes); returns the digest."""
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest


def repo_from_dir(repo_dir: Path, repo_id: str) -> Repo:
    """Build the model info of a folder: sha from file contents, tags and cardData from the README."""
    paths = sorted(p for p in repo_dir.rglob("*") if p.is_file() and ".git" not in p.parts)
    files = {p.relative_to(repo_dir).as_posix(): p for p in paths}
    repo = Repo(info={"id": repo_id}, files=dict(files))
    # the repo's sha from its files' ETags: each file (a checkpoint can be gigabytes) is hashed once
    digest = hashlib.sha1(repo_id.encode())
    for rel in files:
        digest.update(rel.encode() + b"\0" + bytes.fromhex(repo.etag(rel)))
    mtime = max((p.stat().st_mtime for p in paths), default=0.0)
    stamp = datetime.fromtimestamp(int(mtime), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    card = _front_matter(files.get("README.md"))
    config = _json_file(files.get("config.json"))
    tags = _tags_for(card, config, set(files))
    info: dict[str, Any] = {
        "_id": digest.hexdigest()[:24],
        "id": repo_id,
        "modelId": repo_id,
        "author": repo_id.split("/")[0],
        "sha": digest.hexdigest(),
        "lastModified": stamp,
        "createdAt": stamp,
        "private": False,
        "disabled": False,
        "gated": False,
        "downloads": 0,
        "likes": 0,
        "library_name": card.get("library_name") or ("peft" if "adapter_config.json" in files else None),
        "tags": tags,
        "pipeline_tag": card.get("pipeline_tag"),
        "cardData": card,
        "siblings": [{"rfilename": rel} for rel in files],
        "spaces": [],
        "usedStorage": sum(p.stat().st_size for p in paths),
    }
    if config:
        info["config"] = {k: config[k] for k in ("architectures", "model_type") if k in config}
    repo.info = info
    return repo


def _front_matter(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return {}
    parts = text.split("\n---", 1)
    try:
        data = yaml.safe_load(parts[0][3:]) if len(parts) == 2 else None
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _json_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


def _tags_for(card: Mapping[str, Any], config: Mapping[str, Any], files: set[str]) -> list[str]:
    """The tags the Hub derives: library, model type, licence, and `base_model:*` for declared parents."""
    tags: list[str] = []
    if "model.safetensors" in files or any(f.endswith(".safetensors") for f in files):
        tags.append("safetensors")
    if isinstance(config.get("model_type"), str):
        tags.append(config["model_type"])
    if isinstance(card.get("license"), str):
        tags.append(f"license:{card['license']}")
    bases = card.get("base_model")
    bases = [bases] if isinstance(bases, str) else [b for b in bases or [] if isinstance(b, str)]
    relation = card.get("base_model_relation")
    if not isinstance(relation, str):
        if "adapter_config.json" in files:
            relation = "adapter"
        elif len(bases) > 1 or "mergekit_config.yml" in files:
            relation = "merge"
        elif any(f.endswith(".gguf") for f in files):
            relation = "quantized"
        else:
            relation = "finetune"
    for base in bases:
        tags += [f"base_model:{base}", f"base_model:{relation}:{base}"]
    return tags


class Catalog:
    """All repos, indexed for the Hub's listing queries."""

    def __init__(self, repos: Iterable[Repo], *, children_counts: str = "int") -> None:
        self.repos: dict[str, Repo] = {}
        for repo in repos:
            self.repos[repo.id] = repo
        self.order = list(self.repos)
        self.children_counts = children_counts
        self._children: dict[str, Counter[str]] = defaultdict(Counter)
        for repo in self.repos.values():
            for tag in repo.info.get("tags") or []:
                parts = tag.split(":") if isinstance(tag, str) else []
                if len(parts) == 3 and parts[0] == "base_model":
                    self._children[parts[2]][parts[1]] += 1

    def get(self, repo_id: str) -> Repo | None:
        return self.repos.get(repo_id)

    def children_count(self, repo_id: str) -> int | dict[str, int]:
        """How many models declare this one as base; an int, or per relation like the Hub may answer."""
        counts = self._children.get(repo_id, Counter())
        return dict(counts) if self.children_counts == "dict" else sum(counts.values())

    def search(
        self, *, filters: list[str], author: str | None, search: str | None, sort: str | None
    ) -> list[Repo]:
        """Repos matching every filter (tags ANDed), the author and a case-insensitive id substring."""
        out = []
        needle = search.lower() if search else None
        for repo_id in self.order:
            repo = self.repos[repo_id]
            tags = set(repo.info.get("tags") or [])
            if any(not _matches_filter(f, repo, tags) for f in filters):
                continue
            if author and repo_id.split("/")[0].lower() != author.lower():
                continue
            if needle and needle not in repo_id.lower():
                continue
            out.append(repo)
        if sort in ("downloads", "likes", "createdAt", "lastModified", "trendingScore"):
            out.sort(key=lambda r: (r.info.get(sort) is not None, r.info.get(sort) or 0), reverse=True)
        return out

    def render(
        self, repo: Repo, *, expand: list[str], full: bool, card: bool, config: bool
    ) -> dict[str, Any]:
        """One model as the Hub's listing answers it, given the requested fields."""
        info = repo.info
        if expand:
            out = {"_id": info.get("_id", repo.id), "id": repo.id}
            for name in expand:
                if name == "childrenModelCount":
                    out[name] = self.children_count(repo.id)
                elif name == "downloadsAllTime":
                    out[name] = info.get(name, info.get("downloads"))
                elif name in info:
                    out[name] = info[name]
            return out
        names = LIST_DEFAULT_FIELDS + (LIST_FULL_FIELDS if full else ())
        out = {k: info[k] for k in names if k in info}
        out.setdefault("modelId", repo.id)
        if card and "cardData" in info:
            out["cardData"] = info["cardData"]
        if config and "config" in info:
            out["config"] = info["config"]
        return out

    def model_info(self, repo: Repo, *, expand: list[str]) -> dict[str, Any]:
        """`GET /api/models/{id}`: the whole record, or `_id`, `id` and the expanded fields."""
        if expand:
            return self.render(repo, expand=expand, full=False, card=False, config=False)
        return dict(repo.info)


def _matches_filter(value: str, repo: Repo, tags: set[str]) -> bool:
    if value in tags:
        return True
    lowered = value.lower()
    return lowered in {t.lower() for t in tags} or lowered == (repo.info.get("library_name") or "").lower()
