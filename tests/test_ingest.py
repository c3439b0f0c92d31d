"""Ingest stage: every source's export format, its quirks and its broken deliveries.

Each test materializes the ingest assets in-process against a fresh warehouse and
landing folder, fed with the hand-written files of tests/data/deliveries/.
"""

import os
import shutil
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from cdp_pipeline.ingest.config import (
    DEFAULT_SOURCES_PATH,
    ConfigError,
    SourceConfig,
    load_sources_config,
    sources_by_kind,
)
from cdp_pipeline.ingest.definitions import build_day_jobs, build_ingest_assets, defs
from cdp_pipeline.ingest.kinds import KINDS, LINEAGE_COLUMNS
from cdp_pipeline.resources import LandingResource, WarehouseResource

DELIVERIES = Path(__file__).parent / "data" / "deliveries"
GOOD = DELIVERIES / "good"
BROKEN = DELIVERIES / "broken"
SOURCE_NAMES = [
    "aprofiel",
    "ticketing",
    "registrations",
    "newsletter",
    "email_events",
    "web_events",
    "app_devices",
    "consents",
    "privacy_requests",
]


class Platform:
    """A temporary landing folder and warehouse, and a way to run the ingest assets on them."""

    def __init__(self, root: Path) -> None:
        self.landing = root / "landing"
        self.landing.mkdir()
        self.warehouse = root / "warehouse" / "cdp.duckdb"

    def land(self, source: str, file: Path, name: str | None = None) -> Path:
        """Copy a sample file into the source's landing folder (optionally renamed)."""
        target = self.landing / source / (name or file.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)
        return target

    def land_good(self) -> None:
        for folder in GOOD.iterdir():
            for file in folder.iterdir():
                self.land(folder.name, file)

    def run(
        self, sources: list[SourceConfig] | None = None, only: list[str] | None = None
    ) -> dg.ExecuteInProcessResult:
        configs = sources if sources is not None else load_sources_config()
        if only is not None:
            configs = [s for s in configs if s.name in only]
        return dg.materialize(
            build_ingest_assets(configs),
            resources={
                "warehouse": WarehouseResource(database=str(self.warehouse)),
                "landing": LandingResource(directory=str(self.landing)),
            },
            raise_on_error=True,
        )

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        con = duckdb.connect(str(self.warehouse), read_only=True)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()

    def snapshot(self, tables: list[str]) -> dict[str, list[tuple]]:
        """Full, ordered contents of the given raw tables."""
        return {t: sorted(self.query(f"select * from raw.{t}"), key=repr) for t in tables}


@pytest.fixture
def platform(tmp_path: Path) -> Platform:
    return Platform(tmp_path)


def metadata(result: dg.ExecuteInProcessResult, source: str) -> dict:
    """The materialization metadata of raw/<source>, as plain values."""
    mats = result.asset_materializations_for_node(f"raw__{source}")
    assert len(mats) == 1
    return {k: getattr(v, "value", v) for k, v in mats[0].metadata.items()}


def checks(result: dg.ExecuteInProcessResult, source: str) -> dict[str, bool]:
    """check name -> passed, for the checks of raw/<source>."""
    out = {}
    for ev in result.get_asset_check_evaluations():
        if ev.asset_key == dg.AssetKey(["raw", source]):
            out[ev.check_name] = ev.passed
    return out


# --------------------------------------------------------------- every source loads


def test_every_source_loads_its_sample_with_contract_types(platform: Platform) -> None:
    platform.land_good()
    result = platform.run()
    assert result.success

    # The tables have the contract's columns and types, lineage first.
    for kind in KINDS.values():
        cols = platform.query(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'raw' and table_name = ? order by ordinal_position",
            [kind.table],
        )
        expected = (
            [(n, t.upper()) for n, t in LINEAGE_COLUMNS]
            + [
                (f.name, f.type.value.upper().replace("DECIMAL(12,2)", "DECIMAL(12,2)"))
                for f in kind.fields
            ]
            + [("_extra", "JSON")]
        )
        assert cols == expected, kind.table

    for source in SOURCE_NAMES:
        meta = metadata(result, source)
        assert meta["files_loaded"] == 1, source
        assert meta["rows_quarantined"] == 0, source
        assert meta["rows_read"] == meta["rows_loaded"] + meta["rows_quarantined"]
        assert checks(result, source)["files_reconcile"] is True

    counts = {
        t: platform.query(f"select count(*) from raw.{t}")[0][0]
        for t in (
            "citizen_accounts",
            "ticket_orders",
            "registrations",
            "newsletter_contacts",
            "email_events",
            "web_events",
            "app_devices",
            "consent_events",
            "privacy_requests",
        )
    }
    assert counts == {
        "citizen_accounts": 3,
        "ticket_orders": 4,
        "registrations": 2,
        "newsletter_contacts": 2,
        "email_events": 2,
        "web_events": 4,
        "app_devices": 2,
        "consent_events": 2,
        "privacy_requests": 2,
    }


