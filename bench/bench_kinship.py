"""Kinship benchmarks (the weights issue's Acceptance): fidelity, bytes read, speed, all-pairs scale.
Writes bench/results/kinship.json.

    python bench/bench_kinship.py                  # everything: ~25 min on 2 shared cores (+12 min for the large zoo)
    python bench/bench_kinship.py --only fidelity  # or: fidelity_large, bytes, allpairs

(a) fidelity and speed on the bench zoo (`build_zoo(size="bench", seed=0)`, built when missing): sampled
    kinship (schemes `default`, segments, and `rows`, whole rows) against the full-weight way — for
    every comparable pair, the pair's two checkpoints and its θ₀ read whole, deltas over every
    coordinate, Pearson and cosine in float64 (the way ModelKinship does it, but in float64). Both are timed
    in this process, one after the other, each from a cold page cache (the zoo's files evicted) and its
    reads again from a warm one (the sampled schemes three times: the median run is reported);
(a') the same on the large zoo (`build_zoo(size="large", seed=0)`: 48 models of ~10.5M values, built in
    10–15 min when missing), where a sample is a small part of each checkpoint;
(b) bytes and speed on a >= 1 GB Llama-shaped bf16 family (random base, children = base + deltas; written
    to --work and deleted afterwards; two children with dense deltas sharing a direction, two with rank-8
    deltas sharing one, one unrelated): the `default` and `rows` schemes sampled from local files and
    over HTTP range requests from the replay Hub (tests/hub/server.py) on loopback, against full-weight
    kinship reading every byte, both from a cold page cache;
(c) all-pairs kinship of 1,000 models x 2^18 coordinates on CPU: time and peak memory, in a child process.

(a) and (b) run on one thread each side (the ratio is one of work, not of parallelism, on a shared
machine); (c) uses every core. The load average is recorded with each part: the machine is shared.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy and torch load their thread pools

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.kinship import KinshipConfig, all_pairs, pair_metrics  # noqa: E402
from analysis.kinship_run import (  # noqa: E402
    ancestor_depths,
    build_groups,
    compute_kinship,
    load_vectors,
    pairs_by_reference,
    weighted_matrix,
)
from analysis.samples import SampleJob, sample_jobs  # noqa: E402
from analysis.schemes import SCHEMES  # noqa: E402
from atlas.config import samples_dir  # noqa: E402
from atlas.db import connect, query_dicts, upsert  # noqa: E402
from atlas.records import EdgeRecord, ModelRecord  # noqa: E402
from atlas.store import refresh_lineage  # noqa: E402
from tests.hub.server import ReplayHub  # noqa: E402

RESULTS = REPO / "bench" / "results" / "kinship.json"


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _atlas(db: Path, models: list[tuple[str, Path]], edges: list[EdgeRecord], source: str):
    db.unlink(missing_ok=True)
    shutil.rmtree(samples_dir(db), ignore_errors=True)
    con = connect(db)
    upsert(con, "models", [ModelRecord(id=m, source=source, location=str(p)) for m, p in models])
    upsert(con, "edges", edges)
    refresh_lineage(con)  # the same connection computes kinship: its references come from `lineage`
    return con


def _sampled(
    con, jobs: list[SampleJob], scheme: str, db: Path, files: list[Path] | None = None, warm_runs: int = 1
) -> dict:
    """Sample every job, then compute kinship from the samples: timings and read figures. With `files`,
    first from a cold page cache (those files evicted first), then `warm_runs` times warm (`*_warm`
    figures: the run of median total time; a run of a second or two is at the mercy of a shared machine).
    Kinship reads only the samples just written, cached either way: one warm run reuses its time."""
    if files is not None:
        _evict(files)
    s = sample_jobs(con, jobs, SCHEMES[scheme], samples_dir(db), workers=1)
    k = compute_kinship(con, scheme=scheme, device="cpu")
    runs = []
    for _ in range(warm_runs if files is not None else 0):
        w = sample_jobs(con, jobs, SCHEMES[scheme], samples_dir(db), workers=1)
        again = compute_kinship(con, scheme=scheme, device="cpu") if warm_runs > 1 else k
        runs.append((w.seconds + again.seconds, w.seconds))
    out = {
        "sample_seconds": round(s.seconds, 3),
        "kinship_seconds": round(k.seconds, 3),
        "seconds": round(s.seconds + k.seconds, 3),
        "models_ok": s.counts["ok"],
        "errors": s.counts["error"] + s.counts["unsupported"],
        "pairs": k.pairs,
        "groups": k.groups,
        "bytes_read": s.bytes_read,
        "total_bytes": s.total_bytes,
        "fraction_of_bytes_read": round(s.bytes_read / s.total_bytes, 6),
        "requests_per_model": round(s.requests / max(s.counts["ok"], 1), 2),
    }
    if files is not None:
        total, sample = sorted(runs)[len(runs) // 2]
        out["sample_seconds_warm"] = round(sample, 3)
        out["seconds_warm"] = round(total, 3)
        out["seconds_warm_runs"] = [round(t, 3) for t, _ in runs]
        out["pearson_cosine_only_seconds"] = round(_pearson_cosine_only(con, scheme), 3)
    return out


def _pearson_cosine_only(con, scheme: str) -> float:
    """Seconds to load a scheme's samples and compute only what the full-weight way computes (Pearson and
    cosine of every comparable pair, nothing written): the like-for-like compute time."""
    t0 = time.perf_counter()
    vectors = load_vectors(con, scheme, None, [])
    anc = ancestor_depths(con)
    for models, keys in build_groups(vectors):
        x = weighted_matrix(models, keys, vectors)
        pair_metrics(x, pairs_by_reference(models, anc), device="cpu", metrics=("pearson", "cosine"))
    return time.perf_counter() - t0


# ---------------------------------------------------------------------- (a) the bench zoo


def _flat(state: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """Every coordinate of a checkpoint in float64: its matrices, and its 1-D tensors (norm weights)."""
    names = sorted(state)
    mats = np.concatenate([state[n].double().numpy().ravel() for n in names if state[n].dim() > 1])
    vecs = [state[n].double().numpy().ravel() for n in names if state[n].dim() <= 1]
    return mats, (np.concatenate(vecs) if vecs else np.zeros(0))


def _moments(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([a.size, a.sum(), b.sum(), a @ a, b @ b, a @ b])


def _pearson_cosine(m: np.ndarray) -> tuple[float, float]:
    n, sa, sb, aa, bb, ab = m
    cov, va, vb = ab - sa * sb / n, aa - sa * sa / n, bb - sb * sb / n
    return float(cov / np.sqrt(va * vb)), float(ab / np.sqrt(aa * bb))


def full_weight_kinship(
    zoo: Path, lineage: list[dict], pairs: list[tuple[str, str, str | None]], files: list[Path]
) -> dict:
    """The full-weight way: read every checkpoint whole, then for each pair its deltas from θ₀ over every
    coordinate, Pearson and cosine in float64. Over the matrices (the coordinates kinship is defined on:
    every scheme leaves out 1-D tensors) and, ModelKinship's literal choice, over all tensors."""
    from analysis.zoo import load_state

    def read_all() -> dict[str, tuple[np.ndarray, np.ndarray]]:
        # adapters merged into their base
        return {m["id"]: _flat(load_state(zoo / m["path"])) for m in lineage}

    _evict(files)
    t0 = time.perf_counter()
    flat = read_all()
    read = time.perf_counter() - t0
    out = {}
    for a, b, ref in pairs:
        (ma, va), (mb, vb) = flat[a], flat[b]
        if ref is not None:
            (mr, vr) = flat[ref]
            ma, va, mb, vb = ma - mr, va - vr, mb - mr, vb - vr
        mat = _moments(ma, mb)
        out[(a, b)] = (*_pearson_cosine(mat), *_pearson_cosine(mat + _moments(va, vb)))
    seconds = time.perf_counter() - t0
    del flat
    t1 = time.perf_counter()
    read_all()  # again, from a warm page cache: the products above do not touch the files
    warm_read = time.perf_counter() - t1
    return {"values": out, "read_seconds": read, "seconds": seconds, "read_seconds_warm": warm_read,
            "seconds_warm": seconds - read + warm_read}  # fmt: skip


