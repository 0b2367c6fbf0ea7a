"""Latency of the lineage views and macros on the 29k-node Hub dependency network.

Run: `python bench/bench_views.py` (needs ../shared/data or HUBATLAS_REAL_DATA); writes bench/results/views.json.
Targets: descendants() < 50 ms, families, family_depths, family_relations and trait_drift < 500 ms.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from atlas import db  # noqa: E402
from atlas.importer import import_bundles  # noqa: E402
from crawlers.snapshot import iter_snapshot_bundles  # noqa: E402

DATA = Path(os.environ.get("HUBATLAS_REAL_DATA", REPO.parent / "shared" / "data"))


def _time_ms(con, sql: str, params: list, repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        con.execute(sql, params).fetchall()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    network = DATA / "hub-dependency-network-2025"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.duckdb"
        con = db.connect(path)
        stats = import_bundles(con, iter_snapshot_bundles(network), quiet=True)
        con.close()
        con = db.connect(path, read_only=True)
        biggest = [
            r[0]
            for r in con.execute(
                "SELECT parent, count(*) FROM lineage GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5"
            ).fetchall()
        ]
        leaves = [r[0] for r in con.execute("SELECT child FROM lineage ORDER BY child LIMIT 5").fetchall()]
        big_root = con.execute("SELECT root FROM families ORDER BY size DESC LIMIT 1").fetchall()[0][0]
        result = {
            "nodes": con.execute("SELECT count(*) FROM nodes").fetchall()[0][0],
            "edges": con.execute("SELECT count(*) FROM lineage").fetchall()[0][0],
            "import_seconds": round(stats.seconds, 2),
            "biggest_family_root": big_root,
            "descendants_ms_median_over_top5_parents": statistics.median(
                _time_ms(con, "SELECT * FROM descendants(?)", [m]) for m in biggest
            ),
            "descendants_ms_biggest_family_root": _time_ms(con, "SELECT * FROM descendants(?)", [big_root]),
            "ancestors_ms_median": statistics.median(
                _time_ms(con, "SELECT * FROM ancestors(?)", [m]) for m in leaves
            ),
            "family_ms_biggest": _time_ms(con, "SELECT * FROM family(?)", [big_root], repeat=3),
            "siblings_ms": _time_ms(con, "SELECT * FROM siblings(?)", [leaves[0]]),
            "families_ms": _time_ms(con, "SELECT * FROM families", [], repeat=3),
            "family_depths_ms": _time_ms(con, "SELECT * FROM family_depths", [], repeat=3),
            "family_relations_ms": _time_ms(con, "SELECT * FROM family_relations", [], repeat=3),
            "model_traits_ms": _time_ms(con, "SELECT * FROM model_traits", [], repeat=3),
            "trait_drift_ms": _time_ms(con, "SELECT * FROM trait_drift", [], repeat=3),
            "trait_drift_license_transitions_ms": _time_ms(
                con,
                "SELECT parent_license_class, child_license_class, count(*) FROM trait_drift GROUP BY ALL",
                [],
                repeat=3,
            ),
            "targets": {
                "descendants_ms": 50,
                "families_ms": 500,
                "family_depths_ms": 500,
                "family_relations_ms": 500,
                "trait_drift_ms": 500,
            },
            "load_average": os.getloadavg()[0],
        }
        con.close()
    out = REPO / "bench" / "results" / "views.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