def test_ticketing_cp1252_decimal_comma_dst_and_leading_zeros(platform: Platform) -> None:
    platform.land("ticketing", GOOD / "ticketing" / "tickets_2025-11-29.csv")
    platform.run(only=["ticketing"])
    rows = {
        r[0]: r[1:]
        for r in platform.query(
            "select order_id, ordered_at, performance_at, first_name, amount_eur, quantity, "
            "event_id, event_name, email, _line from raw.ticket_orders"
        )
    }
    # Windows-1252 é, « and » arrive as the right characters.
    assert rows["T-2025-118273"][2] == "Hélène"
    assert rows["0012345"][6] == "Opéra « Carmen »"
    # Decimal comma, kept exact.
    assert rows["T-2025-118273"][3] == Decimal("54.00")
    assert rows["0012345"][3] == Decimal("1234.50")
    assert rows["T-2025-000001"][3] == Decimal("5.50")
    # Identifiers stay text: leading zeros kept.
    assert "0012345" in rows and rows["0012345"][5] == "EV-0007"
    # Brussels -> UTC across the spring DST change (30 March 2025, 02:00 -> 03:00).
    assert rows["0012345"][0] == datetime(2025, 3, 29, 22, 0)  # CET, UTC+1
    assert rows["0012345"][1] == datetime(2025, 3, 30, 18, 0)  # CEST, UTC+2
    # dd/mm/yyyy: 03/04 is 3 April, not 4 March.
    assert rows["T-2025-000001"][0] == datetime(2025, 4, 3, 8, 0)
    # Box office rows without e-mail: empty is null, not ''.
    assert rows["T-2025-118274"][7] is None
    assert rows["T-2025-118274"][4] == 1
    assert sorted(r[8] for r in rows.values()) == [2, 3, 4, 5]


def test_date_formats_are_configuration(platform: Platform, tmp_path: Path) -> None:
    """A registration export with dd/mm/yyyy dates and decimal comma needs only config."""
    source = SourceConfig(
        name="registrations_sport",
        kind="registration",
        folder="sport",
        file_glob="*.csv",
        format="csv",
        delimiter=";",
        decimal_separator=",",
        date_format="%d/%m/%Y",
        datetime_format="%d/%m/%Y %H:%M",
        columns={
            "inschrijving": "registration_id",
            "tijdstip": "registered_at",
            "deelnemer_geboortedatum": "participant_birth_date",
            "prijs": "price_eur",
        },
    )
    platform.land("sport", DELIVERIES / "config_variants" / "registrations_ddmm.csv")
    platform.run(sources=[source])
    assert platform.query(
        "select registration_id, registered_at, participant_birth_date, price_eur "
        "from raw.registrations"
    ) == [("R-1", datetime(2025, 4, 3, 8, 0), date(1990, 4, 3), Decimal("12.50"))]


