"""Benchmark lineage inference; writes bench/results/infer.json.

- metadata: precision/recall on hub-trees-2025 with declarations hidden, the 2022 scrape end to end,
  agreement with card-lineage-2025 where its models overlap ours;
- zoo: parent accuracy from weights on the bench zoo (`hubatlas zoo --size bench`, then scan, sample,
  kinship; built once per seed and cached) with 90% of declarations hidden, against MoTHer alone and
  "nearest earlier model" in the same run, broken down by how each hidden child was really made;
- weights: the same on synthetic families (sampled vectors, L2 kinship, kurtosis, no coordinates);
- scale: weight inference on 10,000 synthetic models.

Run: `python bench/bench_infer.py [--zoo-seeds 0 1 2] [--parts zoo weights scale metadata]`
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.infer import declared_parents, evaluate, hidden_children  # noqa: E402
from analysis.infer_eval import calibrated_confidence, compare_card_lineage, evaluate_dump, iter_dump  # noqa: E402
from analysis.infer_inputs import load_weight_inputs  # noqa: E402
from analysis.infer_meta import infer_metadata_edges  # noqa: E402
from analysis.infer_synth import build_family  # noqa: E402
from analysis.infer_weights import weight_edges  # noqa: E402
from atlas.db import connect, upsert  # noqa: E402
from atlas.records import EdgeRecord, ModelRecord  # noqa: E402


def bench_metadata(data: Path) -> dict:
    t = time.perf_counter()
    trees_path = data / "hub-trees-2025" / "models.jsonl.gz"
    trees_score, trees_edges = evaluate_dump(trees_path)
    trees = list(iter_dump(trees_path))
    scrape = [m.facts for m in iter_dump(data / "hub-scrape-2022" / "models.jsonl.gz")]
    scrape_edges = infer_metadata_edges(scrape)
    return {
        "hub_trees_2025_declarations_hidden": trees_score.as_dict(),
        "calibrated_confidence": calibrated_confidence(trees_score),
        "hub_scrape_2022": {
            "models": len(scrape),
            "inferred_edges": len(scrape_edges),
            "by_origin": {o: sum(e.origin == o for e in scrape_edges) for o in ("card_text", "name")},
            "parents_stored": sum(e.parent in {m.id for m in scrape} for e in scrape_edges),
        },
        "card_lineage_2025": compare_card_lineage(
            data / "card-lineage-2025",
            trees_edges + scrape_edges,
            [m.facts.id for m in trees] + [m.id for m in scrape],
            declared={m.facts.id: m.declared for m in trees},
        ),
        "seconds": round(time.perf_counter() - t, 2),
    }


def _db_of_families(path: Path, n_fam: int, size: int, seed: int) -> None:
    con = connect(path)
    for f in range(n_fam):
        fam = build_family(f"fam{f}", size, seed=seed + f)
        upsert(
            con, "models", [ModelRecord(id=n.id, created_at=n.created_at, source="zoo") for n in fam.nodes]
        )
        upsert(
            con,
            "edges",
            [EdgeRecord(c, p, fam.relations[c], "card") for c, ps in fam.parents.items() for p in ps],
        )
        con.executemany("INSERT INTO kinship (a, b, scheme, l2) VALUES (?, ?, 'default', ?)",
                        [[a, b, d] for (a, b), d in fam.distances.items()])  # fmt: skip
        con.executemany("INSERT INTO weight_stats (model_id, scheme, kurtosis) VALUES (?, 'default', ?)",
                        [[n.id, n.kurtosis] for n in fam.nodes])  # fmt: skip
    con.close()


def bench_weights(seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        _db_of_families(db, 4, 80, seed)
        con = connect(db)
        t = time.perf_counter()
        report = evaluate(con, hide=0.9, seed=seed, weights=True)
        report["seconds"] = round(time.perf_counter() - t, 2)
        report["zoo"] = (
            "synthetic: 4 families x 80 models (fans, checkpoint chains, low-precision copies, merges)"
        )
        return report


def bench_scale(n_models: int, seed: int) -> dict:
    """Weight inference on `n_models` synthetic models (families of 100, no declarations)."""
    fams = [build_family(f"s{f}", 100, dim=128, seed=seed + f) for f in range(n_models // 100)]
    nodes = [n for f in fams for n in f.nodes]
    dist = {k: v for f in fams for k, v in f.distances.items()}
    t = time.perf_counter()
    edges = weight_edges(nodes, dist)
    secs = time.perf_counter() - t
    truth = {c: set(ps) for f in fams for c, ps in f.parents.items()}
    got: dict[str, set[str]] = defaultdict(set)
    for e in edges:
        got[e.child].add(e.parent)
    n_edges = sum(len(ps) for ps in truth.values())
    return {
        "models": len(nodes),
        "pairs": len(dist),
        "seconds": round(secs, 2),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "edges_recovered": round(sum(len(got[c] & ps) for c, ps in truth.items()) / n_edges, 4),
        "children_with_a_true_parent": round(
            sum(bool(got[c] & ps) for c, ps in truth.items()) / len(truth), 4
        ),
    }


ZOO_CACHE = Path(os.environ.get("HUBATLAS_BENCH_ZOO_CACHE", Path.home() / ".cache" / "hubatlas-bench-zoo"))
ZOO_CODE = ("analysis/zoo*.py",)  # what the zoo's bytes depend on
ATLAS_CODE = ("analysis/sampler.py", "analysis/schemes.py", "analysis/samples.py", "analysis/kinship*.py",
              "crawlers/*.py", "atlas/schema.sql")  # and what its database depends on  # fmt: skip


def _code_key(seed: int, patterns: tuple[str, ...]) -> str:
    import torch

    h = hashlib.sha256(f"{seed}/bench/{torch.__version__}".encode())
    for pattern in patterns:
        for path in sorted(REPO.glob(pattern)):
            h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:16]


def bench_zoo_atlas(seed: int) -> Path:
    """The bench zoo of `seed` scanned, sampled and with kinship; rebuilt only when its code changed."""
    from typer.testing import CliRunner

    from atlas.cli import app

    root = ZOO_CACHE / str(seed)
    zoo, db = root / "zoo", root / "atlas.duckdb"
    zoo_key, atlas_key = _code_key(seed, ZOO_CODE), _code_key(seed, ZOO_CODE + ATLAS_CODE)
    root.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        out = CliRunner().invoke(app, [*args, "-q"])
        if out.exit_code:
            raise RuntimeError(f"hubatlas {' '.join(args)} failed: {out.output}")

    fresh_zoo = _read(root / "zoo.key") != zoo_key
    if fresh_zoo:
        shutil.rmtree(zoo, ignore_errors=True)
        run("zoo", str(zoo), "--seed", str(seed), "--size", "bench")
        (root / "zoo.key").write_text(zoo_key)
    if fresh_zoo or _read(root / "atlas.key") != atlas_key:
        shutil.rmtree(root / "atlas.samples", ignore_errors=True)
        for stale in (db, db.with_name(db.name + ".wal")):
            stale.unlink(missing_ok=True)
        run("scan", str(zoo), "--db", str(db))
        run("sample", "--all", "--workers", "2", "--db", str(db))
        run("kinship", "--device", "cpu", "--db", str(db))
        (root / "atlas.key").write_text(atlas_key)
    return db


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def bench_zoo(seed: int, hide_seed: int) -> dict:
    """Evaluation on the bench zoo of `seed`, plus Hub Atlas's accuracy by true kind and evidence precision."""
    db = bench_zoo_atlas(seed)
    con = connect(db, read_only=True)
    t = time.perf_counter()
    report = evaluate(con, hide=0.9, seed=hide_seed, weights=True)
    report["seconds"] = round(time.perf_counter() - t, 2)
    inputs = load_weight_inputs(con)
    declared = declared_parents(con)
    con.close()
    truth = {m["id"]: m for m in json.loads((db.parent / "zoo" / "lineage.json").read_text())["models"]}
    present = {n.id for n in inputs.nodes}
    hidden = hidden_children([c for c in declared if c in present], 0.9, hide_seed)
    known = {c: ps for c, ps in declared.items() if c not in hidden}
    t = time.perf_counter()
    edges = weight_edges(inputs.nodes, inputs.distances, known_parents=known, coords=inputs.coords)
    report["atlas_seconds"] = round(time.perf_counter() - t, 2)
    report["atlas_by_true_kind"] = _by_true_kind(hidden, declared, truth, edges)
    report["atlas_evidence_precision"] = _evidence_precision(hidden, declared, edges)
    report["zoo"] = {"seed": seed, "size": "bench", "models": len(truth), "with_kinship": len(present)}
    return report