def _agreement(sampled: np.ndarray, full: np.ndarray) -> dict:
    """sampled/full: (pairs, 2) Pearson and cosine; pairs where either is undefined (NaN) are counted apart."""
    ok = np.isfinite(sampled).all(1) & np.isfinite(full).all(1)
    undefined = int((~ok).sum())
    sampled, full = sampled[ok], full[ok]
    if len(sampled) < 2:
        return {"pairs": len(sampled)}
    return {
        "pairs": len(sampled),
        "undefined": undefined,
        "spearman_pearson": round(float(spearmanr(sampled[:, 0], full[:, 0]).statistic), 5),
        "max_abs_delta_pearson": round(float(np.max(np.abs(sampled[:, 0] - full[:, 0]))), 5),
        "max_abs_delta_cosine": round(float(np.max(np.abs(sampled[:, 1] - full[:, 1]))), 5),
    }


def fidelity(zoo: Path, work: Path, size: str = "bench") -> dict:
    if not (zoo / "lineage.json").exists():
        from analysis.zoo import build_zoo

        build_zoo(zoo, seed=0, size=size)
    lineage = json.loads((zoo / "lineage.json").read_text())["models"]
    kind = {m["id"]: m["kind"] for m in lineage}
    edges = [
        EdgeRecord(m["id"], p, m["relation"] or "unknown", "card") for m in lineage for p in m["parents"]
    ]
    db = work / f"fidelity-{size}.duckdb"
    con = _atlas(db, [(m["id"], zoo / m["path"]) for m in lineage], edges, "zoo")
    jobs = [SampleJob(m["id"], str(zoo / m["path"]), None) for m in lineage]
    files = sorted(zoo.rglob("*.safetensors"))
    out: dict = {"zoo": f"build_zoo(seed=0, size={size!r})", "models": len(lineage), "load_before": _load()}
    # one run, one after the other: sampled (each scheme), full-weight per pair, full-weight batched; each
    # from a cold page cache (the zoo's files evicted), then its reads again from a warm one
    sampled = {name: _sampled(con, jobs, name, db, files, WARM_RUNS) for name in FIDELITY_SCHEMES}
    rows_of = {name: _kinship_rows(con, name) for name in FIDELITY_SCHEMES}
    rows = rows_of["default"]
    full = full_weight_kinship(zoo, lineage, [(r["a"], r["b"], r["reference"]) for r in rows], files)
    out["full_weight_pairwise"] = {k: round(full[k], 3) for k in
                                   ("seconds", "read_seconds", "seconds_warm", "read_seconds_warm")}  # fmt: skip
    out["full_weight_batched"] = _sampled(con, jobs, "full", db, files)
    out["load_after"] = _load()
    batched = {(r["a"], r["b"]): r for r in _kinship_rows(con, "full")}
    con.close()
    out["pairs"] = len(rows)
    values = full["values"]
    f = np.array([values[(r["a"], r["b"])][:2] for r in rows])  # (pairs, 2)
    out["same_pairs_as_full_scheme"] = set(batched) == {(r["a"], r["b"]) for r in rows}
    b = np.array([[batched[(r["a"], r["b"])]["pearson"], batched[(r["a"], r["b"])]["cosine"]] for r in rows])
    out["check_full_scheme_vs_pairwise_max_abs_diff"] = float(np.max(np.abs(b - f)))
    out["schemes"] = {}
    t_p, t_b = out["full_weight_pairwise"], out["full_weight_batched"]
    for name in FIDELITY_SCHEMES:
        assert [(r["a"], r["b"], r["reference"]) for r in rows_of[name]] == [
            (r["a"], r["b"], r["reference"]) for r in rows
        ]
        one = {"sampled": sampled[name], **_scheme_fidelity(rows_of[name], values, kind)}
        one["speedup_vs_full_weight_pairwise"] = round(t_p["seconds"] / sampled[name]["seconds"], 2)
        one["speedup_vs_full_weight_batched"] = round(t_b["seconds"] / sampled[name]["seconds"], 2)
        one["speedup_vs_full_weight_pairwise_warm"] = round(
            t_p["seconds_warm"] / sampled[name]["seconds_warm"], 2
        )
        one["speedup_vs_full_weight_batched_warm"] = round(
            t_b["seconds_warm"] / sampled[name]["seconds_warm"], 2
        )
        # like for like: the same two metrics on both sides
        only = sampled[name]["pearson_cosine_only_seconds"]
        one["speedup_pearson_cosine_only_vs_full_weight_pairwise_cold"] = round(
            t_p["seconds"] / (sampled[name]["sample_seconds"] + only), 2
        )
        one["speedup_pearson_cosine_only_vs_full_weight_pairwise_warm"] = round(
            t_p["seconds_warm"] / (sampled[name]["sample_seconds_warm"] + only), 2
        )
        one["speedup_kinship_only_vs_batched"] = round(
            t_b["kinship_seconds"] / sampled[name]["kinship_seconds"], 2
        )
        out["schemes"][name] = one
    return out


