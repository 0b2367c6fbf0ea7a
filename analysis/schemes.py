"""Sampling schemes as data: which rows of which tensors a sample reads.

A scheme picks, for a tensor name and shape, `count` rows spread evenly over the matrix (every `stride`-th
row) from an offset that is a seeded hash of (scheme seed, tensor name, shape): every model holding a tensor
of that name and shape is sampled at the same coordinates, each row is contiguous bytes, and spreading the
rows keeps row-structured deltas (token embeddings, attention heads) represented in proportion.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Scheme:
    """How to sample a checkpoint."""

    name: str
    seed: int  # changes every row choice; two schemes with different seeds share no coordinates
    fraction: float  # share of each matrix's rows to read (the byte budget)
    min_values: int  # at least this many values per matrix, so small matrices still give a signal
    max_rows: int  # never more rows than this per matrix
    # 1-D tensors: 'skip' or 'whole'. Registered schemes skip them: norm weights sit near 1.0 in every
    # model, a constant offset that makes unrelated models look correlated in raw-weight Pearson.
    vectors: str

    def rows_for(self, name: str, shape: tuple[int, ...]) -> tuple[int, int, int] | None:
        """The (first row, row count, stride) to read of a tensor, or None when the scheme skips it."""
        if len(shape) == 0 or math.prod(shape) == 0:
            return None
        if len(shape) == 1:
            return (0, 1, 1) if self.vectors == "whole" else None
        n_rows, row_len = shape[0], math.prod(shape[1:])
        k = max(math.ceil(self.fraction * n_rows), math.ceil(self.min_values / row_len), 1)
        k = min(k, self.max_rows, n_rows)
        stride = n_rows // k
        start = _hash(self.seed, name, shape) % stride
        return start, k, stride


def _hash(seed: int, name: str, shape: tuple[int, ...]) -> int:
    key = f"{seed}\0{name}\0{','.join(map(str, shape))}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        # Reads well under 0.1% of a large checkpoint: ~2 rows of each 2048-wide matrix.
        Scheme("default", seed=20240917, fraction=0.0002, min_values=2048, max_rows=64, vectors="skip"),
        # Ten times the default: for small models and fidelity checks.
        Scheme("dense", seed=20240917, fraction=0.002, min_values=16384, max_rows=512, vectors="skip"),
        # Every row of every matrix: the full-weight reference (small models only).
        Scheme("full", seed=0, fraction=1.0, min_values=0, max_rows=1 << 62, vectors="skip"),
    )
}
DEFAULT_SCHEME = "default"


def get_scheme(name: str) -> Scheme:
    """The registered scheme of that name; ValueError naming the choices otherwise."""
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown scheme {name!r}; choose one of {', '.join(SCHEMES)}") from None
