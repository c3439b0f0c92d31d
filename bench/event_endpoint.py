"""Load the event endpoint on loopback and report events/s and latency percentiles.

Run by hand (not a test)::

    .venv/bin/python bench/event_endpoint.py            # all scenarios, ~1 minute
    .venv/bin/python bench/event_endpoint.py --quick    # smaller counts

It starts ``cdp_pipeline.collect.server`` in a subprocess on 127.0.0.1 with a
temporary landing folder, then sends a bounded number of requests per scenario
from a minimal keep-alive HTTP/1.1 client on asyncio (a full HTTP client costs
more CPU per request than the endpoint does, and would measure itself). Closed
loop scenarios give sustained throughput; the paced scenario sends at a fixed
rate and gives the latency a client sees at that load. At the end it checks that
every acknowledged event is in the landing files.
"""

import argparse
import asyncio
import base64
import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson

logger = logging.getLogger("bench.event_endpoint")

ROOT = Path(__file__).resolve().parent.parent
KEY = "wk-bench"
AUTH = base64.b64encode(f"{KEY}:".encode()).decode()


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    events_per_request: int
    requests: int
    concurrency: int
    rate: float | None = None  # requests per second, paced; None = as fast as answered


def _event(ix: int) -> dict:
    return {
        "type": "track",
        "messageId": f"b-{uuid.uuid4()}",
        "anonymousId": f"c-{ix % 5000}",
        "event": "Added to Wishlist",
        "properties": {"event_id": f"EV-{ix % 300}"},
        "context": {"ip": "203.0.113.7", "userAgent": "Mozilla/5.0 (bench)", "locale": "nl-BE"},
        "timestamp": "2025-11-29T20:58:01.120Z",
    }


def _request(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {AUTH}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _connection(
    port: int,
    scenario: Scenario,
    jobs: asyncio.Queue,
    bodies: list[tuple[bytes, list[str]]],
    latencies: list[float],
    acked: list[str],
    start: float,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            try:
                seq = jobs.get_nowait()
            except asyncio.QueueEmpty:
                return
            if scenario.rate:
                delay = start + seq / scenario.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            data, ids = bodies[seq]
            sent = time.perf_counter()
            writer.write(data)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - sent)
            if b" 200 " in status_line:
                acked.extend(ids)
            else:
                logger.warning("non-200 answer: %r", status_line)
    finally:
        writer.close()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process: a figure the other load on the machine leaves alone."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _run(port: int, pid: int, scenario: Scenario, acked: list[str]) -> dict:
    jobs: asyncio.Queue = asyncio.Queue()
    for seq in range(scenario.requests):
        jobs.put_nowait(seq)
    # Bodies are built before the clock starts: the generator shares the CPUs with the
    # endpoint, and building them on the fly cost it more than the endpoint's work.
    bodies = []
    for seq in range(scenario.requests):
        n = scenario.events_per_request
        events = [_event(seq * n + i) for i in range(n)]
        payload = {"batch": events} if scenario.path == "/v1/batch" else events[0]
        bodies.append(
            (_request(scenario.path, orjson.dumps(payload)), [e["messageId"] for e in events])
        )
    latencies: list[float] = []
    before = len(acked)
    cpu_before = _cpu_seconds(pid)
    start = time.perf_counter()
    await asyncio.gather(
        *(
            _connection(port, scenario, jobs, bodies, latencies, acked, start)
            for _ in range(scenario.concurrency)
        )
    )
    elapsed = time.perf_counter() - start
    cpu = _cpu_seconds(pid) - cpu_before
    latencies.sort()
    events = len(acked) - before
    return {
        "scenario": scenario.name,
        "requests": len(latencies),
        "events": events,
        "seconds": round(elapsed, 2),
        "events_per_s": round(events / elapsed),
        "requests_per_s": round(len(latencies) / elapsed),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2),
        "server_cpu_us_per_event": round(cpu / max(events, 1) * 1e6),
        "load_average": round(os.getloadavg()[0], 1),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(landing: Path, port: int, fsync: bool) -> subprocess.Popen:
    env = {
        **os.environ,
        "CDP_LANDING_DIR": str(landing),
        "CDP_WRITE_KEYS": KEY,
        "CDP_COLLECT_FSYNC": "1" if fsync else "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "cdp_pipeline.collect.server", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the endpoint did not start")


def _stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/stats", timeout=5) as response:
        return json.load(response)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the requests")
    parser.add_argument("--no-fsync", action="store_true", help="measure without fsync")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    scale = 10 if args.quick else 1
    scenarios = [
        Scenario("batch x100, 8 conns", "/v1/batch", 100, 1000 // scale, 8),
        Scenario("track, 1 conn", "/v1/track", 1, 3000 // scale, 1),
        Scenario("track, 32 conns", "/v1/track", 1, 20000 // scale, 32),
        Scenario("track paced 500/s, 16 conns", "/v1/track", 1, 10000 // scale, 16, rate=500),
        Scenario("batch x20 paced 100/s, 8 conns", "/v1/batch", 20, 2000 // scale, 8, rate=100),
    ]
    with tempfile.TemporaryDirectory(prefix="cdp-bench-") as tmp:
        landing = Path(tmp) / "landing"
        port = _free_port()
        process = _start_server(landing, port, fsync=not args.no_fsync)
        acked: list[str] = []
        results = []
        try:
            for scenario in scenarios:
                result = asyncio.run(_run(port, process.pid, scenario, acked))
                results.append(result)
                logger.info(json.dumps(result))
            stats = _stats(port)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        landed: set[str] = set()
        for path in (landing / "web_events").glob("*.jsonl"):
            landed.update(json.loads(line)["messageId"] for line in path.read_bytes().splitlines())
        missing = len(set(acked) - landed)
        writer = stats["writer"]
        logger.info(
            "fsync=%s: %d events acknowledged, %d missing from the landing files; "
            "%d commits (%.1f lines per fsync), %.1f s in fsync",
            not args.no_fsync,
            len(acked),
            missing,
            writer["commits"],
            writer["lines"] / max(writer["commits"], 1),
            writer["fsync_seconds"],
        )
        header = (
            "| scenario | events/s | requests/s | p50 ms | p99 ms | max ms "
            "| server CPU us/event | load avg |"
        )
        logger.info("\n%s\n|---|---|---|---|---|---|---|---|", header)
        for r in results:
            logger.info(
                "| %s | %d | %d | %.2f | %.2f | %.2f | %d | %.1f |",
                r["scenario"],
                r["events_per_s"],
                r["requests_per_s"],
                r["p50_ms"],
                r["p99_ms"],
                r["max_ms"],
                r["server_cpu_us_per_event"],
                r["load_average"],
            )
        if missing:
            raise SystemExit(f"{missing} acknowledged events are missing")


if __name__ == "__main__":
    main()