FIDELITY_SCHEMES = ("default", "rows")
WARM_RUNS = 3  # warm repetitions of each sampled scheme (the full-weight ways, a minute and more, run once)


def _kinship_rows(con, scheme: str) -> list[dict]:
    sql = "SELECT a, b, reference, pearson, cosine FROM kinship WHERE scheme = ? ORDER BY a, b"
    return query_dicts(con, sql, [scheme])


def _scheme_fidelity(rows: list[dict], values: dict, kind: dict[str, str]) -> dict:
    """Agreement of one scheme's sampled kinship with the full-weight values, overall and by pair kind."""
    s = np.array([[r["pearson"], r["cosine"]] for r in rows], dtype=float)  # (pairs, 2)
    f = np.array([values[(r["a"], r["b"])][:2] for r in rows])  # (pairs, 2)
    f_all = np.array([values[(r["a"], r["b"])][2:] for r in rows])
    with_ref = np.array([r["reference"] is not None for r in rows])
    out: dict = {"fidelity": _agreement(s, f)}
    one_family = _same_family(rows)
    out["fidelity_by_pair"] = {
        "within_one_family": _agreement(s[one_family], f[one_family]),
        "with_common_ancestor": _agreement(s[with_ref], f[with_ref]),
        "raw_weights": _agreement(s[~with_ref], f[~with_ref]),
        "raw_weights_one_family": _agreement(*(a[~with_ref & one_family] for a in (s, f))),
        "raw_weights_two_families": _agreement(*(a[~with_ref & ~one_family] for a in (s, f))),
    }
    two = ~with_ref & ~one_family
    if two.sum() > 1:  # why their ranks are noise: their full-weight values spread less than any sample errs
        out["raw_weights_two_families_spread"] = {
            "full_weight_pearson_std": round(float(f[two, 0].std()), 5),
            "sampled_minus_full_std": round(float((s[two, 0] - f[two, 0]).std()), 5),
        }
    out["fidelity_vs_all_tensors"] = _agreement(s, f_all)
    out["abs_delta_cosine_by_pair_kind"] = _errors_by_kind(rows, kind, np.abs(s[:, 1] - f[:, 1]), with_ref)
    worst = np.argsort(-np.abs(s[:, 1] - f[:, 1]))[:5]
    out["worst_cosine_pairs"] = [
        {"a": rows[k]["a"], "b": rows[k]["b"], "kinds": [kind[rows[k]["a"]], kind[rows[k]["b"]]],
         "reference": rows[k]["reference"], "sampled": round(s[k, 1], 4), "full": round(f[k, 1], 4)}
        for k in worst
    ]  # fmt: skip
    return out