def test_other_sources_values(platform: Platform) -> None:
    platform.land_good()
    platform.run(only=[s for s in SOURCE_NAMES if s != "ticketing"])
    accounts = {
        r[0]: r[1:]
        for r in platform.query(
            "select account_id, email, street, house_number, box, birth_date, created_at, status "
            "from raw.citizen_accounts"
        )
    }
    # Trimmed, case kept (normalisation belongs to staging); nested address flattened.
    assert accounts["ap-000913"][:4] == ("An.Peeters@Telenet.be", "Lange Nieuwstraat", "12", "3")
    assert accounts["ap-000913"][5] == datetime(2021, 3, 4, 9, 15)  # +01:00 honoured
    assert accounts["ap-000914"][1:4] == (None, None, None)  # address: null
    assert accounts["ap-000914"][6] == "deleted"
    assert accounts["ap-000915"][5] == datetime(2024, 1, 2, 8, 0)  # Z
    assert accounts["ap-000913"][4] == date(1987, 4, 12)

    reg = platform.query(
        "select registration_id, participant_birth_date, price_eur, activity_name, _line "
        "from raw.registrations order by _line"
    )
    # UTF-8 with BOM: the first header is found; quoted comma kept inside the field.
    assert reg[0][0] == "R-88120" and reg[0][4] == 2
    assert reg[1][1:4] == (date(1990, 4, 3), Decimal("0.00"), "Voorleesuur, jeugd")

    news = platform.query(
        "select email, opt_in_at, unsubscribed_at from raw.newsletter_contacts order by _line"
    )
    assert news[0] == ("an.peeters@telenet.be", datetime(2023, 2, 1, 8, 12), None)
    assert news[1][0] == "Jan.Janssens@Example.org"

    devices = platform.query(
        "select device_id, push_opt_in, push_token from raw.app_devices order by _line"
    )
    assert devices == [("d-77aa", True, "fcm:APA91bH-example"), ("0042-d", False, None)]

    assert platform.query(
        "select subject_id, consent_source, occurred_at from raw.consent_events order by _line"
    )[0] == ("ap-000913", "preference_centre", datetime(2025, 1, 10, 9, 0))
    assert platform.query(
        "select request_id, request_type, received_at from raw.privacy_requests order by _line"
    )[1] == ("PR-0043", "access", datetime(2025, 12, 1, 8, 5))
    assert platform.query(
        "select event_type, url, occurred_at from raw.email_events order by _line"
    ) == [
        ("click", "https://example.org/agenda/jazz", datetime(2025, 11, 28, 19, 2, 44)),
        ("open", None, datetime(2025, 11, 28, 19, 1, 2)),
    ]


def test_web_events_segment_mapping_ip_truncation_and_duplicates(platform: Platform) -> None:
    platform.land("web_events", GOOD / "web_events" / "2025-11-29.jsonl")
    result = platform.run(only=["web_events"])
    rows = {
        r[0]: r[1:]
        for r in platform.query(
            "select message_id, event_type, event_name, anonymous_id, user_id, previous_id, "
            "context->>'$.ip', properties->>'$.path', traits->>'$.email', occurred_at, "
            "event_date, _line from raw.web_events"
        )
    }
    assert set(rows) == {"m-5b1c", "m-5b1d", "m-5b1e", "m-5b1f"}
    assert rows["m-5b1c"][:2] == ("page", "Agenda")  # name -> event_name
    assert rows["m-5b1d"][:2] == ("track", "Added to Wishlist")  # event -> event_name
    assert rows["m-5b1c"][5] == "203.0.113.0"  # IPv4 last octet zeroed
    assert rows["m-5b1d"][5] == "2001:db8:85a3::"  # IPv6: first three groups
    assert rows["m-5b1c"][6] == "/agenda"
    assert rows["m-5b1e"][3] == "ap-000913" and rows["m-5b1e"][7] == "an.peeters@telenet.be"
    assert rows["m-5b1f"][4] == "c-91f2"  # alias previousId
    assert rows["m-5b1c"][8] == datetime(2025, 11, 29, 20, 58, 1, 120000)
    # 23:30 UTC on the 29th is already the 30th in Brussels.
    assert rows["m-5b1e"][9] == date(2025, 11, 30)
    assert rows["m-5b1c"][9] == date(2025, 11, 29)
    # The retried m-5b1d (line 4) is counted, not loaded, and not an error.
    assert rows["m-5b1d"][10] == 2
    meta = metadata(result, "web_events")
    assert meta["duplicate_message_ids"] == 1
    assert meta["rows_quarantined"] == 0
    assert platform.query("select count(*) from raw._quarantine") == [(0,)]
    # No full IP address is stored anywhere.
    assert platform.query("select count(*) from raw.web_events where context::varchar like '%.7%'")[
        0
    ] == (0,)


