"""Search latency of the marketer UI on a synthetic snapshot: ``python -m cdp_pipeline.ui.bench``.

Builds ``--profiles`` generated people (``cdp_pipeline.publish.synthetic``) in a temporary
warehouse, publishes a serving snapshot from it and times the UI's searches on that
snapshot, each query shape ``--repeat`` times; writes the median and worst in ms as JSON.
"""

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from cdp_pipeline.publish.snapshot import publish_snapshot
from cdp_pipeline.publish.synthetic import synthetic_marts
from cdp_pipeline.ui import search_index
from cdp_pipeline.ui.data import search_profiles

logger = logging.getLogger(__name__)


def run(profiles: int, repeat: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        warehouse = Path(folder) / "warehouse" / "cdp.duckdb"
        warehouse.parent.mkdir(parents=True)
        started = time.perf_counter()
        with duckdb.connect(str(warehouse)) as con:
            synthetic_marts(con, profiles)
            summary = publish_snapshot(con, warehouse.parent / "snapshots")
        build_seconds = time.perf_counter() - started
        middle = profiles // 2
        queries = {
            "name": f"Given{middle % 997} Family{middle % 4999}",
            "name_prefix": f"Family{middle % 4999}",
            "email": f"person{middle - middle % 10}@example.org",
            "phone": f"047{(middle - middle % 10) % 10000000:07d}",
            "profile_id": f"p-{middle:012x}",
            "a_profiel_id": f"A{middle - middle % 10}",
            "no_match": "zzzzqqq",
        }
        index = Path(folder) / "search.sqlite"
        index_seconds = search_index.build(summary.path, index)
        index_mb = round(index.stat().st_size / 1e6, 1)
        timings: dict[str, dict[str, dict[str, float]]] = {"index": {}, "scan": {}}
        with duckdb.connect(str(summary.path), read_only=True) as con:
            for shape, query in queries.items():
                timings["index"][shape] = _time(
                    lambda q=query: search_index.search(index, q, 50), repeat
                )
                timings["scan"][shape] = _time(lambda q=query: search_profiles(con, q), repeat)
    return {
        "profiles": profiles,
        "build_seconds": round(build_seconds, 1),
        "index_seconds": round(index_seconds, 1),
        "index_mb": index_mb,
        "search": timings,
    }


def _time(call: Callable[[], list[dict]], repeat: int) -> dict[str, float]:
    laps, hits = [], 0
    for _ in range(repeat):
        lap = time.perf_counter()
        hits = len(call())
        laps.append((time.perf_counter() - lap) * 1000)
    return {
        "median_ms": round(statistics.median(laps), 2),
        "max_ms": round(max(laps), 2),
        "hits": hits,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sys.stdout.write(json.dumps(run(args.profiles, args.repeat), indent=2) + "\n")


if __name__ == "__main__":
    main()