def _errors_by_kind(rows: list[dict], kind: dict[str, str], err: np.ndarray, with_ref: np.ndarray) -> dict:
    """|Δ cosine| quantiles and the share within 0.02, for pairs with a common ancestor (all, and by the two
    models' kinds) and for raw-weight pairs: where the sampling error sits."""

    def stats(e: np.ndarray) -> dict:
        q = np.quantile(e, [0.5, 0.9, 0.99]) if len(e) else [np.nan] * 3
        return {"pairs": len(e), "median": round(float(q[0]), 4), "p90": round(float(q[1]), 4),
                "p99": round(float(q[2]), 4), "max": round(float(e.max()), 4) if len(e) else None,
                "share_within_0.02": round(float((e <= 0.02).mean()), 4) if len(e) else None}  # fmt: skip

    pair_kind = np.array(["/".join(sorted((kind[r["a"]], kind[r["b"]]))) for r in rows])
    out = {"with_common_ancestor": stats(err[with_ref]), "raw_weights": stats(err[~with_ref])}
    out["with_common_ancestor_by_kinds"] = {
        k: stats(err[with_ref & (pair_kind == k)]) for k in sorted(set(pair_kind[with_ref]))
    }
    return out


def _same_family(rows: list[dict]) -> np.ndarray:
    return np.array([r["a"].split("/")[0] == r["b"].split("/")[0] for r in rows])


