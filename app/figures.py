"""Plotly figures of the app, built by pure functions from rows the `app.data` queries return."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import plotly.graph_objects as go

from app.data import AtlasPoints, FamilyTree

# One colour per lineage relation (registry as data; the legend and the family page read it).
RELATION_COLORS = {
    "root": "#111827",
    "finetune": "#2563eb",
    "adapter": "#16a34a",
    "quantized": "#9333ea",
    "merge": "#ea580c",
    "distill": "#0891b2",
    "checkpoint": "#ca8a04",
    "conversion": "#db2777",
    "unknown": "#6b7280",
}
PALETTE = [
    "#2563eb",
    "#ea580c",
    "#16a34a",
    "#9333ea",
    "#dc2626",
    "#0891b2",
    "#ca8a04",
    "#db2777",
    "#4b5563",
    "#65a30d",
]
OTHER_COLOR = "#cbd5e1"
UNKNOWN_COLOR = "#94a3b8"
MORE_PREFIX = "more:"  # id prefix of the synthetic node standing for a collapsed fan
MAX_CATEGORIES = 10  # categories beyond the biggest ones are drawn as "other"


def marker_size(downloads: int | None) -> float:
    """Marker diameter in pixels growing with log downloads: 3 px for none, about 15 px at 10M."""
    return 3.0 + 1.7 * math.log10(1 + max(downloads or 0, 0))


def category_colors(values: Sequence[str], field: str) -> dict[str, str]:
    """Colour per category: relations use their fixed colours, other fields the biggest categories."""
    if field == "relation":
        return {v: RELATION_COLORS.get(v, RELATION_COLORS["unknown"]) for v in set(values)}
    ranked = [v for v, _ in Counter(v for v in values if v != "unknown").most_common(MAX_CATEGORIES)]
    colors = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(ranked)}
    if "unknown" in values:
        colors["unknown"] = UNKNOWN_COLOR
    return colors


def build_atlas_figure(
    points: AtlasPoints, edges_xy: tuple[list[Any], list[Any]], color_by: str = "relation"
) -> go.Figure:
    """Every node of the atlas as WebGL markers (one trace per category), edges as one faint line trace."""
    values: list[str] = list(getattr(points, color_by))
    colors = category_colors(values, color_by)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, v in enumerate(values):
        groups[v if v in colors else "other"].append(i)
    fig = go.Figure()
    # numpy arrays travel as compact typed arrays in the figure JSON; NaN breaks the line between edges.
    ex, ey = (np.asarray(v, dtype=float) for v in edges_xy)
    xs, ys = np.asarray(points.x, dtype=float), np.asarray(points.y, dtype=float)
    downloads = np.asarray(points.downloads, dtype=np.int64)
    # Smaller markers when many thousands of points share the overview, so families stay apart.
    scale = 1.0 if len(xs) < 2000 else 0.5
    sizes = scale * (3.0 + 1.7 * np.log10(1 + np.maximum(downloads, 0)))
    fig.add_trace(
        go.Scattergl(
            x=ex,
            y=ey,
            mode="lines",
            line={"width": 0.6, "color": "#cbd5e1"},
            hoverinfo="skip",
            name="lineage",
            showlegend=False,
        )
    )
    order = sorted(groups, key=lambda g: (g == "other", -len(groups[g]), g))
    for name in order:
        idx = groups[name]
        sel = np.asarray(idx, dtype=np.int64)
        fig.add_trace(
            go.Scattergl(
                x=xs[sel],
                y=ys[sel],
                mode="markers",
                name=f"{name} ({len(idx):,})",
                text=[points.ids[i] for i in idx],
                customdata=downloads[sel],
                marker={
                    "size": sizes[sel],
                    "color": colors.get(name, OTHER_COLOR),
                    "line": {"width": 0},
                    "opacity": 0.85,
                },
                hovertemplate=f"<b>%{{text}}</b><br>downloads: %{{customdata:,}}<br>{color_by}: {name}<extra></extra>",
            )
        )
    fig.update_layout(
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
        xaxis={"visible": False},
        yaxis={"visible": False, "scaleanchor": "x"},
        plot_bgcolor="white",
        legend={"title": {"text": color_by}, "itemsizing": "constant", "bgcolor": "rgba(255,255,255,0.8)"},
        hovermode="closest",
        dragmode="pan",
        uirevision="atlas",
    )
    return fig


@dataclass(frozen=True)
class TreeLayout:
    positions: dict[str, tuple[float, float]]  # node id -> (x, y); y = -depth
    tree_edges: list[dict[str, Any]]  # lineage edges among shown nodes (collapsed ones removed)
    collapsed: dict[str, int]  # synthetic "more" node id -> how many children it stands for
    nodes: dict[str, dict[str, Any]]  # shown node id -> its facts


def visible_nodes(tree: FamilyTree, until: datetime | None) -> list[dict[str, Any]]:
    """Members created by `until` (undated ones and placeholders always show, so the tree stays whole)."""
    if until is None:
        return list(tree.nodes)
    return [
        n for n in tree.nodes if n["created_at"] is None or n["created_at"] <= until or n["id"] == tree.root
    ]


def layout_tree(tree: FamilyTree, *, until: datetime | None = None, fan_limit: int = 25) -> TreeLayout:
    """Top-down tree positions; a node with more than `fan_limit` leaf children shows the biggest ones
    and one "+N more" node for the rest."""
    nodes = {n["id"]: n for n in visible_nodes(tree, until)}
    edges = [e for e in tree.edges if e["parent"] in nodes and e["child"] in nodes]
    kids: dict[str, list[str]] = defaultdict(list)
    has_parent: set[str] = set()
    for e in edges:
        kids[e["parent"]].append(e["child"])
        has_parent.add(e["child"])
    # Spanning tree, breadth first from the root (and any member whose parents are hidden).
    starts = [tree.root] + [n for n in nodes if n not in has_parent and n != tree.root]
    tree_kids: dict[str, list[str]] = defaultdict(list)
    depth: dict[str, int] = {}
    for s in starts:
        if s in depth:
            continue
        depth[s] = 0 if s == tree.root else 1
        frontier = [s]
        while frontier:
            nxt = []
            for p in frontier:
                for c in sorted(kids[p], key=lambda c: (-nodes[c]["downloads"], c)):
                    if c not in depth:
                        depth[c] = depth[p] + 1
                        tree_kids[p].append(c)
                        nxt.append(c)
            frontier = nxt
    collapsed: dict[str, int] = {}
    hidden: set[str] = set()
    for p, cs in list(tree_kids.items()):
        leaves = [c for c in cs if not tree_kids.get(c)]
        if len(leaves) > fan_limit:
            drop = leaves[fan_limit:]
            hidden.update(drop)
            more = f"{MORE_PREFIX}{p}"
            collapsed[more] = len(drop)
            tree_kids[p] = [c for c in cs if c not in hidden] + [more]
            depth[more] = depth[p] + 1
    positions: dict[str, tuple[float, float]] = {}
    next_x = [0.0]

    def place(n: str) -> float:
        cs = tree_kids.get(n, [])
        if not cs:
            x = next_x[0]
            next_x[0] += 1.0
        else:
            xs = [place(c) for c in cs]
            x = (xs[0] + xs[-1]) / 2
        positions[n] = (x, -float(depth[n]))
        return x

    for s in starts:
        if s in depth and s not in positions and s not in hidden:
            place(s)
    shown = {**{k: v for k, v in nodes.items() if k not in hidden}}
    for more, n in collapsed.items():
        shown[more] = {"id": more, "downloads": 0, "placeholder": False, "created_at": None, "more": n}
    kept = [e for e in edges if e["parent"] in positions and e["child"] in positions]
    return TreeLayout(positions, kept, collapsed, shown)


def _short(model_id: str) -> str:
    return model_id.split("/", 1)[-1]


def build_family_figure(layout: TreeLayout, root: str) -> go.Figure:
    """The family tree: edges coloured by relation, declared solid and inferred dashed with their
    confidence; nodes sized by downloads, deleted parents as hollow grey circles."""
    fig = go.Figure()
    groups: dict[tuple[str, bool], list[dict[str, Any]]] = defaultdict(list)
    for e in layout.tree_edges:
        groups[(e["relation"], bool(e["declared"]))].append(e)
    for (relation, declared), es in sorted(groups.items()):
        xs: list[float | None] = []
        ys: list[float | None] = []
        for e in es:
            (px, py), (cx, cy) = layout.positions[e["parent"]], layout.positions[e["child"]]
            xs += [px, cx, None]
            ys += [py, cy, None]
        color = RELATION_COLORS.get(relation, RELATION_COLORS["unknown"])
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                hoverinfo="skip",
                line={
                    "color": color,
                    "width": 2 if declared else 1.5,
                    "dash": "solid" if declared else "dash",
                },
                name=f"{relation} ({'declared' if declared else 'inferred'})",
            )
        )
        if not declared:  # confidence at the middle of each inferred edge, readable on hover and as text
            mids = [
                (
                    (layout.positions[e["parent"]][0] + layout.positions[e["child"]][0]) / 2,
                    (layout.positions[e["parent"]][1] + layout.positions[e["child"]][1]) / 2,
                    e,
                )
                for e in es
            ]
            fig.add_trace(
                go.Scatter(
                    x=[m[0] for m in mids],
                    y=[m[1] for m in mids],
                    mode="markers+text",
                    marker={"symbol": "diamond", "size": 7, "color": color},
                    text=[f"{m[2]['confidence']:.2f}" for m in mids],
                    textposition="middle right",
                    hovertext=[
                        f"inferred from {m[2]['origin']}: {m[2]['parent']} → {m[2]['child']}, confidence {m[2]['confidence']:.2f}"
                        for m in mids
                    ],
                    hoverinfo="text",
                    showlegend=False,
                    name="confidence",
                )
            )
    ids = list(layout.positions)
    rel_of = {e["child"]: e["relation"] for e in layout.tree_edges}
    facts = layout.nodes
    label = len(ids) <= 80
    fig.add_trace(
        go.Scatter(
            x=[layout.positions[i][0] for i in ids],
            y=[layout.positions[i][1] for i in ids],
            mode="markers+text" if label else "markers",
            text=[_node_label(i, facts[i]) for i in ids] if label else None,
            textposition="bottom center",
            textfont={"size": 10},
            customdata=ids,
            hovertext=[_node_hover(i, facts[i]) for i in ids],
            hoverinfo="text",
            marker={
                "size": [
                    12 if i.startswith(MORE_PREFIX) else marker_size(facts[i]["downloads"]) + 4 for i in ids
                ],
                "color": [
                    "white"
                    if facts[i].get("placeholder") or i.startswith(MORE_PREFIX)
                    else RELATION_COLORS.get(rel_of.get(i, "root"), RELATION_COLORS["unknown"])
                    for i in ids
                ],
                "line": {
                    "width": 1.5,
                    "color": [
                        "#6b7280" if facts[i].get("placeholder") or i.startswith(MORE_PREFIX) else "white"
                        for i in ids
                    ],
                },
                "symbol": ["square" if i.startswith(MORE_PREFIX) else "circle" for i in ids],
            },
            name="models",
            showlegend=False,
        )
    )
    fig.update_layout(
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        title={"text": f"Family of {root}", "font": {"size": 14}},
        xaxis={"visible": False},
        yaxis={"visible": False},
        plot_bgcolor="white",
        hovermode="closest",
        legend={"orientation": "h", "y": -0.02},
        uirevision=root,
    )
    return fig


def _node_label(node_id: str, facts: dict[str, Any]) -> str:
    if node_id.startswith(MORE_PREFIX):
        return f"+{facts['more']} more"
    return _short(node_id)


def _node_hover(node_id: str, facts: dict[str, Any]) -> str:
    if node_id.startswith(MORE_PREFIX):
        return f"{facts['more']} more children of {node_id.removeprefix(MORE_PREFIX)} (collapsed)"
    created = facts.get("created_at")
    when = created.strftime("%Y-%m-%d") if isinstance(created, datetime) else "unknown date"
    kind = " (not stored: deleted or not crawled)" if facts.get("placeholder") else ""
    return f"<b>{node_id}</b>{kind}<br>downloads: {facts.get('downloads', 0):,}<br>created: {when}"


def build_layer_chart(layers: Sequence[dict[str, Any]], a: str, b: str) -> go.Figure:
    """Per-layer difference of two models: 1 − cosine of deltas as bars, L2 as a line on a second axis."""
    names = [r["layer"] for r in layers]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=names,
            y=[None if r["cosine"] is None else 1 - r["cosine"] for r in layers],
            name="1 − cosine",
            marker_color="#2563eb",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=names,
            y=[r["l2"] for r in layers],
            name="L2",
            yaxis="y2",
            mode="lines+markers",
            line={"color": "#ea580c"},
        )
    )
    fig.update_layout(
        title={"text": f"Per-layer difference: {a} vs {b}", "font": {"size": 13}},
        margin={"l": 40, "r": 40, "t": 40, "b": 80},
        yaxis={"title": "1 − cosine", "rangemode": "tozero"},
        yaxis2={"title": "L2", "overlaying": "y", "side": "right", "rangemode": "tozero"},
        legend={"orientation": "h", "y": 1.12},
        plot_bgcolor="white",
        height=320,
    )
    return fig