def test_web_events_invalid_lines_and_cross_file_duplicates(platform: Platform) -> None:
    platform.land("web_events", GOOD / "web_events" / "2025-11-29.jsonl")
    platform.land("web_events", BROKEN / "web_events_bad.jsonl", "2025-11-30.jsonl")
    result = platform.run(only=["web_events"])
    quarantine = platform.query(
        "select line, column_name, value, reason, raw_record from raw._quarantine "
        "where file = 'web_events/2025-11-30.jsonl' order by line"
    )
    assert [(q[0], q[1]) for q in quarantine] == [
        (2, None),
        (3, None),
        (6, "messageId"),
        (7, "timestamp"),
    ]
    assert "invalid JSON" in quarantine[0][3] and quarantine[1][4] == "[1, 2, 3]"
    assert quarantine[2][3] == "missing required field message_id"
    assert quarantine[3][2] == "not a time" and "occurred_at" in quarantine[3][3]
    # m-5b1c was loaded the day before: the late re-send is kept once (the first wins).
    assert platform.query(
        "select _file, _line from raw.web_events where message_id = 'm-5b1c'"
    ) == [("web_events/2025-11-29.jsonl", 1)]
    files = platform.query(
        "select rows_read, rows_loaded, rows_quarantined, message from raw._files "
        "where file = 'web_events/2025-11-30.jsonl'"
    )
    assert files[0][:3] == (6, 2, 4)
    assert "1 duplicate" in files[0][3] and "sentAt" in files[0][3]
    meta = metadata(result, "web_events")
    assert meta["duplicate_message_ids"] == 2
    assert checks(result, "web_events") == {
        "files_reconcile": True,
        "quarantine_rate_below_threshold": False,
        "no_rejected_files": True,
        "quality_errors": True,
        "quality_warnings": True,
        # sentAt is not mapped: kept in _extra and raised as drift.
        "schema_drift": False,
    }
    assert platform.query(
        "select _extra->>'$.sentAt' from raw.web_events where _file like '%2025-11-30%' "
        "and _extra is not null"
    ) == [("2025-11-30T11:00:01+01:00",)]


def _event(message_id: str, timestamp: str, name: str = "Agenda") -> str:
    return (
        f'{{"messageId": "{message_id}", "type": "page", "anonymousId": "c-1", '
        f'"name": "{name}", "timestamp": "{timestamp}"}}\n'
    )


def _run_day(platform: Platform, day: str) -> dg.ExecuteInProcessResult:
    """One partition of the web_events_days job: what each run of a UI backfill executes."""
    job_defs = dg.Definitions(
        jobs=build_day_jobs(),
        resources={
            "warehouse": WarehouseResource(database=str(platform.warehouse)),
            "landing": LandingResource(directory=str(platform.landing)),
        },
    )
    return job_defs.resolve_job_def("web_events_days").execute_in_process(partition_key=day)


