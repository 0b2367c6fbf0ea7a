"""Graph primitives of weight inference: sampled models, the distance index, upload-time order, branchings.

Pure functions and small containers shared by the inference passes (`infer_weights`); no I/O.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from analysis.infer_meta import CREATED_AT_FLOOR

ROOT = "\x00root"  # virtual root of the arborescence: an edge from it means "no parent found"


@dataclass(frozen=True)
class WeightNode:
    """One sampled model: upload time, weight statistics, and whether it can only be a leaf."""

    id: str
    created_at: datetime | None = None
    kurtosis: float | None = None
    leaf: bool = False  # known to have no children (a quantized name); weights find more
    norm: float | None = None  # ‖θ‖ of the sampled weights, on the same scale as the kinship `l2`
    bits: int | None = None  # mantissa bits of the stored dtype (F32 23, F16 10, BF16 7)
    adapter: bool = False  # a LoRA adapter (its weights are its base plus the update)


def dated(n: WeightNode) -> bool:
    return n.created_at is not None and n.created_at >= CREATED_AT_FLOOR


def older_or_undated(parent: WeightNode, child: WeightNode) -> bool:
    """Whether `parent` may be the child's parent by upload time (undated models may be either)."""
    if not (dated(parent) and dated(child)):
        return True
    return parent.created_at <= child.created_at  # type: ignore[operator]


def kurtosis_sign(nodes: Mapping[str, WeightNode], known: Iterable[tuple[str, str]]) -> float:
    """+1 if kurtosis grows from parent to child on the known edges, -1 if it shrinks (MoTHer), else +1."""
    votes = 0.0
    for child, parent in known:
        c, p = nodes.get(child), nodes.get(parent)
        if c and p and c.kurtosis is not None and p.kurtosis is not None:
            votes += math.copysign(1.0, c.kurtosis - p.kurtosis) if c.kurtosis != p.kurtosis else 0.0
    return -1.0 if votes < 0 else 1.0


DENSE_MAX = 4096  # components up to this many models keep a dense distance matrix (fast lookups)


class Distances:
    """Symmetric lookup, sorted neighbour lists and dense blocks over the kinship pairs (a < b)."""

    def __init__(self, pairs: Mapping[tuple[str, str], float], ids: Iterable[str]) -> None:
        keep = set(ids)
        self.pairs = pairs
        self.near: dict[str, list[tuple[float, str]]] = defaultdict(list)
        for (a, b), d in pairs.items():
            if a in keep and b in keep and a != b:
                self.near[a].append((d, b))
                self.near[b].append((d, a))
        for lst in self.near.values():
            lst.sort()
        self.where: dict[str, tuple[int, int]] = {}  # id -> (component, index in its dense matrix)
        self.dense: list[np.ndarray] = []
        for comp in _components(self.near):
            if len(comp) > DENSE_MAX:
                continue
            index = {m: i for i, m in enumerate(comp)}
            mat = np.full((len(comp), len(comp)), np.nan)  # (n, n)
            np.fill_diagonal(mat, 0.0)
            for m in comp:
                for d, u in self.near[m]:
                    mat[index[m], index[u]] = d
            self.where |= {m: (len(self.dense), i) for m, i in index.items()}
            self.dense.append(mat)

    def __call__(self, a: str, b: str) -> float | None:
        if a == b:
            return 0.0
        return self.pairs.get((a, b) if a < b else (b, a))

    def matrix(self, ids: Sequence[str]) -> np.ndarray:
        """(n, n) distances among `ids`, NaN where unknown."""
        spots = [self.where.get(m) for m in ids]
        if spots and all(s is not None and s[0] == spots[0][0] for s in spots):  # type: ignore[index]
            idx = [s[1] for s in spots]  # type: ignore[index]
            return self.dense[spots[0][0]][np.ix_(idx, idx)]  # type: ignore[index]
        out = np.full((len(ids), len(ids)), np.nan)
        for i, a in enumerate(ids):
            for j, b in enumerate(ids):
                d = self(a, b)
                out[i, j] = np.nan if d is None else d
        return out


def _components(near: Mapping[str, list[tuple[float, str]]]) -> list[list[str]]:
    seen: set[str] = set()
    out = []
    for start in sorted(near):
        if start in seen:
            continue
        comp, stack = [], [start]
        seen.add(start)
        while stack:
            m = stack.pop()
            comp.append(m)
            for _, u in near[m]:
                if u not in seen:
                    seen.add(u)
                    stack.append(u)
        out.append(sorted(comp))
    return out


def earlier_candidates(
    v: str, by_id: Mapping[str, WeightNode], dist: Distances, leaves: set[str], limit: int, use_time: bool
) -> list[tuple[float, str]]:
    """The `limit` nearest models that may be v's parent: not leaves, not younger (with `use_time`)."""
    out = []
    for d, u in dist.near.get(v, ()):
        if u in leaves or (use_time and not older_or_undated(by_id[u], by_id[v])):
            continue
        out.append((d, u))
        if len(out) >= limit:
            break
    return out


def is_before(a: WeightNode, b: WeightNode) -> bool:
    """a was there first: strictly older, or (same or unknown time) the smaller id."""
    if dated(a) and dated(b) and a.created_at != b.created_at:
        return a.created_at < b.created_at  # type: ignore[operator]
    return a.id < b.id


def ancestors(v: str, parents: Mapping[str, Sequence[str]], depth: int = 16) -> list[str]:
    """Ancestors of v through `parents`, nearest first (bounded depth; cycles are harmless)."""
    out: list[str] = []
    frontier = list(parents.get(v, ()))
    while frontier and depth > 0:
        depth -= 1
        nxt = []
        for p in frontier:
            if p not in out and p != v:
                out.append(p)
                nxt.extend(parents.get(p, ()))
        frontier = nxt
    return out


def time_key(n: WeightNode) -> tuple[int, datetime, str]:
    return (0, n.created_at, n.id) if dated(n) else (1, datetime.min, n.id)  # type: ignore[return-value]


def solve_branching(in_edges: Mapping[str, Sequence[tuple[float, str]]]) -> dict[str, tuple[str, float]]:
    """Minimum spanning arborescence from a virtual root: each child's chosen parent and edge cost.

    When every child's cheapest in-edge already forms a forest (always, when time orders the edges),
    that is the optimum; otherwise networkx's Edmonds solves the whole graph.
    """
    greedy = {v: min(es)[::-1] for v, es in in_edges.items() if es}
    if not _has_cycle({v: p for v, (p, _) in greedy.items()}):
        return greedy
    import networkx as nx

    g = nx.DiGraph()
    top = 1.0 + max((c for es in in_edges.values() for c, _ in es), default=1.0)
    for v, es in in_edges.items():
        g.add_edge(ROOT, v, weight=1e6 * top)
        for c, u in es:
            g.add_edge(u, v, weight=c)
    for u in list(g.nodes):
        if u != ROOT and not g.has_edge(ROOT, u):
            g.add_edge(ROOT, u, weight=1e6 * top)
    tree = nx.minimum_spanning_arborescence(g, attr="weight", preserve_attrs=True)
    return {v: (u, float(a["weight"])) for u, v, a in tree.edges(data=True) if u != ROOT and v in in_edges}


def _has_cycle(parent: Mapping[str, str]) -> bool:
    state: dict[str, int] = {}
    for start in parent:
        path = []
        v: str | None = start
        while v is not None and v in parent and v not in state:
            state[v] = 1
            path.append(v)
            v = parent[v]
        if v is not None and state.get(v) == 1:
            return True
        for p in path:
            state[p] = 2
    return False
