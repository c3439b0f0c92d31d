"""The event endpoint against the real Segment and RudderStack SDKs, over loopback only."""

import base64
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests
import uvicorn

from cdp_pipeline.collect.app import create_app
from cdp_pipeline.collect.config import CollectorConfig
from cdp_pipeline.collect.writer import INCOMING, LandingWriter
from cdp_pipeline.settings import PROJECT_ROOT

KEY = "wk-test-website"
OTHER_KEY = "wk-test-app"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Endpoint:
    """One endpoint served by uvicorn in a thread of the test process."""

    url: str
    landing: Path
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "the endpoint did not stop"


def _start(landing: Path, **overrides: Any) -> Endpoint:
    config = CollectorConfig(write_keys=(KEY, OTHER_KEY), landing_dir=landing, **overrides)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the endpoint did not start"
        time.sleep(0.01)
    return Endpoint(f"http://127.0.0.1:{port}", landing, server, thread)


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[Endpoint]:
    running = _start(tmp_path / "landing")
    yield running
    if running.thread.is_alive():
        running.stop()


def _lines(folder: Path, pattern: str = "*.jsonl") -> list[dict[str, Any]]:
    """Every line of the published files; json.loads fails the test on a partial line."""
    out = []
    for path in sorted(folder.glob(pattern)):
        data = path.read_bytes()
        assert data.endswith(b"\n"), f"{path.name} does not end with a complete line"
        out += [json.loads(line) for line in data.splitlines()]
    return out


def _basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def _segment_client(url: str, key: str = KEY, **kwargs: Any) -> Any:
    from segment.analytics.client import Client

    return Client(key, host=url, sync_mode=True, max_retries=0, **kwargs)


# ----------------------------------------------------------------- Segment SDK


def test_segment_sdk_calls_land_in_the_day_file_as_web_events(endpoint: Endpoint) -> None:
    client = _segment_client(endpoint.url, gzip=True)
    at = datetime(2025, 11, 29, 20, 58, 1, 120000, tzinfo=UTC)
    ctx = {"ip": "203.0.113.7", "userAgent": "Mozilla/5.0", "locale": "nl-BE"}
    client.page(
        anonymous_id="c-91f2",
        name="Agenda",
        timestamp=at,
        context=dict(ctx),
        properties={"path": "/agenda", "referrer": "https://search.example/"},
    )
    client.track(
        anonymous_id="c-91f2",
        event="Added to Wishlist",
        timestamp=at,
        properties={"event_id": "EV-4411"},
        context=dict(ctx),
    )
    client.identify(
        anonymous_id="c-91f2",
        user_id="ap-000913",
        timestamp=at,
        traits={"email": "an.peeters@telenet.be"},
        context={"ip": "2001:db8:85a3:8d3:1319:8a2e:370:7348"},
    )
    client.screen(
        anonymous_id="d-77aa", name="Agenda", timestamp=at, properties={"event_id": "EV-4411"}
    )
    client.alias(previous_id="c-91f2", user_id="ap-000913", timestamp=at)
    client.track(
        user_id="ap-000913",
        event="Ticket Purchased",
        timestamp=at,
        properties={
            "order_id": "T-2025-118273",
            "event_id": "EV-4411",
            "quantity": 2,
            "revenue": 54.0,
        },
    )
    endpoint.stop()

    folder = endpoint.landing / "web_events"
    files = sorted(p.name for p in folder.glob("*.jsonl"))
    assert len(files) == 1 and files[0].startswith("2025-11-29.endpoint-")
    events = _lines(folder)
    assert [e["type"] for e in events] == [
        "page",
        "track",
        "identify",
        "screen",
        "alias",
        "track",
    ]
    for event in events:
        assert event["timestamp"] == "2025-11-29T20:58:01.120Z"
        assert event["messageId"] and event["receivedAt"] and event["sentAt"]
        assert "writeKey" not in event
    page, wish, ident, screen, alias, bought = events
    assert page["name"] == "Agenda" and page["properties"]["path"] == "/agenda"
    assert wish["event"] == "Added to Wishlist" and wish["properties"] == {"event_id": "EV-4411"}
    assert ident["userId"] == "ap-000913" and ident["traits"]["email"] == "an.peeters@telenet.be"
    assert alias["previousId"] == "c-91f2" and alias["userId"] == "ap-000913"
    assert bought["properties"]["quantity"] == 2
    # The address is truncated before it is stored: nowhere in the file in full.
    assert page["context"]["ip"] == "203.0.113.0" and wish["context"]["ip"] == "203.0.113.0"
    assert ident["context"]["ip"] == "2001:db8:85a3::"
    raw = b"".join(p.read_bytes() for p in folder.glob("*.jsonl"))
    assert b"203.0.113.7" not in raw and b"1319:8a2e" not in raw
    assert not list((folder / INCOMING).rglob("*.partial"))

    # The nightly ingest reads the file as the web_events source, nothing quarantined.
    from cdp_pipeline.ingest.config import load_sources_config
    from cdp_pipeline.ingest.loader import ingest_source

    source = next(s for s in load_sources_config() if s.name == "web_events")
    con = duckdb.connect()
    result = ingest_source(con, source, endpoint.landing)
    assert result.total("rows_loaded") == 6 and result.total("rows_quarantined") == 0
    rows = con.execute(
        "select event_type, event_name, user_id, event_date::varchar from raw.web_events "
        "order by _line"
    ).fetchall()
    assert rows[0] == ("page", "Agenda", None, "2025-11-29")
    assert rows[1][:2] == ("track", "Added to Wishlist")


