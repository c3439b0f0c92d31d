"""Latency of the profile API on a 1 000 000-profile snapshot, at a fixed request rate.

Run by hand (not a test):

    .venv/bin/python bench/api_latency.py --profiles 1000000 --rps 500 --seconds 30

It generates stand-in marts once (cdp_pipeline.publish.synthetic), publishes a serving
snapshot (timed: DuckDB tables plus the SQLite look-up store), creates an API key and, for
each ``--workers`` count, starts the server as ``cdp api --workers N`` does (uvicorn with
uvloop and httptools, access log off, on 127.0.0.1, in a subprocess) and measures:

* an open-loop load: request ``i`` is due at ``start + i / rps`` whatever happened before,
  and its latency is counted from that due time, so a stalled server shows up in the figures
  instead of slowing the generator down. Identifiers mix every kind plus 10 % unknown ones;
* the capacity: as many requests as ``--capacity-connections`` connections can get answered
  back to back, for ``--capacity-seconds``;
* the batch endpoint with 500 random profile ids per call.

The load generator is a small HTTP/1.1 client on uvloop (keep-alive connections, requests
pre-encoded): on a 2-core machine it shares the cores with the server, so it has to be cheap.
Its own CPU time and the server's are reported beside the latencies. Loopback only.
"""

import argparse
import asyncio
import hashlib
import json
import logging
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import duckdb
import httpx
import uvloop

from cdp_pipeline.api.keys import SCOPES, create_key
from cdp_pipeline.publish.lookup_store import lookup_store_of
from cdp_pipeline.publish.snapshot import current_snapshot, publish_snapshot, snapshots_dir_of
from cdp_pipeline.publish.synthetic import synthetic_marts
from cdp_pipeline.settings import get_settings

