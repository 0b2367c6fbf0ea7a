"""2-D positions for every node of the atlas: each family a radial tree, families packed side by side.

Computed once (seconds for ~30k nodes) and stored in the `layout` table, so the app never lays out a
graph per request. A family here is a weakly connected component of `lineage`; its root is the node
without parents that has the largest subtree (a merge of two families lands in one of them).
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import duckdb
import numpy as np

from atlas.db import transaction


@dataclass(frozen=True)
class LayoutConfig:
    ring_gap: float = 1.0  # distance between depth rings of a family's radial tree
    leaf_spacing: float = 0.35  # arc length per node on a crowded ring; crowded rings grow thick annuli
    margin: float = 1.5  # space between packed families


@dataclass(frozen=True)
class Position:
    model_id: str
    root: str
    x: float
    y: float


def iter_components(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Weakly connected components (families), largest first; node order inside is stable."""
    index = {n: i for i, n in enumerate(nodes)}
    parent = list(range(len(nodes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in edges:
        if a in index and b in index:
            ra, rb = find(index[a]), find(index[b])
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[str]] = defaultdict(list)
    for n in nodes:
        groups[find(index[n])].append(n)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


def radial_tree(
    members: Sequence[str], children: dict[str, list[str]], has_parent: set[str], config: LayoutConfig
) -> tuple[str, dict[str, tuple[float, float]]]:
    """Lay one family out as a radial tree around its root; returns (root, positions centred on 0)."""
    member_set = set(members)
    roots = [m for m in members if m not in has_parent] or [members[0]]
    # Spanning tree by breadth-first search from every root, biggest first (merges keep their first parent).
    tree: dict[str, list[str]] = defaultdict(list)
    depth: dict[str, int] = {}
    order: list[str] = []
    for r in roots:
        if r in depth:
            continue
        depth[r] = 0
        queue = deque([r])
        while queue:
            node = queue.popleft()
            order.append(node)
            for c in children.get(node, ()):
                if c in member_set and c not in depth:
                    depth[c] = depth[node] + 1
                    tree[node].append(c)
                    queue.append(c)
    # Leaves below each node decide the angular share of its subtree.
    leaves: dict[str, int] = {}
    for node in reversed(order):
        leaves[node] = sum(leaves[c] for c in tree[node]) or 1
    top = [r for r in roots if depth.get(r) == 0]
    root = max(top, key=lambda r: (leaves[r], r))
    per_depth: dict[int, int] = defaultdict(int)
    for d in depth.values():
        per_depth[d] += 1
    radius = _ring_radii(per_depth, config)
    thickness = {
        d: max(1, math.ceil(n * config.leaf_spacing / (2 * math.pi * max(radius[d], 1.0))))
        for d, n in per_depth.items()
    }
    pos: dict[str, tuple[float, float]] = {}
    total = sum(leaves[r] for r in top)
    seen_at_depth: dict[int, int] = defaultdict(int)
    start = 0.0
    stack: list[tuple[str, float, float]] = []
    sector_mid: dict[str, float] = {}
    for r in top:
        width = 2 * math.pi * leaves[r] / total
        stack.append((r, start, width))
        sector_mid[r] = start + width / 2
        start += width
    while stack:
        node, a0, width = stack.pop()
        d = depth[node]
        k = seen_at_depth[d]
        seen_at_depth[d] += 1
        rad = radius[d] + config.ring_gap * 0.8 * (k % thickness[d]) / thickness[d]
        angle = a0 + width / 2
        pos[node] = (rad * math.cos(angle), rad * math.sin(angle)) if d else (0.0, 0.0)
        a = a0
        for c in tree[node]:
            w = width * leaves[c] / leaves[node]
            stack.append((c, a, w))
            a += w
    # Several roots (a merge joined two lineages): the main root keeps the centre, the others sit halfway
    # to the first ring in the middle of their own sector, so none overlap.
    inner = 0.5 * radius.get(1, 1.0)
    for r in top:
        if r != root:
            pos[r] = (inner * math.cos(sector_mid[r]), inner * math.sin(sector_mid[r]))
    return root, pos


def _ring_radii(per_depth: dict[int, int], config: LayoutConfig) -> dict[int, float]:
    """Radius of each depth ring: at least one gap further out, and wide enough for its nodes."""
    radius: dict[int, float] = {0: 0.0}
    for d in range(1, max(per_depth) + 1):
        need = per_depth.get(d, 0) * config.leaf_spacing / (2 * math.pi)
        radius[d] = max(
            radius[d - 1] + config.ring_gap, math.sqrt(need * config.ring_gap * 4) if need else 0.0
        )
    return radius


def pack_families(sizes: Sequence[float], margin: float) -> np.ndarray:
    """Centres for circles of the given radii (largest first), packed in shelves into a squarish block."""
    radii = np.asarray(sizes, dtype=float) + margin  # (n_families,)
    width = max(float(np.sqrt(np.sum((2 * radii) ** 2))) * 1.1, float(2 * radii.max()) if len(radii) else 1.0)
    centres = np.zeros((len(radii), 2))
    x = y = shelf = 0.0
    for i, r in enumerate(radii):
        if x + 2 * r > width and x > 0:
            y -= shelf
            x, shelf = 0.0, 0.0
        centres[i] = (x + r, y - r)
        x += 2 * r
        shelf = max(shelf, 2 * r)
    return centres


def compute_layout(
    nodes: Sequence[str], edges: Sequence[tuple[str, str]], config: LayoutConfig | None = None
) -> list[Position]:
    """Positions for all `nodes` given `(parent, child)` edges: one radial tree per family, packed."""
    config = config or LayoutConfig()
    children: dict[str, list[str]] = defaultdict(list)
    has_parent: set[str] = set()
    for parent, child in edges:
        if parent != child:
            children[parent].append(child)
            has_parent.add(child)
    for kids in children.values():
        kids.sort()
    families = []
    for members in iter_components(nodes, edges):
        root, pos = radial_tree(members, children, has_parent, config)
        extent = max((math.hypot(x, y) for x, y in pos.values()), default=0.0) + 0.5
        families.append((root, pos, extent))
    centres = pack_families([f[2] for f in families], config.margin)
    out: list[Position] = []
    for (root, pos, _), (cx, cy) in zip(families, centres, strict=True):
        out.extend(Position(n, root, x + cx, y + cy) for n, (x, y) in pos.items())
    return out


def layout_is_stale(con: duckdb.DuckDBPyConnection) -> bool:
    """True when the stored layout does not cover the current nodes (empty, or node count differs)."""
    n_layout = con.execute("SELECT count(*) FROM layout").fetchone()[0]
    n_nodes = con.execute("SELECT count(*) FROM nodes").fetchone()[0]
    return (n_layout == 0 and n_nodes > 0) or n_layout != n_nodes


def write_layout(con: duckdb.DuckDBPyConnection, config: LayoutConfig | None = None) -> int:
    """Recompute the layout of every node in `nodes` and replace the `layout` table; returns rows."""
    nodes = [r[0] for r in con.execute("SELECT id FROM nodes ORDER BY id").fetchall()]
    edges = con.execute("SELECT parent, child FROM lineage WHERE parent <> child").fetchall()
    positions = compute_layout(nodes, edges, config)
    with transaction(con):
        con.execute("DELETE FROM layout")
        if positions:  # one statement with list parameters: row-by-row inserts take seconds at 30k rows
            con.execute(
                "INSERT INTO layout (model_id, root, x, y) SELECT unnest(?), unnest(?), unnest(?), unnest(?)",
                [
                    [p.model_id for p in positions],
                    [p.root for p in positions],
                    [p.x for p in positions],
                    [p.y for p in positions],
                ],
            )
    return len(positions)
