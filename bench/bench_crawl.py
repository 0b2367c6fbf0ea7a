"""Crawl benchmark: requests per model and models ingested per second, through the loopback replay Hub.

Crawls every family root of hub-trees-2025 (metadata only, then again unchanged, then with cards) into
a fresh database and writes `bench/results/crawl.json`.

Usage: python bench/bench_crawl.py [--data ../shared/data] [--page-size 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from atlas import db  # noqa: E402
from crawlers.hub import CrawlConfig, crawl  # noqa: E402
from crawlers.hub_client import HubClient  # noqa: E402
from tests.hub.repos import load_records  # noqa: E402
from tests.hub.server import ReplayHub  # noqa: E402


def roots_of(records: list[dict[str, Any]]) -> list[str]:
    """Models whose declared parents are all outside the data: the family roots."""
    ids = {r["info"]["id"] for r in records}
    out = []
    for r in records:
        parents = {t.split(":")[-1] for t in r["info"]["tags"] if t.startswith("base_model:")}
        if not parents & ids:
            out.append(r["info"]["id"])
    return out


def run(hub: ReplayHub, path: Path, config: CrawlConfig) -> dict[str, Any]:
    hub.reset_counts()
    con = db.connect(path)
    start = time.perf_counter()
    stats = crawl(con, HubClient(hub.url), config)
    seconds = time.perf_counter() - start
    con.close()
    return {
        "models": stats.models,
        "written": stats.written,
        "edges": stats.edges,
        "requests": stats.requests,
        "requests_by_kind": dict(hub.counts),
        "requests_per_model": round(stats.requests_per_model, 4),
        "seconds": round(seconds, 3),
        "models_per_second": round(stats.models / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("HUBATLAS_REAL_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--page-size", type=int, default=1000)
    args = parser.parse_args()
    records = load_records(args.data / "hub-trees-2025" / "models.jsonl.gz")
    roots = roots_of(records)
    config = CrawlConfig(roots=tuple(roots), page_size=args.page_size)
    with ReplayHub(records=records) as hub, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.duckdb"
        metadata = run(hub, path, config)
        recrawl = run(hub, path, config)
        cards = run(hub, Path(tmp) / "cards.duckdb", CrawlConfig(roots=tuple(roots), cards=True))
    result = {
        "data": "hub-trees-2025",
        "roots": len(roots),
        "page_size": args.page_size,
        "target_requests_per_model": 0.25,
        "metadata_crawl": metadata,
        "unchanged_recrawl": recrawl,
        "cards_crawl": cards,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    out = REPO / "bench" / "results" / "crawl.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