logger = logging.getLogger("bench.api_latency")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--rps", type=float, default=500.0, help="target requests per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured duration")
    parser.add_argument(
        "--workers", default="1,2", help="comma-separated server process counts to measure"
    )
    parser.add_argument("--connections", type=int, default=64, help="open-loop connection pool")
    parser.add_argument("--capacity-seconds", type=float, default=10.0, help="0: skip")
    parser.add_argument("--capacity-connections", type=int, default=16)
    parser.add_argument("--batches", type=int, default=20, help="batch calls of 500 to time")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cdp-api-bench"))
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument(
        "--reuse-snapshot", action="store_true", help="serve the current snapshot if any"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    os.environ["CDP_WAREHOUSE"] = str(args.workdir / "warehouse" / "cdp.duckdb")
    settings = get_settings()
    _prepare(settings.warehouse, args.profiles, args.reuse_snapshot)
    key = create_key("bench", list(SCOPES), settings.state_dir / "api" / "keys.json")
    rng = random.Random(42)
    paths = [_random_path(rng, args.profiles) for _ in range(int(args.rps * args.seconds))]
    for workers in (int(count) for count in args.workers.split(",")):
        port = args.port or _free_port()
        log_path = args.workdir / f"server-{workers}w.log"
        server = _start_server(port, workers, log_path)
        try:
            _wait_ready(port)
            logger.info("--- %d worker(s), load average %s", workers, _load_average())
            runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
            with runner:
                client = _Client(port, key)
                runner.run(client.open_loop(paths[: int(args.rps * 2)], args.rps, 16, "warm-up"))
                server_cpu = _tree_cpu_seconds(server.pid)
                runner.run(client.open_loop(paths, args.rps, args.connections, "open loop"))
                logger.info(
                    "    server CPU %.2f ms per request",
                    (_tree_cpu_seconds(server.pid) - server_cpu) * 1000 / len(paths),
                )
                if args.capacity_seconds > 0:
                    runner.run(
                        client.capacity(paths, args.capacity_seconds, args.capacity_connections)
                    )
                runner.run(client.batches(rng, args.profiles, args.batches))
            logger.info("    load average after: %s", _load_average())
        finally:
            server.terminate()
            server.wait(timeout=30)


def _prepare(warehouse: Path, profiles: int, reuse_snapshot: bool) -> None:
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
    current = current_snapshot(get_settings())
    if reuse_snapshot and current is not None and lookup_store_of(current).exists():
        logger.info("Serving the existing snapshot %s", current.name)
        return
    logger.info("Publishing a snapshot, load average %s", _load_average())
    started, cpu = time.perf_counter(), time.process_time()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        summary = publish_snapshot(con, snapshots_dir_of(warehouse))
    logger.info(
        "Published %s in %.1f s (%.1f s CPU; %s): %s rows; %.0f MB DuckDB + %.0f MB SQLite;"
        " load average %s",
        summary.name,
        _since(started),
        time.process_time() - cpu,
        ", ".join(f"{step} {value:.1f} s" for step, value in summary.seconds.items()),
        summary.rows,
        summary.size_bytes / 1e6,
        summary.lookup_size_bytes / 1e6,
        _load_average(),
    )


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


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time, Content-Length bodies."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buffer[:end]).lower()
        start = head.find(b"content-length:") + len(b"content-length:")
        stop = head.find(b"\r\n", start)
        length = int(head[start : stop if stop > 0 else None])
        if len(self._buffer) < end + 4 + length:
            return
        body = bytes(self._buffer[end + 4 : end + 4 + length])
        del self._buffer[: end + 4 + length]
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result((int(head[9:12]), body))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self._waiter


class _Client:
    def __init__(self, port: int, key: str) -> None:
        self._port = port
        self._headers = f"Host: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"

    def _get(self, path: str) -> bytes:
        return f"GET {path} HTTP/1.1\r\n{self._headers}\r\n".encode()

    async def _connect(self) -> _Connection:
        _, connection = await asyncio.get_running_loop().create_connection(
            _Connection, "127.0.0.1", self._port
        )
        return connection

    async def _pool(self, size: int) -> asyncio.Queue[_Connection]:
        pool: asyncio.Queue[_Connection] = asyncio.Queue()
        for connection in await asyncio.gather(*(self._connect() for _ in range(size))):
            pool.put_nowait(connection)
        return pool

    async def open_loop(self, paths: list[str], rps: float, connections: int, label: str) -> None:
        """Send ``paths`` at ``rps``; latency from each request's due time."""
        requests = [self._get(path) for path in paths]
        pool = await self._pool(connections)
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        errors = 0

        async def one(raw: bytes, due: float) -> None:
            nonlocal errors
            connection = await pool.get()
            try:
                if connection.closed:
                    connection = await self._connect()
                status, _ = await connection.request(raw)
                statuses[status] += 1
                latencies.append(time.perf_counter() - due)
            except OSError:
                errors += 1
            finally:
                pool.put_nowait(connection)

        cpu = time.process_time()
        start = time.perf_counter() + 0.05
        tasks = []
        for index, raw in enumerate(requests):
            due = start + index / rps
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(raw, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        _close(pool)
        latencies.sort()
        logger.info(
            "    %s: %d requests in %.1f s = %.0f req/s; p50 %.2f ms, p90 %.2f ms, p99 %.2f ms,"
            " max %.2f ms; statuses %s; transport errors %d; generator CPU %.0f %%",
            label,
            len(paths),
            elapsed,
            len(latencies) / elapsed,
            _quantile(latencies, 0.50) * 1000,
            _quantile(latencies, 0.90) * 1000,
            _quantile(latencies, 0.99) * 1000,
            (latencies[-1] if latencies else 0) * 1000,
            dict(sorted(statuses.items())),
            errors,
            (time.process_time() - cpu) / elapsed * 100,
        )

    async def capacity(self, paths: list[str], seconds: float, connections: int) -> None:
        """Closed loop: each connection sends its next request as soon as it has an answer."""
        requests = [self._get(path) for path in paths]
        pool = await self._pool(connections)
        members = [pool.get_nowait() for _ in range(connections)]
        deadline = time.perf_counter() + seconds
        latencies: list[float] = []
        statuses: Counter[int] = Counter()

        async def drive(connection: _Connection, offset: int) -> None:
            index = offset
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                status, _ = await connection.request(requests[index % len(requests)])
                latencies.append(time.perf_counter() - started)
                statuses[status] += 1
                index += connections

        started = time.perf_counter()
        await asyncio.gather(*(drive(c, i) for i, c in enumerate(members)))
        elapsed = time.perf_counter() - started
        for connection in members:
            if connection.transport is not None:
                connection.transport.close()
        latencies.sort()
        logger.info(
            "    capacity (%d connections, closed loop): %.0f req/s; p50 %.2f ms, p99 %.2f ms;"
            " statuses %s",
            connections,
            len(latencies) / elapsed,
            _quantile(latencies, 0.5) * 1000,
            _quantile(latencies, 0.99) * 1000,
            dict(sorted(statuses.items())),
        )

    async def batches(self, rng: random.Random, profiles: int, count: int) -> None:
        """``count`` calls of the batch endpoint with 500 random profile ids, one at a time."""
        connection = await self._connect()
        durations = []
        found = 0
        for _ in range(count):
            body = json.dumps(
                {
                    "identifiers": [
                        {"kind": "profile_id", "value": f"p-{rng.randrange(profiles):012x}"}
                        for _ in range(500)
                    ]
                }
            ).encode()
            raw = (
                f"POST /v1/profiles/batch HTTP/1.1\r\n{self._headers}"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            started = time.perf_counter()
            status, answer = await connection.request(raw)
            durations.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"batch answered {status}: {answer[:200]!r}")
            found += sum(result["found"] for result in json.loads(answer)["results"])
        if connection.transport is not None:
            connection.transport.close()
        logger.info(
            "    batch of 500: median %.1f ms, max %.1f ms over %d calls (%d of %d found)",
            statistics.median(durations) * 1000,
            max(durations) * 1000,
            count,
            found,
            count * 500,
        )


def _close(pool: asyncio.Queue[_Connection]) -> None:
    while not pool.empty():
        connection = pool.get_nowait()
        if connection.transport is not None:
            connection.transport.close()


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _start_server(port: int, workers: int, log_path: Path) -> subprocess.Popen:
    code = (
        f"from cdp_pipeline.api.server import serve; serve('127.0.0.1', {port}, workers={workers})"
    )
    log = log_path.open("w")
    return subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=log, env=os.environ)


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if (
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json().get("status")
                == "ok"
            ):
                # With several workers, give the others time to open the store too.
                time.sleep(1.0)
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("The API did not become ready within 120 s")


def _tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` and all its descendants so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        pending.extend(int(child) for child in children)
    return total


def _load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _since(started: float) -> float:
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
