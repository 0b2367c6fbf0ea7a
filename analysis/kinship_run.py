"""Kinship over the atlas: load stored samples, group models that share coordinates, pick each pair's
reference from `lineage`, run the blocked all-pairs products, and write `kinship`, `kinship_layers` and
`weight_stats`.

Conventions (documented for SQL users):
- `kinship` holds each unordered pair once, with `a < b`; the view `nearest_kin` lists both directions.
- A pair's reference θ₀ is the nearest common strict ancestor (in `lineage`) that has a sample in the
  same group, i.e. the family root at worst; when there is none (unrelated models, or a model and its
  root parent) the metrics are of raw weights and `reference` is NULL.
- An adapter has no weights of its own: its θ is θ_base + scaling·B·A on the targeted matrices, built
  from its base's sample (the adapter config's base, else its lineage parent); without a sampled base
  it is left out, with a warning.
- Models are compared only inside a shape group: models whose shared tensors (same name and shape) hold
  at least half of each one's sampled values; a group uses the tensors all its members share.
"""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError

from analysis.kinship import KinshipConfig, excess_kurtosis_rows, gram_matrix, pair_metrics, resolve_device
from analysis.samples import load_sample
from analysis.schemes import SCHEMES
from atlas.db import query_dicts, transaction

Key = tuple[str, tuple[int, ...]]  # tensor name, whole shape: with the scheme they fix the coordinates
MIN_SHARED = 0.5  # a model joins a group when the shared tensors hold this share of its sampled values
LAYERS_MAX_MODELS = 300  # per-layer profiles (n² × layers rows) only for groups up to this size
_LAYER = re.compile(r"(?:^|[._])(?:layers?|h|blocks?)[._]?(\d+)(?:[._]|$)")


@dataclass
class KinshipSummary:
    groups: int = 0
    models: int = 0
    pairs: int = 0
    device: str = "cpu"
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


def layer_of(name: str) -> str:
    """The layer a tensor belongs to ('layer.3'), or 'embed' / 'head' / 'other'."""
    m = _LAYER.search(name)
    if m:
        return f"layer.{int(m.group(1))}"
    low = name.lower()
    if "embed" in low or "wte" in low or "wpe" in low:
        return "embed"
    if "head" in low or "classifier" in low:
        return "head"
    return "other"


def load_vectors(
    con: duckdb.DuckDBPyConnection, scheme: str, ids: list[str] | None, warnings: list[str]
) -> dict[str, dict[Key, np.ndarray]]:
    """Each sampled model's tensors by key; adapters become their base plus their update."""
    rows = query_dicts(
        con,
        "SELECT model_id, location FROM weight_samples WHERE scheme = ? AND status = 'ok' ORDER BY model_id",
        [scheme],
    )
    current = SCHEMES[scheme].fingerprint if scheme in SCHEMES else None
    stored, stale = {}, []
    for r in rows:
        try:
            sample = load_sample(Path(r["location"]))
        except (OSError, ValueError, KeyError, SafetensorError) as e:
            warnings.append(f"{r['model_id']}: sample file {r['location']} unreadable ({e}); skipped")
            continue
        if current is not None and sample.fingerprint != current:
            stale.append(r["model_id"])
            continue
        stored[r["model_id"]] = sample
    if stale:  # after an upgrade that is every model: one line, not one each
        shown = ", ".join(stale[:3]) + (f" and {len(stale) - 3} more" if len(stale) > 3 else "")
        warnings.append(
            f"{shown}: sampled under an earlier definition of scheme {scheme!r} (other coordinates); left out: "
            f"sample {'them' if len(stale) > 1 else 'it'} again with `hubatlas sample --all --scheme {scheme}`"
        )
    parents = defaultdict(list)
    for r in query_dicts(con, "SELECT child, parent FROM lineage WHERE child <> parent ORDER BY parent"):
        parents[r["child"]].append(r["parent"])
    vectors: dict[str, dict[Key, np.ndarray]] = {}
    full = {m: s for m, s in stored.items() if s.kind == "full"}
    for m, s in stored.items():
        if ids is not None and m not in ids:
            continue
        tensors = {(n, shape): v for n, (shape, v) in s.tensors.items()}
        if s.kind == "adapter":
            base = next((b for b in [s.base, *parents.get(m, [])] if b in full), None)
            if base is None:
                warnings.append(f"{m}: adapter without a sampled base ({s.base}); left out")
                continue
            merged = {(n, shape): v for n, (shape, v) in full[base].tensors.items()}
            misfit = [k for k, d in tensors.items() if k not in merged or merged[k].shape != d.shape]
            if misfit:
                name, shape = misfit[0]
                theirs = next((list(s) for (n, s) in merged if n == name), None)
                warnings.append(f"{m}: adapter update {name} {list(shape)} does not fit its base {base} "
                                f"({'no such tensor' if theirs is None else theirs}); left out")  # fmt: skip
                continue
            for key, delta in tensors.items():
                merged[key] = merged[key] + delta
            tensors = merged
        vectors[m] = tensors
    return vectors


