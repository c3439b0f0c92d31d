"""Activation at city scale: a 1 000 000-member audience to a file and a webhook destination.

Night 1 is the first full sync; night 2 changes 1 % of the audience (0.5 % updated, 0.25 %
leaving, 0.25 % joining). The diff should cost in proportion to the change: night 2 sends
and records only the changed members, and its planning is one vectorised join.

Not a test: ``.venv/bin/python bench/activation_sync.py [--people 1000000]``. Peak memory is
the process's resident set sampled every 20 ms during each phase (DuckDB's own memory
included, which tracemalloc would miss).
"""

import argparse
import hashlib
import hmac
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb

from cdp_pipeline.activation.config import FileDestination, WebhookDestination
from cdp_pipeline.activation.sync import SyncResult, plan_report, sync_destination

logger = logging.getLogger("activation_sync")
SECRET = "bench-secret"
SEGMENT = "bench_segment"


def _rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@contextmanager
def measured(label: str, results: dict[str, dict[str, float]]) -> Iterator[None]:
    """Wall time and peak resident memory of the block."""
    peak = [_rss_bytes()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            peak[0] = max(peak[0], _rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        stop.set()
        sampler.join()
        peak[0] = max(peak[0], _rss_bytes())
        results[label] = {"seconds": elapsed, "peak_rss_mb": peak[0] / 2**20}
        logger.info(f"{label:<34} {elapsed:8.2f} s   peak RSS {peak[0] / 2**20:8.0f} MB")


class Receiver:
    """A webhook receiver that checks the signature and counts members and bytes."""

    def __init__(self) -> None:
        self.members = 0
        self.requests = 0
        self.bytes = 0
        self.bad_signatures = 0
        self.lock = threading.Lock()

    @contextmanager
    def running(self) -> Iterator[str]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                with receiver.lock:
                    receiver.requests += 1
                    receiver.bytes += len(body)
                    if not hmac.compare_digest(self.headers.get("X-CDP-Signature", ""), expected):
                        receiver.bad_signatures += 1
                    receiver.members += len(json.loads(body)["members"])
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            host, port = server.server_address[:2]
            yield f"http://{host}:{port}/hooks/cdp"
        finally:
            server.shutdown()
            server.server_close()

    def take(self) -> dict[str, int]:
        with self.lock:
            counts = {"requests": self.requests, "members": self.members, "bytes": self.bytes}
            self.requests = self.members = self.bytes = 0
        return counts


def build_warehouse(path: Path, people: int) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        con.execute(
            """
            create table marts.profiles as
            select printf('p-%08d', i) as profile_id, printf('person%d@example.be', i) as email,
                printf('+3247%07d', i % 10000000) as phone, 'First' || i as first_name,
                'Last' || i as last_name, date '1980-01-01' as birth_date,
                printf('%04d', 1000 + i % 9000) as postcode
            from range($n) as numbers(i)
            """,
            {"n": people + people // 100},
        )
        con.execute(
            "create table marts.consent_state as select profile_id,"
            " 'email_marketing' as purpose, 'granted' as status,"
            " timestamp '2025-01-01' as updated_at from marts.profiles"
        )
        con.execute(
            "create table marts.segment_members as select $segment as segment, profile_id,"
            " timestamp '2025-11-01' as entered_at, null::timestamp as exited_at"
            " from marts.profiles where profile_id < printf('p-%08d', $n)",
            {"segment": SEGMENT, "n": people},
        )


def change_one_percent(path: Path, people: int) -> None:
    """0.5 % renamed, 0.25 % leave the segment, 0.25 % (never seen before) join."""
    quarter = people // 400
    with duckdb.connect(str(path)) as con:
        con.execute(
            "update marts.profiles set first_name = first_name || 'x'"
            " where cast(substr(profile_id, 3) as integer) % 200 = 1"
            " and profile_id < printf('p-%08d', $n)",
            {"n": people},
        )
        con.execute(
            "update marts.segment_members set exited_at = timestamp '2025-12-02'"
            " where cast(substr(profile_id, 3) as integer) % 400 = 2",
        )
        con.execute(
            "insert into marts.segment_members select $segment, profile_id,"
            " timestamp '2025-12-02', null from marts.profiles"
            " where profile_id >= printf('p-%08d', $n) order by profile_id limit $q",
            {"segment": SEGMENT, "n": people, "q": quarter},
        )


def run(people: int) -> dict[str, Any]:
    results: dict[str, dict[str, float]] = {}
    counts: dict[str, Any] = {}
    receiver = Receiver()
    os.environ["BENCH_WEBHOOK_SECRET"] = SECRET
    with tempfile.TemporaryDirectory() as folder, receiver.running() as url:
        root = Path(folder)
        warehouse = root / "cdp.duckdb"
        with measured("build warehouse", results):
            build_warehouse(warehouse, people)
        file_target = FileDestination(
            name="bench_file",
            type="file",
            segment=SEGMENT,
            purpose="email_marketing",
            fields=("profile_id", "email", "first_name", "last_name"),
            format="parquet",
        )
        hook_target = WebhookDestination(
            name="bench_hook",
            type="webhook",
            segment=SEGMENT,
            purpose="email_marketing",
            fields=("profile_id", "email", "first_name", "last_name", "postcode"),
            url=url,
            secret_env="BENCH_WEBHOOK_SECRET",
            batch_size=10_000,
        )

        def sync(target: FileDestination | WebhookDestination) -> SyncResult:
            with duckdb.connect(str(warehouse), read_only=True) as con:
                return sync_destination(
                    con, target, root / "state", root / "exports", as_of=date(2025, 12, 1)
                )

        def night(label: str) -> None:
            for target in (file_target, hook_target):
                with measured(f"{label}: {target.type} sync", results):
                    result = sync(target)
                counts[f"{label}/{target.type}"] = {
                    "audience": result.audience,
                    "added": result.added,
                    "updated": result.updated,
                    "removed": result.removed,
                    "batches": result.batches,
                    **(receiver.take() if target.type == "webhook" else {}),
                }

        night("night 1 (full)")
        with measured("apply 1% change", results):
            change_one_percent(warehouse, people)
        with (
            duckdb.connect(str(warehouse), read_only=True) as con,
            measured("night 2: webhook plan only (dry run)", results),
        ):
            report = plan_report(con, hook_target, root / "state", as_of=date(2025, 12, 1))
        counts["night 2 plan"] = {
            "add": len(report.to_add),
            "update": len(report.to_update),
            "remove": len(report.to_remove),
        }
        night("night 2 (1% change)")
        with measured("night 3: unchanged", results):
            unchanged = sync(hook_target)
        counts["night 3/webhook"] = {"batches": unchanged.batches, **receiver.take()}
        counts["bad_signatures"] = receiver.bad_signatures
    return {"people": people, "timings": results, "counts": counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    arguments = parser.parse_args()
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    outcome = run(arguments.people)
    logger.info(json.dumps(outcome["counts"], indent=2))


if __name__ == "__main__":
    main()