def test_web_events_backfill_of_two_brussels_days_rewrites_exactly_those_days(
    platform: Platform,
) -> None:
    files = {
        "2025-11-28": [_event("a28", "2025-11-28T10:00:00Z")],
        "2025-11-29": [
            _event("a29", "2025-11-29T10:00:00Z"),
            # Late: 22:30 UTC on the 28th is still the 28th in Brussels.
            _event("late28", "2025-11-28T22:30:00Z"),
            # 23:30 UTC on the 29th is already the 30th in Brussels.
            _event("early30", "2025-11-29T23:30:00Z"),
            _event("a29", "2025-11-29T10:00:00Z"),  # a client retry: kept once
            "{not json\n",
        ],
        "2025-11-30": [
            _event("a30", "2025-11-30T10:00:00Z"),
            _event("late29", "2025-11-29T20:00Z"),
        ],
        "2025-12-01": [
            _event("a01", "2025-12-01T10:00:00Z"),
            _event("late30", "2025-11-30T11:00Z"),
        ],
    }
    for day, lines in files.items():
        target = platform.landing / "web_events" / f"{day}.jsonl"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(lines), encoding="utf-8")
    platform.run(only=["web_events"])
    row_sql = (
        "select message_id, _file, _line, _file_hash, event_date::varchar, event_name, "
        "_loaded_at from raw.web_events order by message_id"
    )
    before = {r[0]: r for r in platform.query(row_sql)}
    assert {m: r[4] for m, r in before.items()} == {
        "a28": "2025-11-28",
        "late28": "2025-11-28",
        "a29": "2025-11-29",
        "late29": "2025-11-29",
        "early30": "2025-11-30",
        "a30": "2025-11-30",
        "late30": "2025-11-30",
        "a01": "2025-12-01",
    }
    quarantine = platform.query("select file, line, reason from raw._quarantine")

    for day in ("2025-11-29", "2025-11-30"):
        result = _run_day(platform, day)
        assert result.success
        mats = result.asset_materializations_for_node("reload_web_events_day")
        assert [m.asset_key for m in mats] == [dg.AssetKey(["raw", "web_events"])]
        assert mats[0].metadata["brussels_day"].value == day

    after = {r[0]: r for r in platform.query(row_sql)}
    rewritten = {m for m in after if after[m][6] != before[m][6]}
    # Exactly the rows of the two days, wherever they were delivered, and nothing else.
    assert rewritten == {"a29", "late29", "early30", "a30", "late30"}
    assert {m: r[:6] for m, r in after.items()} == {m: r[:6] for m, r in before.items()}
    assert platform.query("select file, line, reason from raw._quarantine") == quarantine
    assert platform.query(
        "select file, status, rows_read, rows_loaded, rows_quarantined from raw._files "
        "where status = 'replaced' order by loaded_at, file"
    ) == [
        ("web_events/2025-11-29.jsonl", "replaced", 4, 3, 1),
        ("web_events/2025-11-30.jsonl", "replaced", 2, 2, 0),
        ("web_events/2025-11-29.jsonl", "replaced", 4, 3, 1),
        ("web_events/2025-11-30.jsonl", "replaced", 2, 2, 0),
        ("web_events/2025-12-01.jsonl", "replaced", 2, 2, 0),
    ]

    # A corrected file is reloaded whole, so none of its stale rows survive.
    (platform.landing / "web_events" / "2025-11-30.jsonl").write_text(
        _event("a30", "2025-11-30T10:00:00Z", name="Home"), encoding="utf-8"
    )
    assert _run_day(platform, "2025-11-30").success
    assert platform.query(
        "select message_id, event_name from raw.web_events "
        "where _file = 'web_events/2025-11-30.jsonl'"
    ) == [("a30", "Home")]
    # The nightly run afterwards finds nothing new: the day job kept the load log current.
    assert metadata(platform.run(only=["web_events"]), "web_events")["files_unchanged"] == 4


# ------------------------------------------------------------ idempotence, replace


def test_reingesting_the_same_delivery_changes_no_table(platform: Platform) -> None:
    platform.land_good()
    platform.land("ticketing", BROKEN / "ticketing_bad_rows.csv")
    platform.run()
    data_tables = [k.table for k in KINDS.values()] + ["_quarantine"]
    before = platform.snapshot(data_tables)
    files_before = platform.snapshot(["_files"])["_files"]

    result = platform.run()

    assert platform.snapshot(data_tables) == before
    # Unchanged files (same size and mtime) are not even read, and the load log does not
    # grow by one row per old file and night.
    assert platform.snapshot(["_files"])["_files"] == files_before
    assert metadata(result, "ticketing")["files_unchanged"] == 2
    assert metadata(result, "ticketing")["rows_loaded"] == 0

    # A file touched but not changed is hashed and logged as a skipped re-send, zero rows.
    touched = platform.landing / "ticketing" / "ticketing_bad_rows.csv"
    os.utime(touched, (touched.stat().st_atime, touched.stat().st_mtime + 60))
    result = platform.run(only=["ticketing"])
    assert platform.snapshot(data_tables) == before
    files_after = platform.snapshot(["_files"])["_files"]
    assert [r for r in files_after if r[7] != "skipped_duplicate"] == files_before
    skipped = [r for r in files_after if r[7] == "skipped_duplicate"]
    assert [(r[1], r[4:7]) for r in skipped] == [("ticketing/ticketing_bad_rows.csv", (0, 0, 0))]
    assert metadata(result, "ticketing")["files_skipped"] == 1
    assert metadata(result, "ticketing")["files_unchanged"] == 1
    # ... and the next night it is unchanged again.
    platform.run(only=["ticketing"])
    assert platform.snapshot(["_files"])["_files"] == files_after