def build_groups(vectors: dict[str, dict[Key, np.ndarray]]) -> list[tuple[list[str], list[Key]]]:
    """Shape groups of two or more models: (models, keys they all share, each layer's keys together)."""
    groups: list[tuple[list[str], dict[Key, int]]] = []  # members, shared key -> values
    for m in sorted(vectors, key=lambda x: (-sum(v.size for v in vectors[x].values()), x)):
        mine = {k: v.size for k, v in vectors[m].items()}
        total = sum(mine.values())
        for members, keys in groups:
            shared = keys.keys() & mine.keys()
            got = sum(mine[k] for k in shared)
            if total and got >= MIN_SHARED * total and got >= MIN_SHARED * sum(keys.values()):
                members.append(m)
                for k in list(keys):
                    if k not in shared:
                        del keys[k]
                break
        else:
            groups.append(([m], mine))
    return [(sorted(ms), sorted(ks, key=_by_layer)) for ms, ks in groups if len(ms) > 1 and ks]


def _by_layer(key: Key) -> tuple[str, str, tuple[int, ...]]:
    return layer_of(key[0]), key[0], key[1]


def ancestor_depths(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, int]]:
    """Every model's strict ancestors in `lineage` with their distance."""
    parents = defaultdict(set)
    for child, parent in con.execute("SELECT child, parent FROM lineage WHERE child <> parent").fetchall():
        parents[child].add(parent)
    out: dict[str, dict[str, int]] = {}
    for start in list(parents):
        seen, frontier, depth = {}, [start], 0
        while frontier:
            depth += 1
            nxt = []
            for node in frontier:
                for p in parents.get(node, ()):
                    if p not in seen and p != start:
                        seen[p] = depth
                        nxt.append(p)
            frontier = nxt
        out[start] = seen
    return out


def pair_reference(a: str, b: str, anc: dict[str, dict[str, int]], sampled: set[str]) -> str | None:
    """The nearest common strict ancestor of a and b with a sample, else None (raw weights)."""
    da, db = anc.get(a, {}), anc.get(b, {})
    common = [(da[x] + db[x], x) for x in da.keys() & db.keys() if x in sampled]
    return min(common)[1] if common else None


def tensor_weight(key: Key, values: np.ndarray) -> float:
    """√(a tensor's values / its sampled values): weighted so, every tensor counts in products and distances
    as much as it does in the whole checkpoint (an unbiased estimate of full-weight Gram entries and L2)."""
    return float(np.sqrt(math.prod(key[1]) / values.size))


