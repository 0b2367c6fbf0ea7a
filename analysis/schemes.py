"""Sampling schemes as data: which runs of values of which tensors a sample reads.

A scheme reads, from each matrix (viewed as rows × row length), `count` short runs of contiguous values
("segments"): one per row for rows spread evenly over the matrix from a seeded offset, each at a column
that a seeded hash of (scheme seed, tensor name, shape, row) picks. Every model holding a tensor of that
name and shape is therefore sampled at the same coordinates (names without a base-model prefix,
`analysis/tensor_names.py`: a head class's `transformer.h.0.*` is the body class's `h.0.*`).

Why segments and not whole rows: fine-tune and LoRA deltas are row-structured (low effective rank), so
a sample's error is set by how many *distinct rows* it reads, not by how many values. For the same bytes,
16-value segments read 128 times more rows of a 2048-wide matrix than whole rows do. The price is
requests: one range per segment. `rows` keeps whole rows for request-limited remote sampling.

A matrix small enough that its budget is a good share of it (`whole_share`) is read whole instead.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import asdict, dataclass

import numpy as np

from analysis.tensor_names import BASE_MODEL_PREFIXES


@dataclass(frozen=True)
class SegmentPlan:
    """The coordinates a scheme reads of one tensor, viewed as `n_rows × row_len` values."""

    rows: np.ndarray  # (n,) int64: the row of each segment, ascending (small matrices: several a row)
    cols: np.ndarray  # (n,) int64: the first column of each segment
    length: int  # values per segment
    row_len: int

    @property
    def n_values(self) -> int:
        return len(self.rows) * self.length

    def first_values(self) -> np.ndarray:
        """(n,) flat index of each segment's first value in the row-major tensor."""
        return self.rows * self.row_len + self.cols

    def byte_starts(self, data_start: int, item_bytes: int) -> np.ndarray:
        """(n,) file offset of each segment in a tensor stored row-major from `data_start`."""
        return data_start + self.first_values() * item_bytes

    def value_offsets(self) -> np.ndarray:
        """(n, length) flat indices of the sampled values in the row-major tensor."""
        return self.first_values()[:, None] + np.arange(self.length, dtype=np.int64)[None, :]


