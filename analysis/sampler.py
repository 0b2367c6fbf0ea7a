"""The weight sampler: one model's headers, then only the sampled segments, as float32.

`sample_model` is a pure per-model function (model id + location + scheme → `SampleResult`); it never
raises for a bad checkpoint but returns status 'error' or 'unsupported' with a one-line reason, so a run
over many models goes on and can be spread over workers. Storing results is `analysis/samples.py`.
"""

from __future__ import annotations

import json
import math
import mmap
import time
from dataclasses import dataclass, field

import numpy as np

from analysis.remote import (
    HEAD_PROBE,
    ByteSource,
    FetchError,
    HttpSource,
    LocalSource,
    coalesced_extent,
    read_ranges,
)
from analysis.schemes import Scheme, SegmentPlan
from analysis.tensor_names import canonical_tensor_name
from atlas.records import TensorRecord
from atlas.safetensors_header import DTYPE_SIZES, Header, HeaderError, header_length, parse_header
from atlas.torch_checkpoint import (  # torch.save checkpoints: read where a model has no safetensors
    TORCH_ADAPTER,
    TORCH_FILE,
    TORCH_INDEX,
    CheckpointError,
    UnsupportedCheckpoint,
    read_torch_index,
)

FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")
MODEL_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
ADAPTER_FILE = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
OTHER_WEIGHTS = (".gguf", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx")


class SampleError(ValueError):
    """A checkpoint that cannot be sampled as it is (missing shard, shape mismatch, ...)."""


class Unsupported(ValueError):
    """A checkpoint in a format or dtype the sampler does not read."""


@dataclass(frozen=True)
class TensorSample:
    """The sampled segments of one tensor, named and shaped as in the (base) model; where they lie follows
    from the scheme, the name and the shape (`Scheme.plan`)."""

    name: str
    shape: tuple[int, ...]  # the whole tensor's shape
    values: np.ndarray  # (segments, segment length) float32


@dataclass(frozen=True)
class SampleResult:
    model_id: str
    scheme: str
    status: str  # 'ok' | 'unsupported' | 'error'
    fingerprint: str = ""  # of the scheme's definition (`Scheme.fingerprint`)
    error: str | None = None
    kind: str = "full"  # 'full' weights, or an 'adapter' whose values are deltas on `base`
    base: str | None = None
    tensors: tuple[TensorSample, ...] = ()
    bytes_read: int = 0
    total_bytes: int | None = None
    requests: int = 0
    seconds: float = 0.0

    @property
    def n_values(self) -> int:
        return sum(t.values.size for t in self.tensors)


@dataclass
class _Run:
    source: ByteSource
    model_id: str
    scheme: Scheme
    in_flight: int
    total_bytes: int = 0
    sizes: dict[str, int | None] = field(default_factory=dict)
    heads: dict[str, bytes] = field(default_factory=dict)  # each file's first read (header probe)
    sampled: set[str] = field(default_factory=set)  # canonical names of the tensors sampled so far


def sample_model(
    model_id: str,
    location: str,
    scheme: Scheme,
    *,
    files: list[str] | None = None,
    in_flight: int = 8,
    client: object | None = None,
) -> SampleResult:
    """Sample one model's weights from a local folder/file or an endpoint URL (HTTP range requests)."""
    t0 = time.perf_counter()
    remote = location.startswith(("http://", "https://"))
    source: ByteSource = (
        HttpSource(location, model_id, client=client) if remote else LocalSource(location)  # type: ignore[arg-type]
    )
    run = _Run(source, model_id, scheme, in_flight)
    status, error, kind, base, tensors = "ok", None, "full", None, ()
    try:
        kind, base, tensors = _sample(run, files)
    except Unsupported as e:
        status, error = "unsupported", str(e)
    except (SampleError, HeaderError, FetchError, OSError) as e:
        status, error = "error", str(e).splitlines()[0] if str(e) else type(e).__name__
    finally:
        source.close()
    return SampleResult(
        model_id=model_id,
        scheme=scheme.name,
        status=status,
        fingerprint=scheme.fingerprint,
        error=error,
        kind=kind,
        base=base,
        tensors=tuple(tensors) if status == "ok" else (),
        bytes_read=source.stats.bytes_read,
        total_bytes=run.total_bytes or None,
        requests=source.stats.requests,
        seconds=time.perf_counter() - t0,
    )


def _sample(run: _Run, files: list[str] | None) -> tuple[str, str | None, list[TensorSample]]:
    src = run.source
    if files is None:
        files = src.list_files() if isinstance(src, LocalSource) else _probe_files(src)
    if INDEX_FILE in files:
        return "full", None, _sample_sharded(run, INDEX_FILE)
    adapter = next((f for f in (ADAPTER_FILE, TORCH_ADAPTER) if f in files), None)
    if adapter is not None:
        return "adapter", *_sample_adapter(run, adapter, ADAPTER_CONFIG in files)
    # a model's own weights are at its top; subfolders hold other things (a trainer's checkpoint-N, ONNX)
    weights = sorted(f for f in files if f.endswith(".safetensors") and "/" not in f)
    if MODEL_FILE in weights:  # beside variants of it (`model.fp16.safetensors`) it is the model
        weights = [MODEL_FILE]
    if weights:
        out: list[TensorSample] = []
        for f in weights:
            out += _sample_file(run, f, _read_tensors(run, f))
        return "full", None, out
    if TORCH_INDEX in files:
        return "full", None, _sample_sharded(run, TORCH_INDEX)
    if TORCH_FILE in files:
        return "full", None, _sample_file(run, TORCH_FILE, _read_tensors(run, TORCH_FILE))
    others = [f for f in files if f.lower().endswith(OTHER_WEIGHTS) and "/" not in f]
    if others:
        raise Unsupported(
            f"{run.model_id}: only safetensors and {TORCH_FILE} weights are read, found {', '.join(others[:3])}"
        )
    nested = [f for f in files if f.endswith(".safetensors")]
    if nested:
        more = ", ..." if len(nested) > 1 else ""
        raise SampleError(
            f"{run.model_id}: no weight files at the top of the folder, only in subfolders ({nested[0]}{more})"
        )
    raise SampleError(f"{run.model_id}: no weight files found")


def _probe_files(src: ByteSource) -> list[str]:
    for f in (INDEX_FILE, MODEL_FILE, ADAPTER_FILE, TORCH_INDEX, TORCH_FILE, TORCH_ADAPTER):
        if src.exists(f):
            return [f, ADAPTER_CONFIG] if f in (ADAPTER_FILE, TORCH_ADAPTER) else [f]
    return []


def _read_whole(run: _Run, file: str) -> bytes:
    """A small file (index or config), read in probe-sized ranges."""
    data = b""
    while True:
        chunk = _read_tolerant(run, file, len(data), len(data) + HEAD_PROBE)
        data += chunk
        if len(chunk) < HEAD_PROBE:
            return data


def _read_tolerant(run: _Run, file: str, start: int, end: int) -> bytes:
    """Read a range that may run past the end of the file (returns what exists)."""
    size = run.source.size(file)
    if size is not None and isinstance(run.source, LocalSource):
        end = min(end, size)
        if start >= end:
            return b""
    try:
        return run.source.read(file, start, end)
    except FetchError as e:
        if "past the end" in str(e) and start > 0:
            return b""
        raise


def _read_tensors(run: _Run, file: str) -> tuple[TensorRecord, ...]:
    """A weights file's tensors and where they lie: its safetensors header, or a torch.save checkpoint's
    index (`atlas/torch_checkpoint.py`)."""
    if isinstance(run.source, LocalSource) and not run.source.exists(file):
        raise SampleError(f"{run.model_id}/{file}: file is missing")
    tensors = _read_torch_index(run, file) if file.endswith(".bin") else _read_header(run, file).tensors
    run.total_bytes += sum(t.data_end - t.data_start for t in tensors)
    return tensors


def _read_header(run: _Run, file: str) -> Header:
    src = run.source
    first = _read_tolerant(run, file, 0, HEAD_PROBE)
    n = header_length(first[:8], source=f"{run.model_id}/{file}")
    if 8 + n > len(first):
        first += _read_tolerant(run, file, len(first), 8 + n)
    if 8 + n > len(first):
        raise HeaderError(
            f"{run.model_id}/{file}: header of {n} bytes runs past the end of the file (truncated)"
        )
    size = src.size(file)
    header = parse_header(first[8 : 8 + n], model_id=run.model_id, file=file, file_size=size)
    run.heads[file] = first
    return header


def _read_torch_index(run: _Run, file: str) -> tuple[TensorRecord, ...]:
    src = run.source
    # the first read gives the size over HTTP, and holds data.pkl when the state dict is small
    run.heads[file] = head = _read_tolerant(run, file, 0, HEAD_PROBE)
    size = src.size(file)
    if size is None:
        raise SampleError(f"{run.model_id}/{file}: the server does not say how long the file is")

    def read(start: int, end: int) -> bytes:  # what the first read holds is not read again
        if start >= len(head):
            return src.read(file, start, end)
        return head[start:end] + (src.read(file, len(head), end) if end > len(head) else b"")

    try:
        return read_torch_index(
            read, lambda ranges: _read_sampled(run, file, ranges), size, model_id=run.model_id, file=file
        )
    except UnsupportedCheckpoint as e:
        raise Unsupported(str(e)) from e
    except CheckpointError as e:
        raise SampleError(str(e)) from e


def segment_ranges(data_start: int, plan: SegmentPlan, item_bytes: int) -> list[tuple[int, int]]:
    """Byte ranges of a plan's segments in a tensor stored from `data_start` (one per segment; adjacent
    segments are merged later, when the reads are coalesced)."""
    first = plan.byte_starts(data_start, item_bytes)
    return list(zip(first.tolist(), (first + plan.length * item_bytes).tolist(), strict=True))


def _check_dtypes(run: _Run, tensors: tuple[TensorRecord, ...] | list[TensorRecord]) -> None:
    for t in tensors:
        if t.dtype not in FLOAT_DTYPES and len(t.shape) >= 2:
            raise Unsupported(
                f"{run.model_id}/{t.file}: tensor {t.name!r} is {t.dtype} (quantized); "
                "only F32, F16, BF16 are sampled"
            )


def _sample_file(
    run: _Run, file: str, tensors: tuple[TensorRecord, ...] | list[TensorRecord]
) -> list[TensorSample]:
    _check_dtypes(run, tensors)
    wanted: list[tuple[TensorRecord, str, SegmentPlan]] = []
    for t in tensors:
        name = canonical_tensor_name(t.name)
        # several files: a tensor another file already gave is a variant's copy of it
        if t.dtype not in FLOAT_DTYPES or name in run.sampled:
            continue
        plan = run.scheme.plan(name, t.shape)
        if plan is not None:
            run.sampled.add(name)
            wanted.append((t, name, plan))
    if isinstance(run.source, LocalSource):
        return _gather_local(run, file, wanted)
    ranges = [segment_ranges(t.data_start, plan, DTYPE_SIZES[t.dtype]) for t, _, plan in wanted]
    datas = _read_sampled(run, file, [r for rs in ranges for r in rs])
    out = []
    for (t, name, plan), rs in zip(wanted, ranges, strict=True):
        raw = b"".join([datas[r] for r in rs])
        expected = plan.n_values * DTYPE_SIZES[t.dtype]
        if len(raw) != expected:
            raise SampleError(
                f"{run.model_id}/{file}: tensor {t.name!r} is cut short (got {len(raw)} of "
                f"{expected} bytes; truncated file?)"
            )
        out.append(TensorSample(name, t.shape, decode(raw, t.dtype).reshape(len(plan.rows), plan.length)))
    return out


def _gather_local(
    run: _Run, file: str, wanted: list[tuple[TensorRecord, str, SegmentPlan]]
) -> list[TensorSample]:
    """A local file's segments in one vectorised gather from a memory map: thousands of 64-byte ranges cost
    a Python call each through `read_ranges`, here a few array operations. Reads and bytes are counted as
    the coalesced ranges `read_ranges` would read, so local and HTTP figures stay comparable."""
    src = run.source
    assert isinstance(src, LocalSource)
    # every tensor lies inside the file: `_read_header` checked the header against the file's size
    if not wanted:
        return []
    spans = [(plan.byte_starts(t.data_start, DTYPE_SIZES[t.dtype]), plan.length * DTYPE_SIZES[t.dtype])
             for t, _, plan in wanted]  # fmt: skip
    starts = np.concatenate([first for first, _ in spans])
    mm = np.memmap(src.path(file), dtype=np.uint8, mode="r")
    # a POSIX hint: the sampled pages queued at once. Not MADV_RANDOM as well: with it the kernel reads a
    # long asked-for span a page at a time (a cold sample of the large zoo took 15 times as long)
    if hasattr(mmap, "MADV_WILLNEED"):
        _prefetch(mm, starts)
    out = []
    for t, name, plan in wanted:
        item = DTYPE_SIZES[t.dtype]
        # the tensor's raw bits, gathered at the plan's coordinates and decoded
        raw = np.frombuffer(
            mm, dtype=f"<u{item}", offset=t.data_start, count=(t.data_end - t.data_start) // item
        )
        values = np.ascontiguousarray(raw[plan.value_offsets()])
        out.append(TensorSample(name, t.shape, decode(values.tobytes(), t.dtype).reshape(values.shape)))
    ends = np.concatenate([first + n for first, n in spans])
    beyond = ends > len(run.heads.get(file, b""))  # as `_read_sampled`: the header's read holds the others
    reads, n_bytes = coalesced_extent(starts[beyond], ends[beyond])
    src.stats.add(n_bytes, requests=reads)
    return out


PREFETCH_GAP_PAGES = 8  # sampled pages at most this far apart are asked for in one call, the gap with them


def _prefetch(mm: np.memmap, starts: np.ndarray) -> None:
    """Ask the kernel for every page holding a segment before touching any: the reads then queue up
    together instead of one page fault at a time (a cold sample of a large file is several times faster).
    Pages a few apart go in one call: a 32 KB gap costs the disk little, a call per page costs Python much."""
    page, size = mmap.PAGESIZE, len(mm)
    pages = np.unique(starts // page)
    cut = np.flatnonzero(np.diff(pages) > PREFETCH_GAP_PAGES) + 1  # where a new call starts
    first, last = pages[np.r_[0, cut]], pages[np.r_[cut - 1, len(pages) - 1]]
    for a, b in zip(first.tolist(), last.tolist(), strict=True):
        start = a * page
        length = min((b - a + 2) * page, size - start)  # + 1 page: a segment may end on the next one
        mm._mmap.madvise(mmap.MADV_WILLNEED, start, length)  # type: ignore[attr-defined]


def _read_sampled(run: _Run, file: str, ranges: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """Each range's bytes: from the file's first read where it lies inside it (a small file, an adapter, is
    then one request in all), the rest from the source."""
    head = run.heads.get(file, b"")
    out = {r: head[r[0] : r[1]] for r in ranges if r[1] <= len(head)}
    rest = [r for r in ranges if r[1] > len(head)]
    if rest:
        out.update(read_ranges(run.source, file, rest, in_flight=run.in_flight))
    return out


def decode(raw: bytes, dtype: str) -> np.ndarray:
    """Little-endian safetensors bytes of a float dtype as float32."""
    if dtype == "BF16":
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32)
    np_dtype = {"F32": "<f4", "F16": "<f2", "F64": "<f8"}[dtype]
    return np.frombuffer(raw, dtype=np_dtype).astype(np.float32)


def _sample_sharded(run: _Run, index_file: str) -> list[TensorSample]:
    try:
        index = json.loads(_read_whole(run, index_file))
        weight_map: dict[str, str] = dict(index["weight_map"])
    except (ValueError, KeyError, TypeError) as e:
        raise SampleError(f"{run.model_id}/{index_file}: not a valid shard index ({e})") from e
    out: list[TensorSample] = []
    for shard in sorted(set(weight_map.values())):
        if isinstance(run.source, LocalSource) and not run.source.exists(shard):
            raise SampleError(f"{run.model_id}: missing shard {shard} (listed in {index_file})")
        try:
            tensors = _read_tensors(run, shard)
        except FetchError as e:
            raise SampleError(f"{run.model_id}: missing shard {shard} ({e})") from e
        names = {t.name for t in tensors}
        lost = [n for n, f in weight_map.items() if f == shard and n not in names]
        if lost:
            raise SampleError(f"{run.model_id}/{shard}: tensor {lost[0]!r} of the index is not in the shard")
        out += _sample_file(run, shard, tensors)
    return out


def _sample_adapter(run: _Run, file: str, has_config: bool) -> tuple[str | None, list[TensorSample]]:
    """A LoRA adapter as the sampled segments of `scaling · B @ A`, named like the base model's matrices."""
    if not has_config:
        raise SampleError(f"{run.model_id}: {file} without {ADAPTER_CONFIG}")
    try:
        config = json.loads(_read_whole(run, ADAPTER_CONFIG))
        r, alpha = int(config["r"]), float(config.get("lora_alpha", config["r"]))
    except (ValueError, KeyError, TypeError) as e:
        raise SampleError(f"{run.model_id}/{ADAPTER_CONFIG}: no usable r / lora_alpha ({e})") from e
    if config.get("peft_type", "LORA") != "LORA":
        raise Unsupported(f"{run.model_id}: adapter type {config.get('peft_type')} is not LoRA")
    scaling = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
    tensors = _read_tensors(run, file)
    _check_dtypes(run, tensors)
    pairs: dict[str, dict[str, TensorRecord]] = {}
    for t in tensors:
        for part in ("lora_A", "lora_B"):
            marker = f".{part}."
            if marker in t.name:
                module = t.name.split(marker)[0].removeprefix("base_model.model.")
                pairs.setdefault(module, {})[part] = t
    wanted = []
    for module, ab in sorted(pairs.items()):
        a, b = ab.get("lora_A"), ab.get("lora_B")
        if a is None or b is None:
            raise SampleError(f"{run.model_id}/{file}: {module} has only one of lora_A / lora_B")
        if len(a.shape) != 2 or len(b.shape) != 2 or a.shape[0] != b.shape[1] or a.shape[0] != r:
            raise SampleError(
                f"{run.model_id}/{file}: {module} shapes A{list(a.shape)} B{list(b.shape)} do not match r={r}"
            )
        name, shape = canonical_tensor_name(module + ".weight"), (b.shape[0], a.shape[1])
        plan = run.scheme.plan(name, shape)
        if plan is None:
            continue
        b_rows = np.unique(plan.rows)
        b_rngs = segment_ranges(
            b.data_start, SegmentPlan(b_rows, np.zeros_like(b_rows), r, r), DTYPE_SIZES[b.dtype]
        )
        wanted.append((name, shape, plan, b_rows, a, b, (a.data_start, a.data_end), b_rngs))
    ranges = [w[6] for w in wanted] + [rng for w in wanted for rng in w[7]]
    datas = _read_sampled(run, file, ranges)
    out = []
    for name, shape, plan, b_rows, a, b, a_rng, b_rngs in wanted:
        b_raw = b"".join([datas[rng] for rng in b_rngs])
        if len(datas[a_rng]) != a_rng[1] - a_rng[0] or len(b_raw) != sum(hi - lo for lo, hi in b_rngs):
            raise SampleError(f"{run.model_id}/{file}: {name} is cut short (truncated file?)")
        a_val = decode(datas[a_rng], a.dtype).reshape(a.shape).astype(np.float64)  # (r, in)
        b_val = decode(b_raw, b.dtype).reshape(len(b_rows), r).astype(np.float64)  # (unique rows, r)
        b_seg = b_val[np.searchsorted(b_rows, plan.rows)]  # (segments, r)
        cols = plan.cols[:, None] + np.arange(plan.length)[None, :]  # (segments, length)
        delta = scaling * np.einsum("sr,rsl->sl", b_seg, a_val[:, cols])
        out.append(TensorSample(name, shape, delta.astype(np.float32)))
    base = config.get("base_model_name_or_path")
    return (str(base) if base else None), out