def _by_true_kind(hidden: set[str], declared: dict, truth: dict, edges: list[EdgeRecord]) -> dict:
    got: dict[str, set[str]] = defaultdict(set)
    for e in edges:
        got[e.child].add(e.parent)
    edges_ok, edges_all, kids_ok, kids_all = Counter(), Counter(), Counter(), Counter()
    for c in hidden:
        m = truth[c]
        kind = m["kind"] + (f"-{m['method']}" if m["method"] else "")
        ps = set(declared[c])
        edges_all[kind] += len(ps)
        edges_ok[kind] += len(ps & got[c])
        kids_all[kind] += 1
        kids_ok[kind] += got[c] == ps
    return {k: {"hidden_edges": edges_all[k], "recovered": edges_ok[k], "children": kids_all[k],
                "children_exact": kids_ok[k]} for k in sorted(edges_all)}  # fmt: skip


def _evidence_precision(hidden: set[str], declared: dict, edges: list[EdgeRecord]) -> dict:
    """Precision of the inferred edges of hidden children, by the kind of evidence behind them."""
    proposed, correct = Counter(), Counter()
    for e in edges:
        if e.child in hidden:
            kind = (e.evidence or "?").split(":")[0]
            proposed[kind] += 1
            correct[kind] += e.parent in declared[e.child]
    return {k: {"edges": proposed[k], "correct": correct[k], "precision": round(correct[k] / proposed[k], 4)}
            for k in sorted(proposed)}  # fmt: skip


PARTS = ("zoo", "weights", "scale", "metadata")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--real-data", default=os.environ.get("HUBATLAS_REAL_DATA", str(REPO.parent / "shared" / "data"))
    )
    ap.add_argument("--seed", type=int, default=0, help="Seed of which declarations are hidden.")
    ap.add_argument("--zoo-seeds", type=int, nargs="+", default=[0, 1, 2], help="Bench zoos to evaluate on.")
    ap.add_argument("--scale", type=int, default=10_000)
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="What to run.")
    args = ap.parse_args()
    dest = REPO / "bench" / "results" / "infer.json"
    out: dict = json.loads(dest.read_text()) if dest.exists() else {}  # parts not run keep their results
    if "zoo" in args.parts:
        out["zoo"] = {f"bench-seed-{s}": bench_zoo(s, args.seed) for s in args.zoo_seeds}
    if "weights" in args.parts:
        out["weights"] = bench_weights(args.seed)
    if "scale" in args.parts:
        out["scale"] = bench_scale(args.scale, args.seed)
    if "metadata" in args.parts:
        out["metadata"] = bench_metadata(Path(args.real_data))
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in args.parts}, indent=2))


if __name__ == "__main__":
    main()
