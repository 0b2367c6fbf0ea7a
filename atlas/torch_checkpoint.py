"""Where each tensor of a PyTorch checkpoint (`pytorch_model.bin`, torch.save's zip format) lies in the file,
found without loading it, so the sampler reads only its sampled bytes, as it does of a safetensors file.

torch.save writes a zip archive of uncompressed entries: `<name>/data.pkl`, a pickle of the state dict in
which each tensor names a storage entry `<name>/data/<key>`, and the storages' raw little-endian bytes.
The pickle is read by an unpickler that knows only the handful of globals a state dict uses and builds
nothing but offsets: a checkpoint's pickle can run code when torch.load opens it; here it cannot.
"""

from __future__ import annotations

import io
import math
import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from atlas.records import TensorRecord
from atlas.safetensors_header import DTYPE_SIZES

# torch's storage classes and the safetensors dtype names of their items
STORAGE_DTYPES = {
    "FloatStorage": "F32", "HalfStorage": "F16", "BFloat16Storage": "BF16", "DoubleStorage": "F64",
    "LongStorage": "I64", "IntStorage": "I32", "ShortStorage": "I16", "CharStorage": "I8",
    "ByteStorage": "U8", "BoolStorage": "BOOL", "UntypedStorage": "U8",
}  # fmt: skip
# the Hub's names of a model's torch.save weights (transformers' and PEFT's)
TORCH_FILE = "pytorch_model.bin"
TORCH_INDEX = "pytorch_model.bin.index.json"
TORCH_ADAPTER = "adapter_model.bin"
MAX_PICKLE_BYTES = 256 << 20  # a state dict's pickle holds names and shapes: megabytes at most
LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, then the name and extra-field lengths at bytes 26-29
ZIP_MAGIC = b"PK\x03\x04"
LOCAL_HEADER_READ = 30 + 256  # a local header with its name and padding, read in one go


class CheckpointError(ValueError):
    """A PyTorch checkpoint that is broken: cut short, a storage missing."""


class UnsupportedCheckpoint(CheckpointError):
    """A PyTorch file this reader does not take: the legacy (pre-zip) format, compressed or big-endian
    storages, a pickle that is not a plain state dict (its globals are refused, never run)."""


@dataclass(frozen=True)
class _Storage:
    key: str
    dtype: str


@dataclass(frozen=True)
class _StorageType:
    dtype: str


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int  # in items
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: _Storage, offset: int, shape: tuple, stride: tuple, *_: object) -> _TensorRef:
    dims, steps = tuple(int(n) for n in shape), tuple(int(s) for s in stride)
    if not isinstance(storage, _Storage) or len(dims) != len(steps) or min(dims, default=0) < 0:
        raise UnsupportedCheckpoint(f"a tensor of malformed shape {list(dims)} / strides {list(steps)}")
    return _TensorRef(storage, int(offset), dims, steps)


def _rebuild_parameter(data: _TensorRef, *_: object) -> _TensorRef:
    return data


_GLOBALS: dict[tuple[str, str], object] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    **{("torch", name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()},
}


class _OffsetsUnpickler(pickle.Unpickler):
    """Unpickles a state dict into `_TensorRef`s; any other global is refused, so nothing runs."""

    def find_class(self, module: str, name: str) -> object:
        try:
            return _GLOBALS[(module, name)]
        except KeyError:
            raise UnsupportedCheckpoint(
                f"its pickle asks for {module}.{name}, which a state dict does not"
            ) from None

    def persistent_load(self, pid: object) -> _Storage:
        # ('storage', storage type, key, location, number of items)
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"):
            raise UnsupportedCheckpoint(f"unknown persistent id {str(pid)[:60]}")
        kind = pid[1]
        if not isinstance(kind, _StorageType):
            raise UnsupportedCheckpoint(f"unknown storage type {kind!r}")
        return _Storage(str(pid[2]), kind.dtype)


class _RangeFile(io.RawIOBase):
    """A seekable file over `read(start, end)`, cached in aligned blocks: zipfile's many small reads of the
    central directory cost a request or two."""

    BLOCK = 1 << 16

    def __init__(self, read: Callable[[int, int], bytes], size: int) -> None:
        self._read, self._size, self._pos = read, size, 0
        self._blocks: dict[int, bytes] = {}

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = {0: 0, 1: self._pos, 2: self._size}[whence] + offset
        return self._pos

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        n = min(len(buffer), max(self._size - self._pos, 0))
        if n == 0:
            return 0
        first, last = self._pos // self.BLOCK, (self._pos + n - 1) // self.BLOCK
        missing = [b for b in range(first, last + 1) if b not in self._blocks]
        if missing:  # the missing blocks in one read
            lo, hi = missing[0] * self.BLOCK, min((missing[-1] + 1) * self.BLOCK, self._size)
            data = self._read(lo, hi)
            for b in missing:
                self._blocks[b] = data[b * self.BLOCK - lo : (b + 1) * self.BLOCK - lo]
        joined = b"".join(self._blocks[b] for b in range(first, last + 1))
        start = self._pos - first * self.BLOCK
        chunk = joined[start : start + n]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


