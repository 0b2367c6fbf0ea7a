"""Benchmark lineage inference; writes bench/results/infer.json.

- metadata: precision/recall on hub-trees-2025 with declarations hidden, the 2022 scrape end to end,
  agreement with card-lineage-2025 where its models overlap ours;
- weights: parent accuracy with 90% of declarations hidden, vs MoTHer alone and nearest-earlier, on a
  database of synthetic families (sampled vectors, L2 kinship, kurtosis) through `analysis.infer.evaluate`;
- scale: inference on 10,000 synthetic models.

Run: `python bench/bench_infer.py [--real-data ../shared/data]`
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.infer import evaluate  # noqa: E402
from analysis.infer_eval import calibrated_confidence, compare_card_lineage, evaluate_dump, iter_dump  # noqa: E402
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
    fams = [build_family(f"s{f}", 100, dim=128, seed=seed + f) for f in range(n_models // 100)]
    nodes = [n for f in fams for n in f.nodes]
    dist = {k: v for f in fams for k, v in f.distances.items()}
    t = time.perf_counter()
    edges = weight_edges(nodes, dist)
    secs = time.perf_counter() - t
    truth = {c: set(ps) for f in fams for c, ps in f.parents.items()}
    got: dict[str, set[str]] = {}
    for e in edges:
        got.setdefault(e.child, set()).add(e.parent)
    acc = sum(bool(got.get(c, set()) & ps) for c, ps in truth.items()) / len(truth)
    return {"models": len(nodes), "pairs": len(dist), "seconds": round(secs, 2), "accuracy_no_declarations": round(acc, 4),
            "cpu_count": os.cpu_count()}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--real-data", default=os.environ.get("HUBATLAS_REAL_DATA", str(REPO.parent / "shared" / "data"))
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=int, default=10_000)
    ap.add_argument(
        "--zoo-db",
        action="append",
        default=[],
        help="A database after `hubatlas zoo/scan/sample/kinship`; evaluated with 90%% hidden.",
    )
    args = ap.parse_args()
    out: dict = {"zoo": {}}
    for zdb in args.zoo_db:
        con = connect(zdb)
        out["zoo"][zdb] = evaluate(con, hide=0.9, seed=args.seed, weights=True)
        con.close()
    out |= {"metadata": bench_metadata(Path(args.real_data)), "weights": bench_weights(args.seed),
           "scale": bench_scale(args.scale, args.seed)}  # fmt: skip
    dest = REPO / "bench" / "results" / "infer.json"
    dest.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
