"""Kinship benchmarks (issue "Weights", Acceptance): fidelity, bytes read, speed. Writes bench/results/kinship.json.

    python bench/bench_kinship.py                  # everything (a few minutes on 2 cores)
    python bench/bench_kinship.py --only fidelity  # or: bytes, allpairs

(a) fidelity: on the bench zoo (built with `analysis.zoo.build_zoo(size="bench")` when missing), kinship from
    sampled weights vs from every coordinate (scheme `full`, float64 accumulation), over all comparable pairs;
(b) bytes and speed: a >= 1 GB Llama-shaped bf16 base and children (random, written to /tmp), sampled
    locally and over HTTP range requests from a loopback server; sampled vs full-weight kinship in one run;
(c) all-pairs kinship of 1,000 models x 2^18 coordinates on CPU: time and peak memory (in a child process).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.kinship import KinshipConfig, all_pairs  # noqa: E402
from analysis.kinship_run import compute_kinship  # noqa: E402
from analysis.samples import (  # noqa: E402
    SampleJob,
    iter_samples,
    record_sample,
)
from analysis.schemes import SCHEMES, Scheme  # noqa: E402
from atlas.config import samples_dir  # noqa: E402
from atlas.db import connect, query_dicts, upsert  # noqa: E402
from atlas.records import EdgeRecord, ModelRecord  # noqa: E402

RESULTS = REPO / "bench" / "results" / "kinship.json"
# A leaner scheme than `default` for the zoo's tiny (64-wide) models, where `default`'s minimum of 2,048
# values per matrix reads half of every matrix: does a ~6% sample keep the ranking?
LEAN = Scheme("lean", seed=20240917, fraction=0.05, min_values=256, max_rows=64, vectors="skip")


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def _sample_all(con, jobs: list[SampleJob], scheme: Scheme, db: Path) -> dict:
    t0 = time.perf_counter()
    rows = [record_sample(con, r, samples_dir(db)) for r in iter_samples(jobs, scheme, workers=2)]
    ok = [r for r in rows if r.status == "ok"]
    return {
        "seconds": round(time.perf_counter() - t0, 3),
        "models_ok": len(ok),
        "bytes_read": sum(r.bytes_read for r in ok),
        "total_bytes": sum(r.total_bytes or 0 for r in ok),
        "values_per_model": round(float(np.mean([r.n_values for r in ok])), 1),
        "requests_per_model": round(float(np.mean([r.requests for r in ok])), 2),
    }


def fidelity(zoo: Path, work: Path) -> dict:
    if not (zoo / "lineage.json").exists():
        from analysis.zoo import build_zoo

        build_zoo(zoo, seed=0, size="bench")
    lineage = json.loads((zoo / "lineage.json").read_text())["models"]
    db = work / "fidelity.duckdb"
    db.unlink(missing_ok=True)
    con = connect(db)
    upsert(
        con, "models", [ModelRecord(id=m["id"], source="zoo", location=str(zoo / m["path"])) for m in lineage]
    )
    edges = [
        EdgeRecord(m["id"], p, m["relation"] or "unknown", "card") for m in lineage for p in m["parents"]
    ]
    upsert(con, "edges", edges)
    jobs = [SampleJob(m["id"], str(zoo / m["path"]), None) for m in lineage]
    import analysis.schemes as schemes

    schemes.SCHEMES.setdefault("lean", LEAN)
    out: dict = {"models": len(lineage)}
    timings = {}
    for scheme in ("full", "default", "lean"):
        s = _sample_all(con, jobs, SCHEMES[scheme], db)
        t0 = time.perf_counter()
        summary = compute_kinship(con, scheme=scheme, device="cpu")
        s["kinship_seconds"] = round(time.perf_counter() - t0, 3)
        s["pairs"], s["groups"] = summary.pairs, summary.groups
        timings[scheme] = s
    full = {(r["a"], r["b"]): r for r in query_dicts(con, "SELECT * FROM kinship WHERE scheme = 'full'")}
    for scheme in ("default", "lean"):
        rows = query_dicts(con, "SELECT * FROM kinship WHERE scheme = ?", [scheme])
        pairs = [(r, full[(r["a"], r["b"])]) for r in rows if (r["a"], r["b"]) in full]
        ok = [(r, f) for r, f in pairs if r["pearson"] is not None and f["pearson"] is not None]
        sp = np.array([r["pearson"] for r, _ in ok])
        fp = np.array([f["pearson"] for _, f in ok])
        dc = [
            abs(r["cosine"] - f["cosine"])
            for r, f in ok
            if r["cosine"] is not None and f["cosine"] is not None
        ]
        t, tf = timings[scheme], timings["full"]
        out[scheme] = {
            "pairs_compared": len(ok),
            "spearman_pearson": round(_spearman(sp, fp), 5),
            "max_abs_delta_cosine": round(max(dc), 5),
            "max_abs_delta_pearson": round(float(np.max(np.abs(sp - fp))), 5),
            "fraction_of_bytes_read": round(t["bytes_read"] / t["total_bytes"], 5),
            "sampling": t,
            "speedup_kinship_only": round(tf["kinship_seconds"] / t["kinship_seconds"], 2),
            "speedup_sample_plus_kinship": round(
                (tf["seconds"] + tf["kinship_seconds"]) / (t["seconds"] + t["kinship_seconds"]), 2
            ),
        }
    out["full"] = timings["full"]
    con.close()
    return out


# ---------------------------------------------------------------------- (b) a >= 1 GB bf16 family

LLAMA = {"hidden": 2048, "inter": 5632, "layers": 8, "vocab": 32000}


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
        shapes |= {
            p + "mlp.gate_proj.weight": (i, h),
            p + "mlp.up_proj.weight": (i, h),
            p + "mlp.down_proj.weight": (h, i),
        }
        shapes |= {p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,)}
    return shapes


def make_big_family(root: Path, children: int = 2) -> list[str]:
    """A random bf16 base (~1.1 GB) and children = base + small random deltas, as Hub-style folders."""
    from safetensors.torch import save_file

    ids = ["big/base"] + [f"big/child-{k}" for k in range(1, children + 1)]
    if all((root / m / "model.safetensors").exists() for m in ids):
        return ids
    shapes = _llama_shapes()
    g = torch.Generator().manual_seed(0)
    base = {n: (torch.randn(s, generator=g) * 0.02).bfloat16() for n, s in shapes.items()}
    for k, m in enumerate(ids):
        folder = root / m
        folder.mkdir(parents=True, exist_ok=True)
        if k == 0:
            tensors = base
        else:
            gk = torch.Generator().manual_seed(k)
            tensors = {
                n: (t.float() + torch.randn(t.shape, generator=gk) * 0.002).bfloat16()
                for n, t in base.items()
            }
        save_file(tensors, str(folder / "model.safetensors"))
        (folder / "config.json").write_text(
            json.dumps({"architectures": ["LlamaForCausalLM"], "torch_dtype": "bfloat16"})
        )
        del tensors
    return ids


def _range_server(root: Path) -> ThreadingHTTPServer:
    """Serves `/{owner}/{name}/resolve/main/{file}` with Range support, streaming from disk."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            repo, _, rest = self.path.lstrip("/").partition("/resolve/")
            path = root / repo / rest.partition("/")[2]
            if not path.is_file():
                self.send_error(404)
                return
            size = path.stat().st_size
            start, _, end = self.headers.get("Range", "bytes=0-").removeprefix("bytes=").partition("-")
            start, end = int(start), min(int(end) if end else size - 1, size - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            with path.open("rb") as f:
                f.seek(start)
                self.wfile.write(f.read(end - start + 1))

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _full_weight_kinship(folders: list[Path]) -> tuple[np.ndarray, float]:
    """Pearson of raw weights over every coordinate, float64 accumulation, tensor by tensor (the full way)."""
    from safetensors import safe_open

    t0 = time.perf_counter()
    n = len(folders)
    handles = [safe_open(str(f / "model.safetensors"), framework="pt") for f in folders]
    gram, sums, count = np.zeros((n, n)), np.zeros(n), 0
    for name in handles[0].keys():  # noqa: SIM118
        x = torch.stack([h.get_tensor(name).flatten().double() for h in handles])  # (n, numel)
        gram += (x @ x.T).numpy()
        sums += x.sum(1).numpy()
        count += x.shape[1]
    cov = gram - np.outer(sums, sums) / count
    d = np.sqrt(np.diag(cov))
    return cov / np.outer(d, d), time.perf_counter() - t0


def bytes_and_speed(work: Path) -> dict:
    big = work / "big"
    t0 = time.perf_counter()
    ids = make_big_family(big)
    made = time.perf_counter() - t0
    db = work / "big.duckdb"
    db.unlink(missing_ok=True)
    con = connect(db)
    upsert(con, "models", [ModelRecord(id=m, source="local", location=str(big / m)) for m in ids])
    out: dict = {"shape": LLAMA, "dtype": "BF16", "models": len(ids), "generate_seconds": round(made, 1)}
    checkpoint = (big / ids[0] / "model.safetensors").stat().st_size
    out["checkpoint_bytes"] = checkpoint
    t0 = time.perf_counter()
    local = _sample_all(con, [SampleJob(m, str(big / m), None) for m in ids], SCHEMES["default"], db)
    local["kinship_seconds"] = round(compute_kinship(con, scheme="default", device="cpu").seconds, 3)
    sampled_total = time.perf_counter() - t0
    server = _range_server(big)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        remote = _sample_all(
            con, [SampleJob(m, url, ("model.safetensors",)) for m in ids], SCHEMES["default"], db
        )
    finally:
        server.shutdown()
        server.server_close()
    sampled = {
        r["a"] + "|" + r["b"]: r["pearson"] for r in query_dicts(con, "SELECT a, b, pearson FROM kinship")
    }
    con.close()
    # the full-weight way reads every byte; start from a cold page cache where we can
    subprocess.run(["sh", "-c", "sync; echo 1 > /proc/sys/vm/drop_caches"], capture_output=True, check=False)
    full, full_seconds = _full_weight_kinship([big / m for m in ids])
    for side in (local, remote):
        side["fraction_of_checkpoint_read"] = round(side["bytes_read"] / side["total_bytes"], 6)
    out["local"], out["http_range"] = local, remote
    out["full_weight_seconds"] = round(full_seconds, 2)
    out["sampled_seconds"] = round(sampled_total, 3)
    out["speedup_sampled_vs_full_weight"] = round(full_seconds / sampled_total, 1)
    out["pearson_sampled_vs_full"] = {
        k: [round(v, 5), round(float(full[ids.index(k.split("|")[0]), ids.index(k.split("|")[1])]), 5)]
        for k, v in sampled.items()
    }
    return out


# ---------------------------------------------------------------------- (c) 1,000 models x 2^18 coordinates


def allpairs_child(n: int, d: int, block: int) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)  # (n, d) float32: 1 GiB at 1000 x 2^18
    ref = torch.randn(d, generator=g)
    t0 = time.perf_counter()
    res = all_pairs(x, ref, device="cpu", config=KinshipConfig(block=block))
    seconds = time.perf_counter() - t0
    assert res["pearson"].shape == (n, n)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"models": n, "coordinates": d, "block": block, "seconds": round(seconds, 2), "peak_rss_bytes": peak,
            "input_bytes": x.numel() * 4, "threads": torch.get_num_threads()}  # fmt: skip


def allpairs(n: int = 1000, d: int = 1 << 18, block: int = 256) -> dict:
    cmd = [sys.executable, __file__, "--allpairs-child", f"{n},{d},{block}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=("fidelity", "bytes", "allpairs"))
    ap.add_argument("--zoo", type=Path, default=Path("/tmp/hubatlas-bench-zoo"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/hubatlas-bench-kinship"))
    ap.add_argument("--allpairs-child")
    args = ap.parse_args()
    if args.allpairs_child:
        n, d, block = (int(v) for v in args.allpairs_child.split(","))
        print(json.dumps(allpairs_child(n, d, block)))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                          "cuda": torch.cuda.is_available(), "note": "no GPU lent for this run: CPU only"}  # fmt: skip
    steps = {"fidelity": lambda: fidelity(args.zoo, args.work), "bytes": lambda: bytes_and_speed(args.work),
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
