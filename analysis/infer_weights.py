"""Parents from weights: Model Atlas priors over sampled weight distances, MoTHer's kurtosis direction.

Input is the kinship table's contract (pairs with an `l2` distance of sampled weights, within one
architecture) plus per-model upload time, kurtosis and a leaf flag (quantized copies). The tree is a
minimum spanning arborescence (networkx Edmonds) over a K-nearest-neighbour graph whose edge costs are
distances, penalised when upload time or kurtosis points the other way.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from analysis.infer_meta import CREATED_AT_FLOOR
from atlas.records import EdgeRecord


@dataclass(frozen=True)
class WeightNode:
    """One sampled model: upload time, weight kurtosis, and whether it can only be a leaf."""

    id: str
    created_at: datetime | None = None
    kurtosis: float | None = None
    leaf: bool = False  # quantized copies never have children


@dataclass(frozen=True)
class WeightsConfig:
    k: int = 8  # nearest neighbours considered as parent candidates
    time_penalty: float = 20.0  # cost factor when the candidate parent is younger than the child
    kurtosis_penalty: float = 1.5  # cost factor when kurtosis points the other way (no usable dates)
    use_time: bool = True  # False = MoTHer alone (distance + kurtosis)
    duplicate_l2: float = 1e-6  # relative distance under which two models are the same weights


def _dated(n: WeightNode) -> bool:
    return n.created_at is not None and n.created_at >= CREATED_AT_FLOOR


def kurtosis_sign(nodes: Mapping[str, WeightNode], known: Iterable[tuple[str, str]]) -> float:
    """+1 if kurtosis grows from parent to child on the known edges, -1 if it shrinks (MoTHer), else +1."""
    votes = 0.0
    for child, parent in known:
        c, p = nodes.get(child), nodes.get(parent)
        if c and p and c.kurtosis is not None and p.kurtosis is not None:
            votes += math.copysign(1.0, c.kurtosis - p.kurtosis) if c.kurtosis != p.kurtosis else 0.0
    return -1.0 if votes < 0 else 1.0


def edge_cost(parent: WeightNode, child: WeightNode, dist: float, sign: float, cfg: WeightsConfig) -> float:
    """Cost of `parent -> child`: the distance, times penalties for priors that disagree."""
    cost = dist
    if cfg.use_time and _dated(parent) and _dated(child):
        if parent.created_at > child.created_at:  # type: ignore[operator]
            cost *= cfg.time_penalty
        return cost
    pk, ck = parent.kurtosis, child.kurtosis
    if pk is not None and ck is not None and sign * (ck - pk) < 0:
        cost *= cfg.kurtosis_penalty
    return cost


def infer_weight_tree(
    nodes: Sequence[WeightNode],
    distances: Mapping[tuple[str, str], float],
    *,
    known_parents: Mapping[str, Sequence[str]] | None = None,
    cfg: WeightsConfig = WeightsConfig(),
) -> dict[str, tuple[str, float]]:
    """Parent and cost for each model without a known parent, by a minimum spanning arborescence.

    `distances` holds (a, b) with a < b. Models in `known_parents` keep their parents (only those
    in-edges are offered); models that are leaves offer no out-edges; components are solved apart.
    """
    import networkx as nx

    known_parents = known_parents or {}
    by_id = {n.id: n for n in nodes}
    neigh: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for (a, b), d in distances.items():
        if a in by_id and b in by_id and a != b:
            neigh[a].append((d, b))
            neigh[b].append((d, a))
    sign = kurtosis_sign(by_id, ((c, p) for c, ps in known_parents.items() for p in ps))
    g = nx.DiGraph()
    g.add_nodes_from(by_id)
    for v, lst in neigh.items():
        child = by_id[v]
        if v in known_parents:
            for p in known_parents[v]:
                if p in by_id:
                    g.add_edge(p, v, weight=0.0)
            continue
        for d, u in sorted(lst)[: cfg.k]:
            if by_id[u].leaf or v in known_parents.get(u, ()):
                continue
            g.add_edge(u, v, weight=edge_cost(by_id[u], child, d, sign, cfg))
    out: dict[str, tuple[str, float]] = {}
    for comp in nx.weakly_connected_components(g):
        if len(comp) < 2:
            continue
        sub = g.subgraph(comp)
        try:
            tree = nx.minimum_spanning_arborescence(sub, attr="weight", preserve_attrs=True)
        except nx.NetworkXException:
            tree = nx.DiGraph(nx.minimum_branching(sub, attr="weight", preserve_attrs=True))
        for u, v, data in tree.edges(data=True):
            if v not in known_parents:
                out[v] = (u, float(data.get("weight", 0.0)))
    return out


def nearest_earlier(
    nodes: Sequence[WeightNode], distances: Mapping[tuple[str, str], float]
) -> dict[str, tuple[str, float]]:
    """Baseline: each model's parent is its nearest model uploaded strictly before it."""
    by_id = {n.id: n for n in nodes}
    best: dict[str, tuple[str, float]] = {}
    for (a, b), d in distances.items():
        na, nb = by_id.get(a), by_id.get(b)
        if not na or not nb or na.created_at is None or nb.created_at is None:
            continue
        if na.created_at == nb.created_at:
            continue
        parent, child = (a, b) if na.created_at < nb.created_at else (b, a)
        if child not in best or d < best[child][1]:
            best[child] = (parent, d)
    return best


