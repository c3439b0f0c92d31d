"""Latency of the marketer UI's search and profile page on a 1 000 000-profile warehouse.

Run by hand (not a test), one heavy job at a time on the shared machine:

    flock /tmp/bench.lock nice -n 5 .venv/bin/python bench/ui_latency.py --profiles 1000000

It builds once, in ``--workdir`` (reused by later runs while ``--profiles`` is the same):

* stand-in marts for ``--profiles`` people (``cdp_pipeline.publish.synthetic``, the
  generator of the API bench) plus the tables the UI's replica copies, with the columns of a
  real nightly run: ``identity.record_profiles`` / ``links`` / ``golden_attributes`` /
  ``profile_history`` / ``review_queue``, ``intermediate.int_identity__records`` and
  ``marts.interactions`` (``--interactions`` per profile; a real night of the generated
  city has about 8.7 per profile, 2.8 records and 5.5 golden attribute rows);
* a published serving snapshot (timed), the UI's search index of it (timed) and the UI's
  replica of the warehouse (timed, ``Store.refresh_replica``, the copy the app makes).

Then it starts the real app as ``cdp ui`` does (uvicorn, in a subprocess on 127.0.0.1),
logs in and times over HTTP, one request at a time on a keep-alive connection: searches by
name, name prefix, e-mail, phone (as typed, ``0470 …``), profile id, A-profiel id and a
miss, each ``--repeat`` times with a different person each time, and the 360° profile page
of ``--profiles-to-open`` random people (first request apart: it opens the files). The
search fallback (a DuckDB scan of the snapshot, used while a new snapshot's index is being
built) is timed in this process for comparison. Writes a Markdown report to stdout.
"""

import argparse
import logging
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import httpx

from cdp_pipeline.publish.snapshot import current_snapshot, publish_snapshot, snapshots_dir_of
from cdp_pipeline.publish.synthetic import synthetic_marts
from cdp_pipeline.settings import Settings, get_settings
from cdp_pipeline.ui import create_user, search_index
from cdp_pipeline.ui.data import Store, search_profiles

logger = logging.getLogger("bench.ui_latency")

PASSWORD = "bench-password-1"

# The replica's tables beyond the synthetic marts, shaped as identity.resolve and dbt write
# them (column names and types of a real night's warehouse).
_REPLICA_DDL = (
    "create schema if not exists identity",
    "create schema if not exists intermediate",
    """
    create table intermediate.int_identity__records as
    select
        records.record_id, records.source, records.record_key, records.role,
        people.first_name, people.last_name, people.birth_date, people.email, people.phone,
        'Straat ' || (hash(records.record_id) % 900)::varchar as street,
        (hash(records.record_id) % 200 + 1)::varchar as house_number,
        people.postcode, people.municipality, people.a_profiel_id,
        case when records.role = 'device' then records.record_key end as device_id,
        case when records.role = 'visitor' then records.record_key end as anonymous_id,
        false as is_child_record, null::varchar as household_key,
        people.last_seen_at - to_days((hash(records.record_id) % 400)::integer) as observed_at
    from marts.profile_records as records
    inner join marts.profiles as people on people.profile_id = records.profile_id
    order by records.record_id
    """,
    """
    create table identity.record_profiles as
    select
        records.record_id, records.source, records.record_key, records.role,
        records.profile_id, lower(people.email) as email_normalised,
        people.phone as phone_e164, lower(people.first_name) as first_name_normalised,
        lower(people.last_name) as last_name_normalised, people.birth_date, people.postcode,
        'bench' as run_id, timestamp '2025-12-01 02:10:00' as assigned_at
    from marts.profile_records as records
    inner join marts.profiles as people on people.profile_id = records.profile_id
    order by records.record_id
    """,
    # Every pair of records of a profile, as the identity step's transitive closure links
    # them; the evidence JSON has its shape.
    """
    create table identity.links as
    select
        l.record_id as record_id_l, r.record_id as record_id_r,
        case when l.role = 'account' then 'a_profiel_id' else 'splink' end as link_type,
        case when l.role = 'account' then null else 14.2 end as match_weight,
        case when l.role = 'account' then 1.0 else 0.99994 end as match_probability,
        '{"email": {"level": "exact", "weight": 9.1}, '
            || '"first_name": {"level": "exact", "weight": 3.4}, '
            || '"postcode": {"level": "different postcode", "weight": -1.2}}' as evidence,
        'bench' as run_id
    from marts.profile_records as l
    inner join marts.profile_records as r
        on l.profile_id = r.profile_id and l.record_id < r.record_id
    order by record_id_l, record_id_r
    """,
    """
    create table identity.golden_attributes as
    select
        people.profile_id, attributes.attribute,
        case attributes.attribute
            when 'first_name' then people.first_name when 'last_name' then people.last_name
            when 'email' then people.email when 'phone' then people.phone
            else people.postcode end as value,
        'aprofiel' as source, 'aprofiel|account|' || coalesce(people.a_profiel_id, '-')
            as record_id,
        people.updated_at as observed_at, 'most_recent' as rule
    from marts.profiles as people,
        (values ('first_name'), ('last_name'), ('email'), ('phone'), ('postcode'))
            as attributes(attribute)
    """,
    """
    create table identity.profile_history as
    select 'bench' as run_id, profile_id, 'created' as change, null::varchar
        as other_profile_id, n_records, first_seen_at as changed_at
    from marts.profiles
    """,
    """
    create table identity.review_queue as
    select
        l.record_id as record_id_l, r.record_id as record_id_r, l.profile_id as profile_id_l,
        r.profile_id as profile_id_r, 2.1 as match_weight, 0.81 as match_probability,
        '{"first_name": {"level": "exact", "weight": 3.4}}' as evidence,
        'between thresholds' as reason, 'open' as status, 'bench' as run_id
    from marts.profile_records as l
    inner join marts.profile_records as r
        on r.profile_id = printf('p-%012x', 1 + ('0x' || substr(l.profile_id, 3))::bigint)
        and l.role = 'visitor' and r.role = 'visitor'
    limit 2000
    """,
)

