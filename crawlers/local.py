"""Scan a folder of local checkpoints (Hub-style model folders) into model bundles.

A model folder holds `config.json`, `*.safetensors`, `model.safetensors.index.json` or adapter files.
Its id is `<owner>/<name>` from the path under the scanned root (`local/<name>` one level down;
deeper folders join the rest with `--`), its creation time the weights file's modification time.
Source is `zoo` when the root holds a zoo's `lineage.json`, else `local`. Bad files never stop a scan:
they become flags on that model. An adapter whose config names a local folder as its base gets that
folder's model as its declared parent when the folder is a model folder under the same root.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from atlas.records import EdgeRecord, FileRecord, FlagRecord, ModelBundle, TensorRecord
from atlas.safetensors_header import HeaderError, read_local_header
from atlas.torch_checkpoint import (
    TORCH_ADAPTER,
    TORCH_FILE,
    TORCH_INDEX,
    CheckpointError,
    UnsupportedCheckpoint,
    read_local_torch_index,
)
from crawlers.bundle import bundle_from_info

MARKERS = ("config.json", "adapter_config.json", "model.safetensors.index.json", TORCH_FILE, TORCH_INDEX)
REPO_FILES = ("config.json", "adapter_config.json", "mergekit_config.yml")  # small files read as text
TORCH_WEIGHTS = (TORCH_FILE, TORCH_ADAPTER)  # read where a model has no safetensors
MAX_TEXT_BYTES = 2_000_000  # larger READMEs or configs are not read (flagged)
ZOO_GENERATOR = "hubatlas zoo"  # lineage.json's marker, written by analysis/zoo_build.py


def is_model_folder(folder: Path) -> bool:
    """A folder that looks like a Hub model repo."""
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    return any(n in MARKERS or n.endswith(".safetensors") for n in names)


def iter_model_folders(root: Path) -> Iterator[Path]:
    """Model folders under `root` in sorted order (hidden folders skipped); `root` itself when it is one."""
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        here = Path(dirpath)
        if is_model_folder(here):
            yield here


def folder_id(root: Path, folder: Path) -> str:
    """`owner/name` of a model folder from its path under the root; a model folder inside another (a
    trainer's `checkpoint-N`) is named after it: `owner/name--checkpoint-N`."""
    rel = folder.relative_to(root).parts
    for k in range(len(rel) - 1, -1, -1):  # the nearest enclosing folder first, the root last
        enclosing = root.joinpath(*rel[:k])
        if is_model_folder(enclosing):
            return f"{folder_id(root, enclosing)}--{'--'.join(rel[k:])}"
    parts = rel or (root.name,)
    if len(parts) == 1:
        return f"local/{parts[0]}"
    return f"{parts[0]}/{'--'.join(parts[1:])}"


def root_source(root: Path) -> str:
    """'zoo' when `root/lineage.json` is a zoo's ground truth, else 'local'."""
    try:
        lineage = json.loads((root / "lineage.json").read_text())
    except (OSError, ValueError):
        return "local"
    return "zoo" if isinstance(lineage, dict) and lineage.get("generator") == ZOO_GENERATOR else "local"


def scan(root: str | os.PathLike[str], *, limit: int | None = None) -> Iterator[ModelBundle]:
    """Yield one bundle per model folder under `root` (metadata, declared lineage, tensors, flags)."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    source = root_source(root)
    for n, folder in enumerate(iter_model_folders(root)):
        if limit is not None and n >= limit:
            return
        bundle = read_model_folder(folder, model_id=folder_id(root, folder), source=source)
        yield link_local_base(bundle, folder, root)


def link_local_base(bundle: ModelBundle, folder: Path, root: Path) -> ModelBundle:
    """Turn `local_base_path` flags whose path is another model folder under `root` into declared adapter
    edges (the path as written, else from the adapter's folder, else from the root); the rest stay flags."""
    edges, flags = list(bundle.edges), []
    for flag in bundle.flags:
        base = _scanned_folder(flag.detail or "", folder, root) if flag.flag == "local_base_path" else None
        if base is None or base == folder:
            flags.append(flag)
            continue
        edges.append(EdgeRecord(bundle.model.id, folder_id(root, base), "adapter", "adapter_config",
                                evidence=f"adapter_config.json base_model_name_or_path {flag.detail} "
                                "(a folder of this scan)"))  # fmt: skip
    return replace(bundle, edges=tuple(edges), flags=tuple(flags))


def _scanned_folder(raw: str, folder: Path, root: Path) -> Path | None:
    path = Path(raw).expanduser()
    for candidate in [path] if path.is_absolute() else [folder / path, root / path]:
        try:
            resolved = candidate.resolve()
        except (OSError, RuntimeError):
            continue
        if resolved.is_relative_to(root) and resolved.is_dir() and is_model_folder(resolved):
            return resolved
    return None


def read_model_folder(folder: Path, *, model_id: str, source: str = "local") -> ModelBundle:
    """Everything a model folder says about its model; unreadable parts become flags."""
    flags: list[FlagRecord] = []
    files: dict[str, int | None] = {}
    for entry in sorted(folder.iterdir()):
        try:
            if entry.is_file():
                files[entry.name] = entry.stat().st_size
        except OSError as e:
            flags.append(FlagRecord(model_id, "unreadable_file", f"{entry.name}: {e.strerror or e}"))
    readme = _read_text(folder, "README.md", model_id, flags)
    repo_files = {
        n: t for n in REPO_FILES if n in files and (t := _read_text(folder, n, model_id, flags)) is not None
    }
    config = _json_object(repo_files.get("config.json"), "config.json", model_id, flags)
    tensors, weights_file = _tensors(folder, files, model_id, flags)
    stamp = (
        _mtime(folder / weights_file)
        if weights_file
        else max((_mtime(folder / f) for f in files), default=None)
    )
    info = {
        "id": model_id,
        "author": model_id.split("/")[0],
        "createdAt": stamp,
        "lastModified": max((_mtime(folder / f) or "" for f in files), default=None) or None,
        "config": config,
        "siblings": [{"rfilename": name, "size": size} for name, size in files.items()],
        # a tensor in several files (`model.fp16.safetensors` beside `model.safetensors`) counts once
        "safetensors": {"total": sum(_numel(t.shape) for t in {t.name: t for t in tensors}.values())}
        if tensors
        else None,
    }
    bundle = bundle_from_info(info, readme=readme, repo_files=repo_files, source=source, location=str(folder))
    if not files.keys() & {"config.json", "adapter_config.json"}:
        flags.append(FlagRecord(model_id, "no_config", "neither config.json nor adapter_config.json"))
    if not bundle.files:
        bundle = replace(bundle, files=tuple(FileRecord(model_id, n, s) for n, s in files.items()))
    return replace(bundle, tensors=tuple(tensors), flags=(*bundle.flags, *_dedup(flags, bundle.flags)))


def _dedup(new: list[FlagRecord], old: tuple[FlagRecord, ...]) -> list[FlagRecord]:
    seen = {f.flag for f in old}
    out = []
    for f in new:
        if f.flag not in seen:
            seen.add(f.flag)
            out.append(f)
    return out


def _read_text(folder: Path, name: str, model_id: str, flags: list[FlagRecord]) -> str | None:
    path = folder / name
    try:
        if not path.is_file():
            return None
        if path.stat().st_size > MAX_TEXT_BYTES:
            flags.append(
                FlagRecord(model_id, "file_too_large", f"{name}: over {MAX_TEXT_BYTES} bytes, not read")
            )
            return None
        raw = path.read_bytes()
    except OSError as e:
        flags.append(FlagRecord(model_id, "unreadable_file", f"{name}: {e.strerror or e}"))
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        flags.append(FlagRecord(model_id, "non_utf8_card" if name == "README.md" else "non_utf8_file", name))
        return raw.decode("utf-8", errors="replace")


def _json_object(text: str | None, name: str, model_id: str, flags: list[FlagRecord]) -> dict | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as e:
        flags.append(FlagRecord(model_id, "bad_config", f"{name}: not JSON ({e})"))
        return None
    if not isinstance(value, dict):
        flags.append(FlagRecord(model_id, "bad_config", f"{name}: not a JSON object"))
        return None
    return value


def _tensors(
    folder: Path, files: dict[str, int | None], model_id: str, flags: list[FlagRecord]
) -> tuple[list[TensorRecord], str | None]:
    """Tensor records of every safetensors file (shards from the index), or where there are none of the
    PyTorch checkpoint, and the main weights file."""
    names = sorted(n for n in files if n.endswith(".safetensors"))
    index = "model.safetensors.index.json"
    if not names and index not in files:  # an older repo: its torch.save checkpoint
        index, names = TORCH_INDEX, [n for n in TORCH_WEIGHTS if n in files]
    if index in files:
        text = _read_text(folder, index, model_id, flags)
        weight_map = (_json_object(text, index, model_id, flags) or {}).get("weight_map")
        shards = sorted(set(weight_map.values())) if isinstance(weight_map, dict) else []
        if not shards:
            flags.append(FlagRecord(model_id, "bad_index", f"{index}: no weight_map"))
        missing = [s for s in shards if s not in files]
        if missing:
            flags.append(FlagRecord(model_id, "missing_shard", ", ".join(missing)))
        names = sorted(set(names) | {s for s in shards if s in files})
    tensors: list[TensorRecord] = []
    bad: dict[str, list[str]] = {}
    for name in names:
        try:
            if name.endswith(".bin"):
                tensors += read_local_torch_index(folder / name, model_id=model_id, file=name)
            else:
                tensors += read_local_header(folder / name, model_id=model_id, file=name).tensors
        except UnsupportedCheckpoint as e:
            bad.setdefault("unsupported_weights", []).append(str(e))
        except (HeaderError, CheckpointError, OSError) as e:
            bad.setdefault("bad_checkpoint" if name.endswith(".bin") else "bad_safetensors", []).append(
                str(e)
            )
    flags += [FlagRecord(model_id, flag, "; ".join(reasons)) for flag, reasons in bad.items()]
    main = next(
        (n for n in ("model.safetensors", "adapter_model.safetensors", *TORCH_WEIGHTS) if n in files), None
    )
    main = main or (index if index in files else (names[0] if names else None))
    return tensors, main


def _mtime(path: Path) -> str | None:
    try:
        ts = path.stat().st_mtime
    except OSError:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
