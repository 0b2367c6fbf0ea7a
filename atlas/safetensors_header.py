"""Parsing safetensors headers (8-byte little-endian length, then JSON) into tensor records.

Pure parsing plus local-file reading; remote (HTTP range) reading lives in analysis/sampler.py.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from atlas.records import TensorRecord

# Bytes per element of each safetensors dtype.
DTYPE_SIZES: dict[str, int] = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
    "U16": 2, "U32": 4, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
}  # fmt: skip
MAX_HEADER_BYTES = 100_000_000  # the safetensors format's own limit


class HeaderError(ValueError):
    """A safetensors header that is truncated, too long, not JSON, or lies about offsets."""


@dataclass(frozen=True)
class Header:
    """A parsed header: where the data section starts, its tensors, and the file's metadata."""

    data_offset: int  # 8 + header length: tensor offsets are relative to this
    tensors: tuple[TensorRecord, ...]
    metadata: dict[str, str]


def header_length(first8: bytes, *, source: str) -> int:
    """The JSON header's length from the file's first 8 bytes."""
    if len(first8) < 8:
        raise HeaderError(f"{source}: file shorter than 8 bytes, not safetensors")
    (n,) = struct.unpack("<Q", first8[:8])
    if n == 0 or n > MAX_HEADER_BYTES:
        raise HeaderError(f"{source}: header length {n} is not plausible")
    return n


def parse_header(header_json: bytes, *, model_id: str, file: str, file_size: int | None = None) -> Header:
    """Parse the JSON header (the bytes after the length prefix) and check its offsets.

    Raises HeaderError naming the file when the JSON is invalid, a dtype or shape is malformed,
    or an offset range is inconsistent with its shape or runs past `file_size`.
    """
    source = f"{model_id}/{file}"
    try:
        raw = json.loads(header_json.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HeaderError(f"{source}: header is not valid JSON ({e})") from e
    if not isinstance(raw, dict):
        raise HeaderError(f"{source}: header is not a JSON object")
    data_offset = 8 + len(header_json)
    metadata = raw.pop("__metadata__", None) or {}
    tensors = []
    for name, spec in raw.items():
        try:
            dtype = str(spec["dtype"])
            shape = tuple(int(d) for d in spec["shape"])
            start, end = (int(o) for o in spec["data_offsets"])
        except (KeyError, TypeError, ValueError) as e:
            raise HeaderError(f"{source}: tensor {name!r} has a malformed entry") from e
        n_elements = 1
        for d in shape:
            n_elements *= d
        size = DTYPE_SIZES.get(dtype)
        if start < 0 or end < start or (size is not None and end - start != n_elements * size):
            raise HeaderError(
                f"{source}: tensor {name!r} offsets [{start}, {end}) do not match {dtype}{list(shape)}"
            )
        if file_size is not None and data_offset + end > file_size:
            raise HeaderError(
                f"{source}: tensor {name!r} ends at byte {data_offset + end}, past the file's {file_size}"
            )
        tensors.append(
            TensorRecord(
                model_id=model_id,
                file=file,
                name=name,
                dtype=dtype,
                shape=shape,
                data_start=data_offset + start,
                data_end=data_offset + end,
            )
        )
    tensors.sort(key=lambda t: t.data_start)
    return Header(data_offset=data_offset, tensors=tuple(tensors), metadata=dict(metadata))


def read_local_header(path: Path, *, model_id: str, file: str | None = None) -> Header:
    """Read and parse the header of a local safetensors file."""
    file = file or path.name
    size = path.stat().st_size
    with path.open("rb") as f:
        n = header_length(f.read(8), source=f"{model_id}/{file}")
        if 8 + n > size:
            raise HeaderError(
                f"{model_id}/{file}: header of {n} bytes runs past the file's {size} bytes (truncated)"
            )
        return parse_header(f.read(n), model_id=model_id, file=file, file_size=size)