def read_torch_index(
    read: Callable[[int, int], bytes],
    read_many: Callable[[list[tuple[int, int]]], dict[tuple[int, int], bytes]],
    size: int,
    *,
    model_id: str,
    file: str,
) -> tuple[TensorRecord, ...]:
    """The row-major float and integer tensors of a torch.save zip checkpoint, with their absolute byte
    ranges in the file. `read` reads one range, `read_many` several at once (the storages' local zip
    headers: one each). CheckpointError naming the file when it is not such a checkpoint."""
    source = f"{model_id}/{file}"
    try:
        archive = zipfile.ZipFile(io.BufferedReader(_RangeFile(read, size), _RangeFile.BLOCK))
        pickles = [
            i for i in archive.infolist() if i.filename.endswith("/data.pkl") and i.filename.count("/") == 1
        ]
        if not pickles:
            raise UnsupportedCheckpoint("no data.pkl: not a torch.save checkpoint")
        prefix = pickles[0].filename.rsplit("/", 1)[0]
        if pickles[0].file_size > MAX_PICKLE_BYTES:
            raise UnsupportedCheckpoint(f"its data.pkl is {pickles[0].file_size:,} bytes")
        order = (
            archive.read(f"{prefix}/byteorder") if f"{prefix}/byteorder" in archive.namelist() else b"little"
        )
        if order.strip() != b"little":
            raise UnsupportedCheckpoint(f"its storages are {order.decode(errors='replace')}-endian")
        refs = _flatten(_OffsetsUnpickler(io.BytesIO(archive.read(pickles[0]))).load())
    except zipfile.BadZipFile as e:
        if read(0, 4) == ZIP_MAGIC:  # a zip whose directory (at its end) is gone: cut short
            raise CheckpointError(
                f"{source}: the zip archive is cut short or damaged ({e}; truncated file?)"
            ) from e
        raise UnsupportedCheckpoint(
            f"{source}: not a zip archive; only torch.save's zip format (torch >= 1.6) is read"
        ) from e
    except CheckpointError as e:
        raise type(e)(f"{source}: {e}") from e
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, struct.error) as e:
        raise CheckpointError(f"{source}: unreadable pickle ({type(e).__name__}: {e})") from e
    entries = {i.filename: i for i in archive.infolist()}
    starts = _storage_starts(source, {r.storage.key for r in refs.values()}, prefix, entries, read_many)
    out = []
    for name, ref in refs.items():
        item = DTYPE_SIZES[ref.storage.dtype]
        info = entries[f"{prefix}/data/{ref.storage.key}"]
        if not _is_row_major(ref.shape, ref.stride):
            raise UnsupportedCheckpoint(
                f"{source}: tensor {name!r} is not stored row-major (strides {list(ref.stride)}); "
                "save it contiguous"
            )
        begin = starts[ref.storage.key] + ref.offset * item
        end = begin + math.prod(ref.shape) * item
        if ref.offset < 0 or end > starts[ref.storage.key] + info.file_size:
            raise CheckpointError(f"{source}: tensor {name!r} runs past its storage (truncated file?)")
        out.append(TensorRecord(model_id, file, name, ref.storage.dtype, ref.shape, begin, end))
    return tuple(out)


def read_local_torch_index(path: Path, *, model_id: str, file: str | None = None) -> tuple[TensorRecord, ...]:
    """`read_torch_index` of a local file (the scan's headers of a `pytorch_model.bin`)."""
    with path.open("rb") as f:

        def read(start: int, end: int) -> bytes:
            f.seek(start)
            return f.read(end - start)

        return read_torch_index(
            read, lambda ranges: {r: read(*r) for r in ranges}, path.stat().st_size,
            model_id=model_id, file=file or path.name,
        )  # fmt: skip


def _flatten(state: object, prefix: str = "") -> dict[str, _TensorRef]:
    """Tensors of a (possibly nested) state dict by dotted name; other values (step counters) are left."""
    if not isinstance(state, dict):
        raise UnsupportedCheckpoint("its pickle is not a state dict")
    out: dict[str, _TensorRef] = {}
    for key, value in state.items():
        name = f"{prefix}{key}"
        if isinstance(value, _TensorRef):
            out[name] = value
        elif isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
    return out


def _storage_starts(
    source: str,
    keys: set[str],
    prefix: str,
    entries: dict[str, zipfile.ZipInfo],
    read_many: Callable[[list[tuple[int, int]]], dict[tuple[int, int], bytes]],
) -> dict[str, int]:
    """Where each storage's bytes begin: after its local zip header, whose padding the central directory
    does not give (torch aligns every storage to 64 bytes)."""
    infos = {}
    for key in keys:
        info = entries.get(f"{prefix}/data/{key}")
        if info is None:
            raise CheckpointError(f"{source}: storage {key} is missing from the archive (truncated file?)")
        if info.compress_type != zipfile.ZIP_STORED:
            raise UnsupportedCheckpoint(f"{source}: storage {key} is compressed; torch.save stores them raw")
        infos[key] = info
    ranges = {k: (i.header_offset, i.header_offset + LOCAL_HEADER_READ) for k, i in infos.items()}
    datas = read_many(sorted(set(ranges.values())))
    starts = {}
    for key, rng in ranges.items():
        raw = datas[rng]
        if len(raw) < 30:
            raise CheckpointError(f"{source}: storage {key}'s zip header is cut short (truncated file?)")
        signature, name_len, extra_len = LOCAL_HEADER.unpack(raw[:30])
        if signature != ZIP_MAGIC:
            raise CheckpointError(f"{source}: storage {key} has no zip header where the directory says")
        starts[key] = rng[0] + 30 + name_len + extra_len
    return starts


def _is_row_major(shape: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    """Whether a tensor's items lie in row-major order (a dimension of size 1 may have any stride)."""
    step = 1
    for n, st in zip(reversed(shape), reversed(stride), strict=True):
        if n != 1 and st != step:
            return False
        step *= n
    return True