@dataclass(frozen=True)
class Scheme:
    """How to sample a checkpoint."""

    name: str
    seed: int  # changes every coordinate; two schemes with different seeds share none
    fraction: float  # share of each matrix's values to read (the byte budget)
    min_values: int  # at least this many values per matrix, so small matrices still give a signal
    max_values: int  # never more values than this per matrix
    segment: int  # values per contiguous read; 0 reads whole rows
    # A matrix whose budget is at least this share of it is read whole, every value exact: a quarter of a
    # small matrix (the zoo's; BERT-tiny's 128 × 128) in segments is nearly all of its bytes once ranges a
    # kilobyte apart are coalesced, most of them thrown away.
    whole_share: float
    # 1-D tensors: 'skip' or 'whole'. Registered schemes skip them: norm weights sit near 1.0 in every
    # model, a constant offset that makes unrelated models look correlated in raw-weight Pearson.
    vectors: str

    @property
    def fingerprint(self) -> str:
        """A short hash of the definition: samples taken under another definition have other coordinates."""
        # tensors are named without their base-model prefix: another prefix list, other names and coordinates
        key = json.dumps(
            {**asdict(self), "base_prefixes": sorted(BASE_MODEL_PREFIXES)}, sort_keys=True
        ).encode()
        return hashlib.blake2b(key, digest_size=6).hexdigest()

    def plan(self, name: str, shape: tuple[int, ...]) -> SegmentPlan | None:
        """The segments to read of a tensor, or None when the scheme skips it (computed once per scheme,
        name and shape: every model of a family asks for the same plans)."""
        return _cached_plan(self, name, tuple(shape))

    def _make_plan(self, name: str, shape: tuple[int, ...]) -> SegmentPlan | None:
        if len(shape) == 0 or math.prod(shape) == 0:
            return None
        if len(shape) == 1:
            if self.vectors != "whole":
                return None
            return SegmentPlan(np.zeros(1, np.int64), np.zeros(1, np.int64), shape[0], shape[0])
        n_rows, row_len = shape[0], math.prod(shape[1:])
        size = n_rows * row_len
        budget = min(max(math.ceil(self.fraction * size), self.min_values, 1), self.max_values, size)
        if self.whole_share * size <= budget:  # whole rows, every one: the matrix read whole
            every = np.arange(n_rows, dtype=np.int64)
            return SegmentPlan(every, np.zeros(n_rows, np.int64), row_len, row_len)
        length = row_len if self.segment <= 0 else min(self.segment, row_len)
        slots = row_len // length  # non-overlapping segment positions in a row
        count = min(math.ceil(budget / length), n_rows * slots)
        h = _hash(self.seed, name, shape)
        if count <= n_rows:  # one segment in each of `count` rows, spread evenly
            stride = n_rows // count
            rows = (h % stride) + stride * np.arange(count, dtype=np.int64)
            cols = (_mix(h, rows) % slots) * length
        else:  # small matrices: every row, several segments in each at distinct slots
            per_row, extra = divmod(count, n_rows)
            reps = np.full(n_rows, per_row, np.int64)
            reps[(h % n_rows + np.arange(extra)) % n_rows] += 1
            rows = np.repeat(np.arange(n_rows, dtype=np.int64), reps)
            rank = np.arange(len(rows), dtype=np.int64) - np.repeat(np.cumsum(reps) - reps, reps)
            # slots rank, rank + step, ... from a per-row offset: distinct within a row, spread over it
            step = np.maximum(slots // np.maximum(reps[rows], 1), 1)
            cols = ((_mix(h, rows) + rank * step) % slots) * length
            order = np.lexsort((cols, rows))
            rows, cols = rows[order], cols[order]
        return SegmentPlan(rows, cols, length, row_len)


@functools.lru_cache(maxsize=2048)  # 2,048 plans of 4-70 KB: the tensor kinds of dozens of architectures
def _cached_plan(scheme: Scheme, name: str, shape: tuple[int, ...]) -> SegmentPlan | None:
    plan = scheme._make_plan(name, shape)
    if plan is not None:  # shared by every caller: read-only
        plan.rows.setflags(write=False)
        plan.cols.setflags(write=False)
    return plan


def _hash(seed: int, name: str, shape: tuple[int, ...]) -> int:
    key = f"{seed}\0{name}\0{','.join(map(str, shape))}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


def _mix(h: int, rows: np.ndarray) -> np.ndarray:
    """A per-row pseudo-random non-negative int64 from the tensor's hash (splitmix64 finaliser)."""
    with np.errstate(over="ignore"):
        z = rows.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(h)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(1)).astype(np.int64)


# fmt: off
SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        # ~4,096 values of each matrix as 16-value segments in 256 rows: well under 0.1% of a large
        # checkpoint, one range per segment (256 a matrix).
        Scheme("default", seed=20261201, fraction=0.0002, min_values=4096, max_values=1 << 17, segment=16,
               whole_share=0.25, vectors="skip"),
        # Whole rows, about half the default's values: ~1-2 ranges a matrix, for request-limited remote
        # sampling; far less faithful on row-structured (fine-tune, LoRA) deltas.
        Scheme("rows", seed=20240917, fraction=0.0002, min_values=2048, max_values=1 << 18, segment=0,
               whole_share=0.25, vectors="skip"),
        # Ten times the default: fidelity checks.
        Scheme("dense", seed=20261201, fraction=0.002, min_values=40960, max_values=1 << 20, segment=32,
               whole_share=0.25, vectors="skip"),
        # Every value of every matrix: the full-weight reference (small models only).
        Scheme("full", seed=0, fraction=1.0, min_values=0, max_values=1 << 62, segment=0, whole_share=1.0,
               vectors="skip"),
    )
}
# fmt: on
DEFAULT_SCHEME = "default"


def get_scheme(name: str) -> Scheme:
    """The registered scheme of that name; ValueError naming the choices otherwise."""
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown scheme {name!r}; choose one of {', '.join(SCHEMES)}") from None