# ---------------------------------------------------------------------- (b) a >= 1 GB bf16 family

LLAMA = {"hidden": 2048, "inter": 5632, "layers": 8, "vocab": 32000}
# child of big/base -> (the shared direction its delta carries or None, the delta's structure): children 1
# and 2 share a dense direction, so their deltas from the base have Pearson 0.5, and 0 with child-3's;
# 4 and 5 share a rank-8 update (a LoRA-like, row-structured delta: B·A per matrix), Pearson 0.5 again
CHILDREN = {
    "big/child-1": ("task", "dense"),
    "big/child-2": ("task", "dense"),
    "big/child-3": (None, "dense"),
    "big/child-4": ("lora-task", "rank-8"),
    "big/child-5": ("lora-task", "rank-8"),
}
LOW_RANK = 8
SHARED_SEEDS = {"task": 99_000, "lora-task": 199_000}


def _llama_shapes() -> dict[str, tuple[int, ...]]:
    h, i, v = LLAMA["hidden"], LLAMA["inter"], LLAMA["vocab"]
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (v, h),
        "lm_head.weight": (v, h),
        "model.norm.weight": (h,),
    }
    for n in range(LLAMA["layers"]):
        p = f"model.layers.{n}."
        shapes |= {p + f"self_attn.{m}.weight": (h, h) for m in ("q_proj", "k_proj", "v_proj", "o_proj")}
        shapes |= {p + "mlp.gate_proj.weight": (i, h), p + "mlp.up_proj.weight": (i, h),
                   p + "mlp.down_proj.weight": (h, i)}  # fmt: skip
        shapes |= {p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,)}
    return shapes


def _direction(shape: tuple[int, ...], structure: str, seed: int) -> torch.Tensor:
    """Unit-variance noise of a shape: dense, or a rank-8 product (every row a mix of 8 directions)."""
    g = torch.Generator().manual_seed(seed)
    if structure == "dense" or len(shape) == 1:
        return torch.randn(shape, generator=g)
    b, a = torch.randn(shape[0], LOW_RANK, generator=g), torch.randn(LOW_RANK, shape[1], generator=g)
    return (b @ a) / LOW_RANK**0.5