def detect_merges(
    tree: Mapping[str, str],
    distances: Mapping[tuple[str, str], float],
    *,
    min_share: float = 0.2,
    max_residual: float = 0.5,
    candidates: int = 20,
    leaves: frozenset[str] | set[str] = frozenset(),
) -> dict[str, tuple[tuple[str, float], tuple[str, float]]]:
    """Models better explained as a convex combination of two others than by their tree parent.

    From distances alone: with θ₀ the grandparent, the Gram matrix of deltas (law of cosines) gives the
    least-squares weights of v on a and b; a merge has both weights ≥ `min_share` and a residual under
    `max_residual` times its distance to the tree parent. Returns child -> ((a, wa), (b, wb)).
    """

    def d(x: str, y: str) -> float | None:
        if x == y:
            return 0.0
        return distances.get((x, y) if x < y else (y, x))

    neighbours: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for (a, b), dist in distances.items():
        neighbours[a].append((dist, b))
        neighbours[b].append((dist, a))
    out: dict[str, tuple[tuple[str, float], tuple[str, float]]] = {}
    for v, p in tree.items():
        ref = tree.get(p)
        dvp = d(v, p)
        if ref is None or not dvp:
            continue
        near = [
            u
            for _, u in sorted(neighbours[v])[:candidates]
            if u not in (v, ref) and u not in leaves and tree.get(u) != v
        ]
        best = None
        for i, a in enumerate(near):
            for b in near[i + 1 :]:
                fit = _segment_fit(v, a, b, d) or _fit_pair(v, a, b, ref, d)
                ok = fit and fit[0] >= min_share and fit[1] >= min_share and fit[2] < max_residual * dvp
                if ok and (best is None or fit[2] < best[2][2]):
                    best = (a, b, fit)
        if best:
            a, b, (wa, wb, _) = best
            s = wa + wb
            out[v] = ((a, wa / s), (b, wb / s))
    return out


def _segment_fit(v: str, a: str, b: str, d) -> tuple[float, float, float] | None:
    """Weights of v on the segment a-b (a linear merge lies on it) and its distance off the segment."""
    va, vb, ab = d(v, a), d(v, b), d(a, b)
    if va is None or vb is None or not ab:
        return None
    wa = (vb * vb - va * va + ab * ab) / (2 * ab * ab)  # share of a: 1 at a, 0 at b
    off2 = va * va - ((1 - wa) * ab) ** 2
    return wa, 1 - wa, math.sqrt(max(off2, 0.0))