def test_corrected_file_under_the_same_name_replaces_its_rows(platform: Platform) -> None:
    platform.land("ticketing", GOOD / "ticketing" / "tickets_2025-11-29.csv", "tickets.csv")
    platform.land("ticketing", BROKEN / "ticketing_bad_rows.csv", "other.csv")
    platform.run(only=["ticketing"])
    assert platform.query(
        "select count(*) from raw.ticket_orders where _file like '%tickets.csv'"
    ) == [(4,)]
    # The bad rows file is corrected under its name too: its quarantine rows go.
    platform.land("ticketing", BROKEN / "ticketing_corrected.csv", "tickets.csv")
    platform.land("ticketing", GOOD / "ticketing" / "tickets_2025-11-29.csv", "other.csv")
    result = platform.run(only=["ticketing"])

    meta = metadata(result, "ticketing")
    assert meta["files_replaced"] == 2
    rows = platform.query(
        "select order_id, status from raw.ticket_orders where _file = 'ticketing/tickets.csv' "
        "order by _line"
    )
    assert rows == [("T-2025-118273", "terugbetaald"), ("0012345", "terugbetaald")]
    assert platform.query("select count(*) from raw._quarantine") == [(0,)]
    assert platform.query(
        "select count(*) from raw.ticket_orders where _file = 'ticketing/other.csv'"
    ) == [(4,)]
    assert checks(result, "ticketing")["files_reconcile"] is True


# ------------------------------------------------------------- broken deliveries


def test_malformed_rows_are_quarantined_with_line_and_reason(platform: Platform) -> None:
    platform.land("ticketing", BROKEN / "ticketing_bad_rows.csv")
    result = platform.run(only=["ticketing"])
    quarantine = platform.query(
        "select file, line, column_name, value, reason, raw_record from raw._quarantine "
        "order by line"
    )
    assert [(q[1], q[2], q[3]) for q in quarantine] == [
        (3, "OrderDatum", "31/11/2025 21:14"),  # no 31 November
        (4, "BedragEUR", "54.00"),  # decimal point in a decimal-comma export
        (5, "OrderNr", None),  # missing natural key
        (6, None, None),  # wrong column count
        (7, "Aantal", "twee"),  # not an integer
    ]
    assert all(q[0] == "ticketing/ticketing_bad_rows.csv" for q in quarantine)
    reasons = [q[4] for q in quarantine]
    assert "cannot convert ordered_at" in reasons[0]
    assert "cannot convert amount_eur" in reasons[1]
    assert reasons[2] == "missing required field order_id"
    assert reasons[3] == "wrong column count: expected 17, found 16"
    assert quarantine[4][5].startswith("T-5;")
    loaded = platform.query("select order_id, _line, first_name from raw.ticket_orders order by 2")
    assert loaded == [("T-1", 2, "An"), ("T-6", 8, "Zoë")]
    assert platform.query(
        "select rows_read, rows_loaded, rows_quarantined, status from raw._files"
    ) == [(7, 2, 5, "loaded")]
    assert checks(result, "ticketing") == {
        "files_reconcile": True,
        "quarantine_rate_below_threshold": False,
        "no_rejected_files": True,
        "quality_errors": True,
        "quality_warnings": True,
        "schema_drift": True,
    }


def test_quoted_line_breaks_keep_exact_line_numbers(platform: Platform) -> None:
    platform.land("registrations", BROKEN / "registrations_multiline.csv")
    platform.run(only=["registrations"])
    assert platform.query(
        "select registration_id, _line, activity_name from raw.registrations"
    ) == [("R-1", 2, "Sportkamp\nzomer")]
    # R-2 starts on physical line 4 because R-1 spans lines 2 and 3; 30 February is no date.
    assert platform.query("select line, column_name, value from raw._quarantine") == [
        (4, "participant_birth_date", "2016-02-30")
    ]