_INTERACTIONS_SQL = """
create table marts.interactions as
select
    'ticketing|order|' || people.profile_id || '-' || n as interaction_id,
    people.profile_id,
    ['ticketing', 'email_events', 'web_events', 'registrations'][n % 4 + 1] as source,
    ['ticket_purchase', 'email_open', 'page_view', 'registration'][n % 4 + 1]
        as interaction_type,
    timestamp '2024-01-01' + to_seconds((hash(people.profile_id || n) % 60000000)::bigint)
        as occurred_at,
    ['theater', 'concert', 'sport', 'museum'][(hash(people.profile_id) % 4 + 1)::integer]
        as category,
    'Event ' || (hash(people.profile_id || n) % 300)::varchar as item_name,
    null::varchar as url,
    case when n % 4 = 0 then ((hash(people.profile_id || n) % 6000) / 100.0)::decimal(12, 2)
        end as amount_eur,
    case when n % 4 = 0 then 1 end::integer as quantity,
    'betaald' as status,
    null::varchar as order_id, null::varchar as event_id, null::varchar as registration_id,
    null::varchar as activity_id, null::varchar as campaign_id, null::varchar as message_id,
    null::varchar as contact_profile_id
from marts.profiles as people, range(?) as events(n)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--interactions", type=int, default=8, help="per profile")
    parser.add_argument("--repeat", type=int, default=20, help="searches per query shape")
    parser.add_argument("--profiles-to-open", type=int, default=50)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cdp-ui-bench"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    os.environ["CDP_WAREHOUSE"] = str(args.workdir / "warehouse" / "cdp.duckdb")
    settings = get_settings()
    report = [f"load average before: {_load_average()}", ""]
    report += _prepare(settings, args.profiles, args.interactions)
    create_user("bench", "marketer", PASSWORD, settings)
    rng = random.Random(7)
    port = _free_port()
    server = _start_server(port, args.workdir / "server.log")
    try:
        _wait_ready(port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            login = client.post("/login", data={"username": "bench", "password": PASSWORD})
            assert login.status_code == 303, login.text
            report += ["", "| request (HTTP, real app) | n | median | p90 | max |"]
            report.append("| --- | ---: | ---: | ---: | ---: |")
            first = _profile_id(rng.randrange(args.profiles))
            started = time.perf_counter()
            _get(client, f"/profiles/{first}", first)
            first_ms = (time.perf_counter() - started) * 1000
            for shape, make in _search_shapes(args.profiles).items():
                laps = _laps(client, rng, make, args.repeat, args.profiles)
                report.append(_row(f"search: {shape}", laps))
            laps = _laps(
                client,
                rng,
                lambda i: (f"/profiles/{_profile_id(i)}", _profile_id(i)),
                args.profiles_to_open,
                args.profiles,
            )
            report.append(_row("profile page (360°)", laps))
            report.append(f"| profile page, first request | 1 | {first_ms:.1f} ms | | |")
    finally:
        server.terminate()
        server.wait(timeout=30)
    report += ["", *_scan_fallback(settings, args.profiles, min(args.repeat, 5))]
    report += ["", f"load average after: {_load_average()}"]
    sys.stdout.write("\n".join(report) + "\n")


def _prepare(settings: Settings, profiles: int, interactions: int) -> list[str]:
    """Warehouse, snapshot, search index and replica; lines of the report with their times."""
    warehouse = settings.warehouse
    marker = warehouse.with_suffix(f".{profiles}x{interactions}.ready")
    lines = []
    if not marker.exists():
        shutil.rmtree(warehouse.parent, ignore_errors=True)
        shutil.rmtree(settings.state_dir / "ui", ignore_errors=True)
        warehouse.parent.mkdir(parents=True)
        started = time.perf_counter()
        with duckdb.connect(str(warehouse)) as con:
            synthetic_marts(con, profiles)
            for statement in _REPLICA_DDL:
                con.execute(statement)
            con.execute(_INTERACTIONS_SQL, [interactions])
            con.execute("checkpoint")
            counts = {
                table: con.execute(f"select count(*) from {table}").fetchone()[0]
                for table in (
                    "marts.profiles",
                    "identity.record_profiles",
                    "identity.links",
                    "identity.golden_attributes",
                    "marts.interactions",
                )
            }
        logger.info("Warehouse built in %.0f s: %s", _since(started), counts)
        lines.append(f"warehouse generated in {_since(started):.0f} s: {counts}")
        started = time.perf_counter()
        with duckdb.connect(str(warehouse), read_only=True) as con:
            summary = publish_snapshot(con, snapshots_dir_of(warehouse))
        lines.append(f"snapshot published in {_since(started):.0f} s ({summary.name})")
        marker.touch()
    snapshot = current_snapshot(settings)
    assert snapshot is not None
    store = Store(settings)
    index = search_index.index_path(store.search_dir, snapshot)
    if not index.exists():
        seconds = search_index.build(snapshot, index)
        lines.append(f"search index built in {seconds:.0f} s ({index.stat().st_size / 1e6:.0f} MB)")
    # Copied here, not by the server in the middle of the timings: a replica of an older
    # layout (REPLICA_TABLES, REPLICA_INDEXES) or of another warehouse is copied again.
    if store.refresh_replica(force=True):
        info = store.replica_info()
        size = store.replica_path.stat().st_size / 1e6
        lines.append(f"UI replica copied in {info['seconds']:.0f} s ({size:.0f} MB)")
    return lines


def _profile_id(i: int) -> str:
    return f"p-{i:012x}"


def _search_shapes(profiles: int) -> dict[str, Callable[[int], tuple[str, str]]]:
    """Per query shape: person number → (URL, a text the answer must contain)."""

    def known(i: int) -> int:
        # E-mail for i % 10 < 7, phone for < 5, A-profiel id for < 4 (synthetic_marts).
        return i - i % 10

    return {
        "name (first and last)": lambda i: (
            f"/?q=Given{i % 997}+Family{i % 4999}",
            f"Family{i % 4999}",
        ),
        "name prefix (Famil…)": lambda i: (f"/?q=Family{i % 4999}"[:-1], "Family"),
        "e-mail": lambda i: (f"/?q=person{known(i)}@example.org", f"person{known(i)}@"),
        "phone as typed (04xx xx xx xx)": lambda i: (
            "/?q=" + _typed_phone(known(i)),
            _profile_id(known(i)),
        ),
        "profile id": lambda i: (f"/?q={_profile_id(i)}", _profile_id(i)),
        "A-profiel id": lambda i: (f"/?q=A{known(i)}", _profile_id(known(i))),
        "no match": lambda i: (f"/?q=zzqq{i}", "zzqq"),
    }


def _typed_phone(i: int) -> str:
    """Person ``i``'s +3247… number the way a Belgian types it: ``047x xx xx xx``."""
    digits = f"{i % 10_000_000:07d}"
    return f"047{digits[0]}+{digits[1:3]}+{digits[3:5]}+{digits[5:]}"