def make_big_family(root: Path) -> list[str]:
    """A random bf16 base (~1.08 GB) and five children: base + 0.002·(shared + own)/√2 or base + 0.002·own,
    with dense or rank-8 deltas (CHILDREN)."""
    from safetensors.torch import save_file

    ids = ["big/base", *CHILDREN]
    shapes = _llama_shapes()
    for k, m in enumerate(ids):
        tensors = {}
        for t, (name, shape) in enumerate(shapes.items()):
            base = torch.randn(shape, generator=torch.Generator().manual_seed(1000 + t)) * 0.02
            if k > 0:
                shared, structure = CHILDREN[m]
                own = _direction(shape, structure, 10_000 * k + t)
                if shared is not None:
                    own = (own + _direction(shape, structure, SHARED_SEEDS[shared] + t)) / 2**0.5
                base += 0.002 * own
            tensors[name] = base.bfloat16()
        folder = root / m
        folder.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(folder / "model.safetensors"))
        (folder / "config.json").write_text(
            json.dumps({"architectures": ["LlamaForCausalLM"], "torch_dtype": "bfloat16"})
        )
        del tensors
    return ids


def _evict(files: list[Path]) -> None:
    """Drop these files from the page cache (only these: the machine is shared), so a read is cold."""
    os.sync()
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _full_weight_big(files: list[Path], ref_of: dict[tuple[int, int], int | None]) -> tuple[dict, float]:
    """Pearson of deltas over every coordinate of every tensor, float64, reading each checkpoint once
    tensor by tensor: the raw Gram matrix of all models gives every pair's deltas from its θ₀."""
    from safetensors import safe_open

    t0 = time.perf_counter()
    n = len(files)
    handles = [safe_open(str(f), framework="pt") for f in files]
    gram, sums, count = np.zeros((n, n)), np.zeros(n), 0
    for name in handles[0].keys():  # noqa: SIM118
        x = torch.stack([h.get_tensor(name).flatten().double() for h in handles])  # (n, numel)
        gram += (x @ x.T).numpy()
        sums += x.sum(1).numpy()
        count += x.shape[1]
    out = {}
    for (i, j), r in ref_of.items():
        g, s = gram.copy(), sums.copy()
        if r is not None:  # δ = θ − θr
            g = gram - gram[:, [r]] - gram[[r], :] + gram[r, r]
            s = sums - sums[r]
        cov = g[i, j] - s[i] * s[j] / count
        out[(i, j)] = float(cov / np.sqrt((g[i, i] - s[i] ** 2 / count) * (g[j, j] - s[j] ** 2 / count)))
    return out, time.perf_counter() - t0


def bytes_and_speed(work: Path, keep: bool) -> dict:
    big = work / "big"
    t0 = time.perf_counter()
    ids = make_big_family(big)
    files = [big / m / "model.safetensors" for m in ids]
    out: dict = {
        "shape": LLAMA,
        "dtype": "BF16",
        "models": len(ids),
        "generate_seconds": round(time.perf_counter() - t0, 1),
    }
    out["checkpoint_bytes"] = files[0].stat().st_size
    out["load_before"] = _load()
    edges = [EdgeRecord(c, "big/base", "finetune", "card") for c in CHILDREN]
    db = work / "big.duckdb"
    con = _atlas(db, [(m, big / m) for m in ids], edges, "local")
    index = {m: k for k, m in enumerate(ids)}
    out["schemes"] = {}
    for scheme in FIDELITY_SCHEMES:
        one: dict = {}
        _evict(files)
        one["local"] = _sampled(con, [SampleJob(m, str(big / m), None) for m in ids], scheme, db)
        with ReplayHub(repo_dirs=[big]) as hub:
            for m in ids:  # the ETags (sha256 of each checkpoint) the Hub has precomputed
                hub.catalog.get(m).etag("model.safetensors")
            hub.reset_counts()
            _evict(files)
            jobs = [SampleJob(m, hub.url, ("config.json", "model.safetensors")) for m in ids]
            remote = _sampled(con, jobs, scheme, db)
            # `resolve` answers each weights file with a redirect; its ranges are read from `cdn`
            remote["server_resolve_requests_per_model"] = round(hub.counts["resolve"] / len(ids), 2)
            remote["server_requests_per_model"] = round(
                (hub.counts["resolve"] + hub.counts["cdn"]) / len(ids), 2
            )
            remote["server_bytes_sent"] = sum(e.body_bytes for e in hub.log if e.status in (200, 206))
        one["http_range"] = remote
        for side in (one["local"], remote):
            side["fraction_of_checkpoint_file_read"] = round(
                side["bytes_read"] / (out["checkpoint_bytes"] * len(ids)), 6
            )
        one["rows"] = _kinship_rows(con, scheme)
        out["schemes"][scheme] = one
    con.close()
    rows = out["schemes"]["default"]["rows"]
    ref_of = {(index[r["a"]], index[r["b"]]): index.get(r["reference"]) for r in rows}
    _evict(files)
    full, full_seconds = _full_weight_big(files, ref_of)
    out["load_after"] = _load()
    out["full_weight_seconds"] = round(full_seconds, 2)
    for one in out["schemes"].values():
        one["speedup_sampled_vs_full_weight"] = round(full_seconds / one["local"]["seconds"], 1)
        pearson = {
            f"{r['a']}|{r['b']}": {"reference": r["reference"], "sampled": round(r["pearson"], 5),
                                   "full": round(full[(index[r["a"]], index[r["b"]])], 5)}
            for r in one.pop("rows")  # ordered by (a, b)
        }  # fmt: skip
        one["pearson_sampled_vs_full"] = pearson
        one["max_abs_delta_pearson"] = round(max(abs(v["sampled"] - v["full"]) for v in pearson.values()), 5)
    if not keep:
        shutil.rmtree(big)
    return out