@pytest.mark.parametrize(
    ("source", "file", "offset"),
    [
        ("ticketing", "ticketing_invalid_encoding.csv", 346),
        ("registrations", "registrations_cp1252.csv", 559),
    ],
)
def test_a_file_in_the_wrong_encoding_is_rejected_whole(
    platform: Platform, source: str, file: str, offset: int | None
) -> None:
    platform.land(source, BROKEN / file)
    platform.land(source, next((GOOD / source).iterdir()))
    result = platform.run(only=[source])
    files = dict(
        (r[0], r[1:])
        for r in platform.query("select file, status, message, rows_read from raw._files")
    )
    status, message, rows_read = files[f"{source}/{file}"]
    assert status == "rejected" and rows_read == 0
    assert f"{source}/{file}" in message and "byte offset" in message
    if offset is not None:
        assert f"byte offset {offset}" in message
    # Nothing of it is loaded (no replacement characters), the good file still is.
    table = KINDS[load_sources_config_by_name()[source].kind].table
    assert platform.query(
        f"select count(*) from raw.{table} where _file = ?", [f"{source}/{file}"]
    ) == [(0,)]
    assert platform.query(f"select count(*) from raw.{table}")[0][0] > 0
    assert checks(result, source)["no_rejected_files"] is False
    assert metadata(result, source)["files_rejected"] == 1


def load_sources_config_by_name() -> dict[str, SourceConfig]:
    return {s.name: s for s in load_sources_config()}


def test_header_only_and_empty_files_load_zero_rows(platform: Platform) -> None:
    platform.land("ticketing", BROKEN / "ticketing_header_only.csv")
    (platform.landing / "web_events").mkdir()
    (platform.landing / "web_events" / "2025-12-01.jsonl").write_bytes(b"")
    result = platform.run(only=["ticketing", "web_events"])
    assert result.success
    assert platform.query("select source, status, rows_read from raw._files order by 1") == [
        ("ticketing", "loaded", 0),
        ("web_events", "loaded", 0),
    ]
    assert metadata(result, "ticketing")["dagster/row_count"] == 0


def test_missing_required_column_rejects_the_file_other_sources_load(platform: Platform) -> None:
    platform.land("app_devices", BROKEN / "app_devices_missing_required.csv")
    platform.land("ticketing", GOOD / "ticketing" / "tickets_2025-11-29.csv")
    result = platform.run(only=["app_devices", "ticketing"])
    assert result.success
    status, message = platform.query(
        "select status, message from raw._files where source = 'app_devices'"
    )[0]
    assert status == "rejected"
    assert "app_devices/app_devices_missing_required.csv" in message and "device_id" in message
    assert platform.query("select count(*) from raw.app_devices") == [(0,)]
    assert platform.query("select count(*) from raw.ticket_orders") == [(4,)]


# ----------------------------------------------------------- sources are config