def _laps(
    client: httpx.Client,
    rng: random.Random,
    make: Callable[[int], tuple[str, str]],
    count: int,
    profiles: int,
) -> list[float]:
    laps = []
    for _ in range(count):
        i = rng.randrange(10, profiles)
        url, expected = make(i)
        started = time.perf_counter()
        _get(client, url, expected)
        laps.append((time.perf_counter() - started) * 1000)
    return laps


def _get(client: httpx.Client, url: str, expected: str) -> None:
    response = client.get(url)
    # A page that answers fast but wrong (a login redirect, an empty result) must not count.
    assert response.status_code == 200, (url, response.status_code)
    assert expected in response.text, (url, expected)


def _row(name: str, laps: list[float]) -> str:
    ordered = sorted(laps)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return (
        f"| {name} | {len(laps)} | {statistics.median(laps):.1f} ms | {p90:.1f} ms"
        f" | {max(laps):.1f} ms |"
    )


def _scan_fallback(settings: Settings, profiles: int, repeat: int) -> list[str]:
    """The DuckDB scan searches fall back to while a new snapshot's index is built."""
    snapshot = current_snapshot(settings)
    assert snapshot is not None
    lines = [
        "| fallback scan of the snapshot (in process) | n | median | max |",
        "| --- | ---: | ---: | ---: |",
    ]
    rng = random.Random(11)
    with duckdb.connect(str(snapshot), read_only=True) as con:
        for shape, make in _search_shapes(profiles).items():
            laps = []
            for _ in range(repeat):
                query = make(rng.randrange(10, profiles))[0].split("q=", 1)[1].replace("+", " ")
                started = time.perf_counter()
                search_profiles(con, query)
                laps.append((time.perf_counter() - started) * 1000)
            lines.append(
                f"| {shape} | {repeat} | {statistics.median(laps):.0f} ms | {max(laps):.0f} ms |"
            )
    return lines


def _start_server(port: int, log_path: Path) -> subprocess.Popen:
    """``cdp ui`` as an operator starts it, in its own process."""
    command = [str(Path(sys.executable).with_name("cdp")), "ui", "--port", str(port)]
    with log_path.open("ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ)


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"the UI did not start on port {port}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _since(started: float) -> float:
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