def test_an_event_at_2330_utc_in_winter_lands_on_the_next_brussels_day(
    endpoint: Endpoint,
) -> None:
    client = _segment_client(endpoint.url)
    moments = {
        "winter late": datetime(2025, 1, 15, 23, 30, tzinfo=UTC),  # 00:30 CET on the 16th
        "summer late": datetime(2025, 7, 15, 22, 30, tzinfo=UTC),  # 00:30 CEST on the 16th
        "summer evening": datetime(2025, 7, 15, 21, 30, tzinfo=UTC),  # 23:30 CEST, the 15th
    }
    for name, at in moments.items():
        client.page(anonymous_id="c-1", name=name, timestamp=at)
    endpoint.stop()
    by_day = {
        p.name[:10]: [e["name"] for e in _lines(p.parent, p.name)]
        for p in (endpoint.landing / "web_events").glob("*.jsonl")
    }
    assert by_day == {
        "2025-01-16": ["winter late"],
        "2025-07-16": ["summer late"],
        "2025-07-15": ["summer evening"],
    }


def test_missing_message_id_and_timestamp_are_filled_and_gzip_is_read(
    endpoint: Endpoint,
) -> None:
    body = {
        "userId": "ap-1",
        "event": "Added to Wishlist",
        "properties": {"event_id": "E"},
        "context": {"ip": "198.51.100.200"},
    }
    response = requests.post(
        f"{endpoint.url}/v1/track",
        data=gzip.compress(json.dumps(body).encode()),
        headers={**_basic(KEY), "Content-Encoding": "gzip", "Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 200 and response.json() == {"success": True}
    # A browser sends the key in the body (no preflight) and may omit the type.
    response = requests.post(
        f"{endpoint.url}/v1/batch",
        data=json.dumps({"writeKey": OTHER_KEY, "batch": [{**body, "type": "track"}]}),
        headers={"Content-Type": "text/plain"},
        timeout=5,
    )
    assert response.status_code == 200
    endpoint.stop()
    events = _lines(endpoint.landing / "web_events")
    assert len(events) == 2
    for event in events:
        assert event["messageId"].startswith("api-")
        assert event["timestamp"] == event["receivedAt"]
        assert event["context"]["ip"] == "198.51.100.0"
        assert "writeKey" not in event


# ------------------------------------------------------------------ RudderStack


def test_rudderstack_sdk_works_against_the_same_api(endpoint: Endpoint) -> None:
    from rudderstack.analytics.client import Client

    # RudderStack's SDK gzips by default and posts to <dataPlaneUrl>/v1/batch.
    client = Client(KEY, host=endpoint.url, sync_mode=True, max_retries=0)
    at = datetime(2025, 11, 29, 12, 0, tzinfo=UTC)
    client.track(
        anonymous_id="c-2",
        event="Added to Wishlist",
        timestamp=at,
        properties={"event_id": "EV-1"},
        context={"ip": "192.0.2.99"},
    )
    client.identify(anonymous_id="c-2", user_id="ap-2", timestamp=at, traits={"email": "a@b.be"})
    client.page(anonymous_id="c-2", name="Home", timestamp=at, properties={"path": "/"})
    endpoint.stop()
    events = _lines(endpoint.landing / "web_events")
    assert [e["type"] for e in events] == ["track", "identify", "page"]
    assert events[0]["context"]["ip"] == "192.0.2.0"
    assert events[0]["context"]["library"]["name"] == "analytics-python"


# ---------------------------------------------------------- auth and rejections


def test_a_bad_write_key_gets_401_and_nothing_is_stored(endpoint: Endpoint) -> None:
    from segment.analytics.request import APIError

    client = _segment_client(endpoint.url, key="wk-wrong")
    with pytest.raises(APIError) as caught:
        client.track(user_id="ap-1", event="Added to Wishlist", properties={"event_id": "E"})
    assert caught.value.status == 401
    batch = json.dumps({"batch": [{"type": "track", "userId": "u", "event": "x"}]})
    assert requests.post(f"{endpoint.url}/v1/batch", data=batch, timeout=5).status_code == 401
    bad = {"Authorization": "Bearer abc"}
    assert (
        requests.post(f"{endpoint.url}/v1/batch", data=batch, headers=bad, timeout=5).status_code
        == 401
    )
    # A valid key as the password part is still the wrong key.
    wrong = {"Authorization": "Basic " + base64.b64encode(f"x:{KEY}".encode()).decode()}
    assert (
        requests.post(f"{endpoint.url}/v1/batch", data=batch, headers=wrong, timeout=5).status_code
        == 401
    )
    endpoint.stop()
    assert not list(endpoint.landing.glob("*/*.jsonl"))


def test_unplanned_events_and_type_violations_are_kept_aside_and_counted(
    endpoint: Endpoint,
) -> None:
    client = _segment_client(endpoint.url)
    at = datetime(2025, 11, 30, 9, 0, tzinfo=UTC)
    client.track(
        anonymous_id="c-3",
        event="Added To Wishlist",
        timestamp=at,  # wrong case
        properties={"event_id": "EV-1"},
        context={"ip": "203.0.113.55"},
    )
    client.track(
        anonymous_id="c-3",
        event="Ticket Purchased",
        timestamp=at,
        properties={"order_id": "T-1", "event_id": "EV-1", "quantity": "2"},
    )
    client.track(
        anonymous_id="c-3", event="Ticket Purchased", timestamp=at, properties={"event_id": "EV-1"}
    )
    client.identify(user_id="ap-3", timestamp=at, traits={"email": ["a@b.be"]})
    client.group(user_id="ap-3", group_id="org-1", timestamp=at)
    client.track(
        anonymous_id="c-3", event="Added to Wishlist", timestamp=at, properties={"event_id": "EV-1"}
    )
    stats = requests.get(f"{endpoint.url}/v1/stats", timeout=5).json()
    metrics = requests.get(f"{endpoint.url}/metrics", timeout=5).text
    endpoint.stop()

    assert stats["events"] == {"received": 6, "accepted": 1, "rejected": 5}
    assert stats["rejected_by_category"] == {
        "missing_property": 1,
        "type_violation": 2,
        "unplanned_call": 1,
        "unplanned_event": 1,
    }
    assert stats["unplanned_events"] == {"Added To Wishlist": 1}
    assert 'cdp_collect_rejected_total{category="type_violation"} 2' in metrics
    assert len(_lines(endpoint.landing / "web_events")) == 1
    aside = _lines(endpoint.landing / "web_events_rejected")
    assert [(r["category"], r["reason"]) for r in aside] == [
        ("unplanned_event", "track event 'Added To Wishlist' is not in the plan"),
        ("type_violation", "properties.quantity: expected integer, got string '2'"),
        ("missing_property", "properties.order_id: required, missing"),
        ("type_violation", "traits.email: expected string, got array ['a@b.be']"),
        ("unplanned_call", "group calls are not in the tracking plan"),
    ]
    # Kept whole, so they can be replayed once the plan is fixed; the IP is truncated too.
    assert aside[0]["message"]["properties"] == {"event_id": "EV-1"}
    assert aside[0]["message"]["context"]["ip"] == "203.0.113.0"
    assert all(r["message"]["messageId"] for r in aside)


def test_a_malformed_batch_is_refused_and_a_malformed_message_kept_aside(
    endpoint: Endpoint,
) -> None:
    url = f"{endpoint.url}/v1/batch"
    assert requests.post(url, data=b"{not json", headers=_basic(KEY), timeout=5).status_code == 400
    assert (
        requests.post(url, data=b'{"batch": 3}', headers=_basic(KEY), timeout=5).status_code == 400
    )
    batch = {
        "batch": [
            7,
            {"type": "track", "event": "Added to Wishlist"},
            {"type": "page", "anonymousId": "c", "timestamp": "yesterday"},
        ]
    }
    assert requests.post(url, json=batch, headers=_basic(KEY), timeout=5).status_code == 200
    endpoint.stop()
    aside = _lines(endpoint.landing / "web_events_rejected")
    assert [r["reason"] for r in aside] == [
        "message is not a JSON object",
        "userId or anonymousId is required",
        "timestamp 'yesterday' is not ISO 8601",
    ]


# ------------------------------------------------------------------ durability


def _serve_in_subprocess(landing: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CDP_LANDING_DIR": str(landing),
        "CDP_WRITE_KEYS": KEY,
        "CDP_COLLECT_ROTATE_SECONDS": "0.5",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "cdp_pipeline.collect.server", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                return process
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"endpoint did not start: {process.stderr.read()!r}")
        time.sleep(0.05)


def _send_until_refused(port: int, acked: set[str], stop: threading.Event) -> None:
    """Batches of 20 unique events until the server goes; remembers what got a 200."""
    session = requests.Session()
    while not stop.is_set():
        ids = [f"m-{uuid.uuid4()}" for _ in range(20)]
        batch = [
            {
                "type": "track",
                "messageId": i,
                "anonymousId": "c-9",
                "event": "Added to Wishlist",
                "properties": {"event_id": "EV-9"},
                "timestamp": "2025-11-29T10:00:00Z",
            }
            for i in ids
        ]
        try:
            response = session.post(
                f"http://127.0.0.1:{port}/v1/batch",
                json={"batch": batch},
                headers=_basic(KEY),
                timeout=5,
            )
        except requests.RequestException:
            return
        if response.status_code == 200:
            acked.update(ids)


def _stream_then(sig: signal.Signals, landing: Path) -> tuple[set[str], subprocess.Popen[bytes]]:
    port = _free_port()
    process = _serve_in_subprocess(landing, port)
    acked: set[str] = set()
    stop = threading.Event()
    senders = [
        threading.Thread(target=_send_until_refused, args=(port, acked, stop)) for _ in range(4)
    ]
    for sender in senders:
        sender.start()
    time.sleep(1.2)  # long enough for at least one rotation (0.5 s) to publish files
    process.send_signal(sig)
    process.wait(timeout=20)
    stop.set()
    for sender in senders:
        sender.join(timeout=10)
    assert len(acked) > 200, "the load did not get going before the signal"
    return acked, process


def test_stopping_mid_stream_loses_no_acknowledged_event(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    acked, process = _stream_then(signal.SIGTERM, landing)
    log = process.stderr.read().decode() if process.stderr else ""
    # uvicorn re-raises the signal after its graceful shutdown, hence -SIGTERM.
    assert process.returncode in (0, -signal.SIGTERM), log
    assert "Application shutdown complete" in log
    landed = [e["messageId"] for e in _lines(landing / "web_events")]
    assert acked <= set(landed)
    assert len(landed) == len(set(landed))  # a clean stop writes nothing twice
    # Everything was published; nothing is left half-written in the incoming folder.
    assert not list((landing / "web_events" / INCOMING).rglob("*.partial"))


def test_a_killed_endpoint_is_recovered_by_the_next_start(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    acked, _ = _stream_then(signal.SIGKILL, landing)
    leftovers = list((landing / "web_events" / INCOMING).rglob("*.partial"))
    assert leftovers, "a killed writer leaves its open files behind"
    _start(landing).stop()  # startup recovery, then a clean stop
    landed = [e["messageId"] for e in _lines(landing / "web_events")]
    assert acked <= set(landed)
    assert not list((landing / "web_events" / INCOMING).rglob("*.partial"))


def test_recovery_puts_a_torn_last_line_aside(tmp_path: Path) -> None:
    import asyncio

    landing = tmp_path / "landing"
    dead = landing / "web_events" / INCOMING / "host-20251129T000000-1"
    dead.mkdir(parents=True)
    good = b'{"messageId":"m-1","type":"page"}\n{"messageId":"m-2","type":"page"}\n'
    name = "2025-11-29.endpoint-host-20251129T000000-1-000001.jsonl"
    (dead / f"{name}.partial").write_bytes(good + b'{"messageId":"m-3","ty')

    async def start_and_close() -> None:
        writer = LandingWriter(
            landing, streams=("web_events",), rejected_stream="web_events_rejected"
        )
        await writer.start()
        await writer.close()

    asyncio.run(start_and_close())
    assert [e["messageId"] for e in _lines(landing / "web_events")] == ["m-1", "m-2"]
    aside = _lines(landing / "web_events_rejected")
    assert [(r["category"], r["raw"], r["file"]) for r in aside] == [
        ("torn_write", '{"messageId":"m-3","ty', name)
    ]
    assert not dead.exists()