def test_a_second_ticket_shop_needs_only_a_config_entry(platform: Platform, tmp_path: Path) -> None:
    config = yaml.safe_load(DEFAULT_SOURCES_PATH.read_text(encoding="utf-8"))
    config["sources"].append(
        {
            "name": "ticketing_shop2",
            "kind": "ticket_order",
            "description": "Ticket sales of the second shop.",
            "file_glob": "orders_*.csv",
            "format": "csv",
            "encoding": "utf-8",
            "delimiter": ",",
            "datetime_format": "iso8601",
            "columns": {
                "order_ref": "order_id",
                "created": "ordered_at",
                "sales_channel": "channel",
                "buyer_first": "first_name",
                "buyer_last": "last_name",
                "buyer_email": "email",
                "amount": "amount_eur",
                "qty": "quantity",
                "show_id": "event_id",
                "show": "event_name",
                "show_start": "performance_at",
                "state": "status",
            },
        }
    )
    path = tmp_path / "sources.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")

    sources = load_sources_config(path)
    assert sources_by_kind(path)["ticket_order"] == ["ticketing", "ticketing_shop2"]
    platform.land("ticketing", GOOD / "ticketing" / "tickets_2025-11-29.csv")
    platform.land("ticketing_shop2", DELIVERIES / "shop2" / "orders_2025-10-26.csv")
    result = platform.run(sources=[s for s in sources if s.kind == "ticket_order"])

    assert platform.query(
        "select _source, count(*) from raw.ticket_orders group by 1 order by 1"
    ) == [("ticketing", 4), ("ticketing_shop2", 2)]
    rows = platform.query(
        "select order_id, ordered_at, first_name, amount_eur, quantity, performance_at, venue "
        "from raw.ticket_orders where _source = 'ticketing_shop2' order by _line"
    )
    # 02:30 on 26 October 2025 happens twice in Brussels; ICU takes the later (CET) one.
    assert rows[0] == (
        "S2-0001",
        datetime(2025, 10, 26, 1, 30),
        "Ayşe",
        Decimal("12.50"),
        1,
        datetime(2025, 10, 26, 19, 0),
        None,  # venue is not delivered by this shop: null
    )
    assert rows[1][1] == datetime(2025, 10, 26, 1, 30)
    message = platform.query("select message from raw._files where source = 'ticketing_shop2'")[0][
        0
    ]
    assert "extra_note" in message  # an unmapped column is reported
    assert "Locatie" not in message
    assert metadata(result, "ticketing_shop2")["dagster/row_count"] == 2


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"kind": "ticket"}, ["'ticketing'", "'kind'", "ticket_order"]),
        ({"encoding": "latin-1"}, ["'ticketing'", "'encoding'", "'cp1252'"]),
        ({"format": "xml"}, ["'ticketing'", "'format'", "'csv'", "'jsonl'"]),
        ({"timezone": "Europe/Antwerp"}, ["'ticketing'", "'timezone'"]),
        ({"columns": {"OrderNr": "order_nr"}}, ["'ticketing'", "order_nr", "allowed"]),
        ({"columns": {"Kanaal": "channel"}}, ["'ticketing'", "order_id", "not mapped"]),
        ({"colums": {}}, ["'ticketing'", "colums"]),
    ],
)
def test_config_errors_name_the_source_key_and_allowed_values(
    tmp_path: Path, change: dict, expected: list[str]
) -> None:
    config = yaml.safe_load(DEFAULT_SOURCES_PATH.read_text(encoding="utf-8"))
    entry = next(s for s in config["sources"] if s["name"] == "ticketing")
    entry.update(change)
    path = tmp_path / "sources.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_sources_config(path)
    for fragment in expected:
        assert fragment in str(err.value)


def test_definitions_one_asset_per_source_with_checks() -> None:
    assert sources_by_kind() == {
        "citizen_account": ["aprofiel"],
        "ticket_order": ["ticketing"],
        "registration": ["registrations"],
        "newsletter_contact": ["newsletter"],
        "email_event": ["email_events"],
        "web_event": ["web_events"],
        "app_device": ["app_devices"],
        "consent_event": ["consents"],
        "privacy_request": ["privacy_requests"],
    }
    # The root code location binds the resources; bind them here the same way.
    resources = dg.Definitions(
        resources={"warehouse": WarehouseResource(), "landing": LandingResource()}
    )
    graph = dg.Definitions.merge(defs, resources).resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {f"raw/{s}" for s in SOURCE_NAMES}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.group_name == "ingest"
        assert node.description
    check_names = {c.name for c in graph.asset_check_keys}
    assert check_names == {
        "files_reconcile",
        "quarantine_rate_below_threshold",
        "no_rejected_files",
        "quality_errors",
        "quality_warnings",
        "schema_drift",
    }
    blocking = {c.name for c in graph.asset_check_keys if graph.get_check_spec(c).blocking}
    assert blocking == {"files_reconcile", "quality_errors"}


def test_bad_values_in_a_well_formed_file_take_the_fast_path(platform: Platform) -> None:
    """No structural damage: DuckDB loads in one pass, the failing rows are found by line."""
    platform.land("ticketing", BROKEN / "ticketing_bad_values.csv")
    result = platform.run(only=["ticketing"])
    assert platform.query("select line, column_name, value from raw._quarantine order by 1") == [
        (3, "OrderDatum", "29/11/2025 25:14"),  # no hour 25
        (4, "BedragEUR", "54,005"),  # money has cents: refused, not rounded
    ]
    assert platform.query(
        "select order_id, _line, amount_eur from raw.ticket_orders order by 2"
    ) == [
        ("T-11", 2, Decimal("54.00")),
        ("T-14", 5, Decimal("1.50")),
    ]
    meta = metadata(result, "ticketing")
    assert (meta["rows_read"], meta["rows_loaded"], meta["rows_quarantined"]) == (4, 2, 2)
    assert checks(result, "ticketing")["files_reconcile"] is True
