"""Latency of the profile API on a 1 000 000-profile snapshot, at a fixed request rate.

Run by hand (not a test):

    .venv/bin/python bench/api_latency.py --profiles 1000000 --rps 500 --seconds 30

It generates stand-in marts (cdp_pipeline.publish.synthetic), publishes a serving snapshot,
creates an API key, starts the server exactly as ``cdp api`` does (uvicorn on 127.0.0.1, in a
subprocess) and drives it with an open-loop generator: request ``i`` is due at
``start + i / rps`` whatever happened before, and its latency is counted from that due time,
so a stalled server shows up in the figures instead of slowing the generator down.
Identifiers mix every kind plus 10 % unknown ones. Loopback only.
"""

import argparse
import asyncio
import hashlib
import logging
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx

from cdp_pipeline.api.keys import SCOPES, create_key
from cdp_pipeline.publish.snapshot import current_snapshot, publish_snapshot, snapshots_dir_of
from cdp_pipeline.publish.synthetic import synthetic_marts
from cdp_pipeline.settings import get_settings

logger = logging.getLogger("bench.api_latency")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--rps", type=float, default=500.0, help="target requests per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured duration")
    parser.add_argument("--in-flight", type=int, default=64, help="most requests outstanding")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cdp-api-bench"))
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--batches", type=int, default=20, help="batch calls of 500 to time")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # httpx logs every request at INFO; the figures are what matter here.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    os.environ["CDP_WAREHOUSE"] = str(args.workdir / "warehouse" / "cdp.duckdb")
    settings = get_settings()
    _prepare(settings.warehouse, args.profiles)
    key = create_key("bench", list(SCOPES), settings.state_dir / "api" / "keys.json")
    port = args.port or _free_port()
    server = _start_server(port, args.workdir / "server.log")
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base)
        rng = random.Random(42)
        paths = [_random_path(rng, args.profiles) for _ in range(int(args.rps * args.seconds))]
        warm_up = paths[: int(args.rps * 2)]
        asyncio.run(_load(base, key, warm_up, args.rps, args.in_flight, "warm-up"))
        asyncio.run(_load(base, key, paths, args.rps, args.in_flight, "measured"))
        _time_batches(base, key, rng, args.profiles, args.batches)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _prepare(warehouse: Path, profiles: int) -> None:
    """A warehouse with ``profiles`` stand-in profiles and a current snapshot of it."""
    marker = warehouse.with_suffix(f".{profiles}.ready")
    if not marker.exists():
        warehouse.parent.mkdir(parents=True, exist_ok=True)
        for stale in (warehouse, warehouse.with_name(warehouse.name + ".wal")):
            stale.unlink(missing_ok=True)
        started = time.perf_counter()
        with duckdb.connect(str(warehouse)) as con:
            synthetic_marts(con, profiles)
        logger.info("Generated marts for %d profiles in %.1f s", profiles, _since(started))
        marker.touch()
    if current_snapshot(get_settings()) is None or not marker.with_suffix(".published").exists():
        started = time.perf_counter()
        with duckdb.connect(str(warehouse), read_only=True) as con:
            summary = publish_snapshot(con, snapshots_dir_of(warehouse))
        logger.info(
            "Published %s in %.1f s: %s rows, %.0f MB",
            summary.path.name, _since(started), summary.rows, summary.size_bytes / 1e6,
        )
        marker.with_suffix(".published").touch()


def _random_path(rng: random.Random, profiles: int) -> str:
    """A look-up path for a random profile and identifier kind (10 % unknown identifiers)."""
    i = rng.randrange(profiles)
    if rng.random() < 0.1:
        return f"/v1/profiles/anonymous_id/unknown-{rng.randrange(10**9)}"
    kind = rng.choice(("profile_id", "a_profiel_id", "anonymous_id", "device_id", "email_sha256"))
    if kind == "a_profiel_id":
        return f"/v1/profiles/a_profiel_id/A{i - i % 10}"
    if kind == "anonymous_id":
        return f"/v1/profiles/anonymous_id/v{i:012x}-0"
    if kind == "device_id":
        return f"/v1/profiles/device_id/d{i:012x}"
    if kind == "email_sha256":
        digest = hashlib.sha256(f"person{i - i % 10}@example.org".encode()).hexdigest()
        return f"/v1/profiles/email_sha256/{digest}"
    return f"/v1/profiles/profile_id/p-{i:012x}"


async def _load(
    base: str, key: str, paths: list[str], rps: float, in_flight: int, label: str
) -> None:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    gate = asyncio.Semaphore(in_flight)
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as client:

        async def one(path: str, due: float) -> None:
            nonlocal errors
            async with gate:
                try:
                    response = await client.get(path, timeout=10)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                except httpx.HTTPError:
                    errors += 1
                    return
            latencies.append(time.perf_counter() - due)

        start = time.perf_counter() + 0.1
        tasks = []
        for index, path in enumerate(paths):
            due = start + index / rps
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(path, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    latencies.sort()
    logger.info(
        "%s: %d requests in %.1f s = %.0f req/s; p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, "
        "max %.2f ms; statuses %s; transport errors %d",
        label, len(paths), elapsed, len(paths) / elapsed,
        _quantile(latencies, 0.50) * 1000, _quantile(latencies, 0.90) * 1000,
        _quantile(latencies, 0.99) * 1000, (latencies[-1] if latencies else 0) * 1000,
        statuses, errors,
    )


def _time_batches(base: str, key: str, rng: random.Random, profiles: int, count: int) -> None:
    durations = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
        for _ in range(count):
            body = {
                "identifiers": [
                    {"kind": "profile_id", "value": f"p-{rng.randrange(profiles):012x}"}
                    for _ in range(500)
                ]
            }
            started = time.perf_counter()
            response = client.post("/v1/profiles/batch", json=body, timeout=30)
            durations.append(time.perf_counter() - started)
            response.raise_for_status()
    logger.info(
        "batch of 500: median %.0f ms, max %.0f ms over %d calls",
        statistics.median(durations) * 1000, max(durations) * 1000, count,
    )


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _start_server(port: int, log_path: Path) -> subprocess.Popen:
    code = f"from cdp_pipeline.api.server import serve; serve('127.0.0.1', {port})"
    log = log_path.open("w")
    return subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=log, env=os.environ)


def _wait_ready(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).json().get("status") == "ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("The API did not become ready within 60 s")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _since(started: float) -> float:
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