def weighted_matrix(
    models: list[str], keys: list[Key], vectors: dict[str, dict[Key, np.ndarray]]
) -> torch.Tensor:
    """Stack the models' samples, each tensor weighted by `tensor_weight`."""
    sizes = [vectors[models[0]][k].size for k in keys]
    out = np.empty((len(models), sum(sizes)), dtype=np.float32)  # (n_models, n_coords)
    for row, m in zip(out, models, strict=True):
        pos = 0
        for k, size in zip(keys, sizes, strict=True):
            v = vectors[m][k]
            np.multiply(v.ravel(), np.float32(tensor_weight(k, v)), out=row[pos : pos + size])
            pos += size
    return torch.from_numpy(out)


def layer_spans(keys: list[Key], vectors_one: dict[Key, np.ndarray]) -> dict[str, slice]:
    """Each layer's columns of `weighted_matrix`: one run each, as `build_groups` orders keys by layer."""
    spans: dict[str, slice] = {}
    pos = 0
    for k in keys:
        name, n = layer_of(k[0]), vectors_one[k].size
        spans[name] = slice(spans[name].start if name in spans else pos, pos + n)
        pos += n
    return spans


def pairs_by_reference(
    models: list[str], anc: dict[str, dict[str, int]]
) -> dict[int | None, tuple[torch.Tensor, torch.Tensor]]:
    """Every pair (i < j) of a group, by the row of its reference θ₀ (None: raw weights)."""
    index = {m: i for i, m in enumerate(models)}
    sampled = set(models)
    by_ref: dict[int | None, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    for i, a in enumerate(models):
        for j in range(i + 1, len(models)):
            ref = pair_reference(a, models[j], anc, sampled)
            ii, jj = by_ref[None if ref is None else index[ref]]
            ii.append(i)
            jj.append(j)
    return {r: (torch.tensor(i), torch.tensor(j)) for r, (i, j) in by_ref.items()}


ProgressFn = Callable[[int, int], None]  # (steps done, steps in all)


def compute_kinship(
    con: duckdb.DuckDBPyConnection,
    *,
    scheme: str,
    device: str = "auto",
    family: str | None = None,
    config: KinshipConfig | None = None,
    progress: ProgressFn | None = None,
) -> KinshipSummary:
    """Compute and store kinship for every shape group of sampled models (of one family when given).

    Raises ValueError when there is nothing to compare: no such family, or no samples of the scheme.
    """
    t0 = time.perf_counter()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    config = config or KinshipConfig()
    dev = resolve_device(device)
    summary = KinshipSummary(device=dev.type)
    ids = None
    if family is not None:
        ids = [r[0] for r in con.execute("SELECT id FROM family(?)", [family]).fetchall()]
        if not ids:
            raise ValueError(f"{family}: no such family root (see `SELECT * FROM families`)")
    vectors = load_vectors(con, scheme, ids, summary.warnings)
    if not vectors:
        raise ValueError(_no_samples(con, scheme, family))
    anc = ancestor_depths(con)
    groups = [(models, keys, pairs_by_reference(models, anc)) for models, keys in build_groups(vectors)]
    # progress steps: per group its Gram products, then each reference's masks
    total, done = sum(1 + len(pairs) for _, _, pairs in groups), 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    kin: dict[str, list[np.ndarray]] = defaultdict(list)  # column -> one array per (group, reference)
    layers: dict[str, list[np.ndarray]] = defaultdict(list)
    stats = []
    for models, keys, pairs in groups:
        summary.groups += 1
        summary.models += len(models)
        x = weighted_matrix(models, keys, vectors)  # (n, d)
        layer_cols = layer_spans(keys, vectors[models[0]]) if len(models) <= LAYERS_MAX_MODELS else {}
        grams = {name: gram_matrix(x[:, c], config=config, device=dev) for name, c in layer_cols.items()}
        # the layers partition the coordinates, so their Gram matrices add up to the whole one
        g = sum(grams.values()) if grams else gram_matrix(x, config=config, device=dev)  # (n, n)
        step()
        res = pair_metrics(x, pairs, config=config, device=dev, gram=g, on_reference=step)
        names = np.array(models, dtype=object)
        for ref, (i, j) in pairs.items():
            _add_pairs(kin, names, i, j, {m: v.numpy() for m, v in res[ref].items()})
            kin["reference"].append(np.full(len(i), None if ref is None else models[ref], dtype=object))
            summary.pairs += len(i)
        for name, cols in layer_cols.items():
            sub = pair_metrics(x[:, cols], pairs, config=config, device=dev, gram=grams[name],
                               metrics=("cosine", "l2"))  # fmt: skip
            for ref, (i, j) in pairs.items():
                _add_pairs(layers, names, i, j, {m: v.numpy() for m, v in sub[ref].items()})
                layers["layer"].append(np.full(len(i), name, dtype=object))
        stats.append(_weight_stats(models, x, g, anc, scheme))
    kin_rows = _frame(kin, scheme)
    if len(kin_rows):
        kin_rows["computed_on"], kin_rows["computed_at"] = dev.type, now
    with transaction(con):
        _write(con, "kinship", kin_rows)
        _write(con, "kinship_layers", _frame(layers, scheme))
        _write(con, "weight_stats", pd.concat(stats, ignore_index=True) if stats else pd.DataFrame())
    summary.seconds = time.perf_counter() - t0
    return summary


def _add_pairs(
    columns: dict[str, list[np.ndarray]],
    names: np.ndarray,
    i: torch.Tensor,
    j: torch.Tensor,
    values: dict[str, np.ndarray],
) -> None:
    """Append pairs (names[i], names[j]) and their metric values to growing columns."""
    columns["a"].append(names[i.numpy()])
    columns["b"].append(names[j.numpy()])
    for m, v in values.items():
        columns[m].append(v)


def _frame(columns: dict[str, list[np.ndarray]], scheme: str) -> pd.DataFrame:
    """One frame of rows from growing columns (one frame, not one per reference: pandas is slow to build)."""
    frame = pd.DataFrame({c: np.concatenate(parts) for c, parts in columns.items()})
    if len(frame):
        frame["scheme"] = scheme
    return frame


def _weight_stats(
    models: list[str], x: torch.Tensor, g: torch.Tensor, anc: dict[str, dict[str, int]], scheme: str
) -> pd.DataFrame:
    """Each model's kurtosis and its distance to its nearest sampled ancestor (from the Gram matrix)."""
    index = {m: i for i, m in enumerate(models)}
    refs, norms = [], []
    for m in models:
        parents = sorted((d, p) for p, d in anc.get(m, {}).items() if p in index)
        ref = parents[0][1] if parents else None
        refs.append(ref)
        if ref is None:
            norms.append(None)
        else:
            i, r = index[m], index[ref]
            norms.append(float((g[i, i] + g[r, r] - 2 * g[i, r]).clamp_min(0).sqrt()))
    kurt = excess_kurtosis_rows(x).numpy()  # (n,)
    return pd.DataFrame({"model_id": models, "scheme": scheme, "reference": refs, "kurtosis": kurt,
                         "delta_norm": pd.array(norms, dtype="Float64")})  # fmt: skip


def _no_samples(con: duckdb.DuckDBPyConnection, scheme: str, family: str | None) -> str:
    where = f" in the family of {family}" if family else ""
    have = [r[0] for r in con.execute(
        "SELECT DISTINCT scheme FROM weight_samples WHERE status = 'ok' ORDER BY 1").fetchall()]  # fmt: skip
    hint = f"; schemes sampled so far: {', '.join(have)}" if have else ""
    return f"no models sampled with scheme {scheme!r}{where} (run `hubatlas sample --all --scheme {scheme}`){hint}"


def _write(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    if not len(frame):
        return
    con.register("_rows", frame)
    try:
        con.execute(f"INSERT OR REPLACE INTO {table} BY NAME SELECT * FROM _rows")
    finally:
        con.unregister("_rows")