def _fit_pair(v: str, a: str, b: str, r: str, d) -> tuple[float, float, float] | None:
    ds = [d(x, y) for x, y in ((v, r), (a, r), (b, r), (v, a), (v, b), (a, b))]
    if any(x is None for x in ds):
        return None
    vr, ar, br, va, vb, ab = (x * x for x in ds)
    gaa, gbb, gvv = ar, br, vr
    gab = (ar + br - ab) / 2
    gva = (vr + ar - va) / 2
    gvb = (vr + br - vb) / 2
    det = gaa * gbb - gab * gab
    if det <= 1e-12 * max(gaa * gbb, 1e-30):
        return None
    wa = (gva * gbb - gvb * gab) / det
    wb = (gvb * gaa - gva * gab) / det
    res2 = gvv - wa * gva - wb * gvb
    return wa, wb, math.sqrt(max(res2, 0.0))


def confidence_from_cost(cost: float, runner_up: float | None) -> float:
    """Confidence of a weight edge: how much better the chosen parent is than the next candidate."""
    if runner_up is None or runner_up <= 0:
        return 0.6
    margin = 1.0 - cost / runner_up  # 0 = tie, 1 = the other candidate is infinitely far
    return round(min(0.95, 0.5 + 0.5 * max(margin, 0.0)), 3)


def weight_edges(
    nodes: Sequence[WeightNode],
    distances: Mapping[tuple[str, str], float],
    *,
    known_parents: Mapping[str, Sequence[str]] | None = None,
    cfg: WeightsConfig = WeightsConfig(),
) -> list[EdgeRecord]:
    """Inferred edges (origin 'weights') with confidence and evidence; merges get two parents."""
    tree_cost = infer_weight_tree(nodes, distances, known_parents=known_parents, cfg=cfg)
    full_tree = {c: p for c, (p, _) in tree_cost.items()}
    for c, ps in (known_parents or {}).items():
        if ps:
            full_tree[c] = ps[0]
    by_id = {n.id: n for n in nodes}
    nearest: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for (a, b), dd in distances.items():
        nearest[a].append((dd, b))
        nearest[b].append((dd, a))
    for lst in nearest.values():
        lst.sort()
    merges = detect_merges(full_tree, distances, leaves={n.id for n in nodes if n.leaf})
    edges: list[EdgeRecord] = []
    for child, (parent, cost) in sorted(tree_cost.items()):
        if child in merges:
            for p, w in merges[child]:
                edges.append(EdgeRecord(child, p, "merge", "weights", 0.7, round(w, 3),
                                        f"convex combination of two models, weight {w:.2f}"))  # fmt: skip
            continue
        dist = distances.get((child, parent) if child < parent else (parent, child), 0.0)
        others = [dd for dd, u in nearest.get(child, []) if u != parent][:1]
        relation = "quantized" if by_id.get(child) and by_id[child].leaf else "finetune"
        if dist <= cfg.duplicate_l2:
            relation = "quantized" if relation == "quantized" else "finetune"
        edges.append(
            EdgeRecord(
                child=child,
                parent=parent,
                relation=relation,
                origin="weights",
                confidence=confidence_from_cost(dist, others[0] if others else None),
                evidence=f"nearest by sampled L2 ({dist:.4g}) in a spanning arborescence; cost {cost:.4g}",
            )
        )
    return edges


def break_cycles(edges: Sequence[EdgeRecord], fixed: Iterable[tuple[str, str]] = ()) -> list[EdgeRecord]:
    """Drop the least confident inferred edge of every cycle (with `fixed` declared edges) until none is left."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_edges_from((p, c) for c, p in fixed)
    keep = {(e.child, e.parent): e for e in edges}
    for e in edges:
        g.add_edge(e.parent, e.child)
    while True:
        try:
            cycle = nx.find_cycle(g)
        except nx.NetworkXNoCycle:
            break
        inferred = [(keep[(v, u)].confidence, u, v) for u, v, *_ in cycle if (v, u) in keep]
        if not inferred:
            break  # a declared cycle: kept as flagged data elsewhere
        _, u, v = min(inferred)
        g.remove_edge(u, v)
        del keep[(v, u)]
    return list(keep.values())