# ---------------------------------------------------------------------- (c) 1,000 models x 2^18 coordinates


def _status_bytes(field: str) -> int:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def allpairs_child(n: int, d: int, block: int) -> dict:
    torch.set_num_threads(os.cpu_count() or 1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)  # (n, d) float32: 1 GiB at 1000 x 2^18
    ref = torch.randn(d, generator=g)
    before = _status_bytes("VmRSS")
    # the peak (VmHWM) is this process's own: a child's getrusage maxrss starts from its parent's
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    t0 = time.perf_counter()
    res = all_pairs(x, ref, device="cpu", config=KinshipConfig(block=block))
    seconds = time.perf_counter() - t0
    assert res["pearson"].shape == (n, n) and not res["pearson"].isnan().any()
    peak = _status_bytes("VmHWM")
    return {"models": n, "coordinates": d, "block": block, "metrics": sorted(res), "seconds": round(seconds, 2),
            "peak_rss_bytes": peak, "rss_before_bytes": before, "input_bytes": x.numel() * 4,
            "threads": torch.get_num_threads()}  # fmt: skip


def allpairs(n: int = 1000, d: int = 1 << 18, block: int = 256) -> dict:
    threads = str(os.cpu_count() or 1)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
    }
    load = _load()
    cmd = [sys.executable, __file__, "--allpairs-child", f"{n},{d},{block}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "load_before": load, "load_after": _load()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=("fidelity", "fidelity_large", "bytes", "allpairs"))
    ap.add_argument("--zoo", type=Path, default=Path("/tmp/hubatlas-bench-zoo"))
    ap.add_argument("--large-zoo", type=Path, default=Path("/tmp/hubatlas-large-zoo"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/hubatlas-bench-kinship"))
    ap.add_argument("--keep", action="store_true", help="keep the >= 1 GB family in --work")
    ap.add_argument("--allpairs-child")
    args = ap.parse_args()
    if args.allpairs_child:
        n, d, block = (int(v) for v in args.allpairs_child.split(","))
        print(json.dumps(allpairs_child(n, d, block)))
        return
    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                          "cuda": torch.cuda.is_available(), "threads_a_b": 1}  # fmt: skip
    steps = {"fidelity": lambda: fidelity(args.zoo, args.work),
             "fidelity_large": lambda: fidelity(args.large_zoo, args.work, "large"), "bytes": lambda: bytes_and_speed(args.work, args.keep),
             "allpairs": allpairs}  # fmt: skip
    for name, step in steps.items():
        if args.only in (None, name):
            t0 = time.perf_counter()
            results[name] = step()
            results[name]["bench_seconds"] = round(time.perf_counter() - t0, 1)
            print(name, json.dumps(results[name], indent=1), flush=True)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
