"""The bad-input corpus (tests/data/broken/), quality checks, re-processing and drift.

One Dagster run loads the whole corpus (each file in the landing folder of the source
its name starts with); every case then asserts on its own file: the run finished, the
good rows loaded, the bad rows sit in raw._quarantine with file, line, column, value and
reason, and the counts reconcile.
"""

import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from cdp_pipeline.ingest.config import load_sources_config
from cdp_pipeline.ingest.definitions import build_ingest_assets
from cdp_pipeline.ingest.loader import (
    _local_date,
    _Params,
    _to_utc,
    _tz_transitions,
    ingest_source,
    reprocess_quarantine,
)
from cdp_pipeline.ingest.quality import Expectation, Suite, UniqueKey, run_quality
from cdp_pipeline.resources import LandingResource, WarehouseResource

CORPUS = Path(__file__).parent / "data" / "broken"
GOOD = Path(__file__).parent / "data" / "deliveries" / "good"
SOURCES = {s.name: s for s in load_sources_config()}
# Per raw table, the column that names a row in the assertions.
KEY = {
    "ticket_orders": "order_id",
    "newsletter_contacts": "email",
    "app_devices": "device_id",
    "privacy_requests": "request_id",
    "consent_events": "subject_id",
    "email_events": "event_type",
}


def source_of(file: str) -> str:
    return next(n for n in sorted(SOURCES, key=len, reverse=True) if file.startswith(n + "_"))


@dataclass(frozen=True)
class Case:
    file: str
    status: str = "loaded"
    loaded: list[str] = field(default_factory=list)
    # (line, column, value, fragment of the reason)
    quarantined: list[tuple[int, str | None, str | None, str]] = field(default_factory=list)
    message: list[str] = field(default_factory=list)


CASES = [
    Case(
        "ticketing_utf8_declared_cp1252.csv",
        loaded=["T-1", "T-2"],
        message=["declared cp1252 but the file is UTF-8"],
    ),
    Case(
        "newsletter_cp1252_declared_utf8.csv",
        status="rejected",
        message=["not valid utf-8 at byte offset 161", "Windows-1252", "nothing loaded"],
    ),
    Case("newsletter_utf16.csv", status="rejected", message=["UTF-16", "nothing loaded"]),
    Case(
        "newsletter_truncated_last_line.csv",
        loaded=["an@example.org", "jan@example.org"],
        quarantined=[(4, None, None, "wrong column count: expected 8, found 3 (last line")],
    ),
    Case(
        "email_events_truncated_last_line.jsonl",
        loaded=["open"],
        quarantined=[(2, None, None, "invalid JSON")],
    ),
    Case(
        "newsletter_stray_quotes.csv",
        # A quote inside an unquoted field is kept as delivered; an unclosed one costs
        # its own line only, the line after it still loads.
        loaded=["an@example.org", "jan@example.org", "els@example.org"],
        quarantined=[(4, None, None, "unbalanced quote")],
    ),
    Case("ticketing_bom_unexpected.csv", loaded=["T-1", "T-2"], message=["BOM"]),
    Case("newsletter_bom.csv", loaded=["an@example.org"]),
    Case("app_devices_leading_zeros.csv", loaded=["000123", "0042"]),
    Case("newsletter_empty.csv", message=["empty file"]),
    Case("newsletter_header_only.csv"),
    Case(
        "privacy_requests_extra_column.csv",
        loaded=["PR-1", "PR-2"],
        message=["unmapped column(s) kept in _extra: channel"],
    ),
    Case(
        "privacy_requests_missing_optional.csv",
        loaded=["PR-1"],
        message=["optional column(s) missing, loaded as null: received_at"],
    ),
    Case(
        "privacy_requests_renamed_required.csv",
        status="rejected",
        message=["'request_id' looks renamed to 'requestId'", "file rejected"],
    ),
    Case(
        "consents_one_invalid_line.jsonl",
        loaded=["ap-000913", "y@example.org"],
        quarantined=[(2, None, None, "invalid JSON")],
    ),
    Case(
        "ticketing_iso_date_where_ddmm.csv",
        loaded=["T-1", "T-3"],
        quarantined=[
            (3, "OrderDatum", "2025-11-29 21:14", "cannot convert ordered_at to timestamp "),
        ],
    ),
    Case(
        "ticketing_31_february.csv",
        loaded=["T-1"],
        quarantined=[(3, "OrderDatum", "31/02/2025 10:00", "(expected %d/%m/%Y %H:%M)")],
    ),
    Case(
        # Real Windows-1252: '€', '’', '“', 'Œ' are bytes 0x80-0x9F, where Latin-1 differs.
        "ticketing_cp1252_euro_and_quotes.csv",
        loaded=["T-1", "T-3"],
        quarantined=[(3, "BedragEUR", "€ 54", "cannot convert amount_eur to decimal")],
    ),
    Case(
        "ticketing_cp1252_undefined_byte.csv",
        status="rejected",
        message=["not valid cp1252 at byte offset 357 (byte 0x81)", "nothing loaded"],
    ),
    Case(
        # Blank lines and CRLF endings: the lines after them keep their physical numbers.
        "email_events_blank_lines_and_wrong_date.jsonl",
        loaded=["open", "bounce"],
        quarantined=[(3, "ts", "28/11/2025 19:02", "cannot convert occurred_at to timestamp")],
    ),
    Case(
        "email_events_wrong_date_format.jsonl",
        loaded=["sent", "unsubscribe"],
        quarantined=[(2, "ts", "28-11-2025 08:30", "cannot convert occurred_at to timestamp")],
        message=["unmapped field(s) kept in _extra: reason"],
    ),
    Case("ticketing_dst_spring_forward.csv", loaded=["T-1", "T-2", "T-3"]),
    Case("ticketing_dst_fall_back.csv", loaded=["T-1", "T-2", "T-3", "T-4"]),
]


def test_every_corpus_file_has_a_case() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(c.file for c in CASES)


def _materialize(
    landing: Path,
    warehouse: Path,
    only: list[str] | None = None,
    extra_assets: list | None = None,
    run_config: dict | None = None,
) -> dg.ExecuteInProcessResult:
    sources = [s for s in SOURCES.values() if only is None or s.name in only]
    return dg.materialize(
        [*build_ingest_assets(sources), *(extra_assets or [])],
        resources={
            "warehouse": WarehouseResource(database=str(warehouse)),
            "landing": LandingResource(directory=str(landing)),
        },
        run_config=run_config,
        raise_on_error=False,
    )


@dataclass
class CorpusRun:
    result: dg.ExecuteInProcessResult
    warehouse: Path

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        con = duckdb.connect(str(self.warehouse), read_only=True)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> CorpusRun:
    root = tmp_path_factory.mktemp("corpus")
    landing = root / "landing"
    for case in CASES:
        target = landing / source_of(case.file) / case.file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(CORPUS / case.file, target)
    # A healthy source next to the broken ones: it must load whatever they do.
    (landing / "registrations").mkdir()
    for f in (GOOD / "registrations").iterdir():
        shutil.copyfile(f, landing / "registrations" / f.name)
    warehouse = root / "cdp.duckdb"
    result = _materialize(landing, warehouse)
    return CorpusRun(result, warehouse)


@pytest.mark.parametrize("case", CASES, ids=[c.file for c in CASES])
def test_broken_delivery(corpus_run: CorpusRun, case: Case) -> None:
    # The run finishes: every source step succeeded, nothing blocked.
    assert corpus_run.result.success
    source = SOURCES[source_of(case.file)]
    table = source.kind_def.table
    rel = f"{source.name}/{case.file}"
    files = corpus_run.query(
        "select status, rows_read, rows_loaded, rows_quarantined, message from raw._files "
        "where file = ?",
        [rel],
    )
    assert len(files) == 1, files
    status, rows_read, rows_loaded, rows_quarantined, message = files[0]
    assert status == case.status, message
    for fragment in case.message:
        assert fragment in (message or ""), message

    loaded = [
        r[0]
        for r in corpus_run.query(
            f"select {KEY[table]} from raw.{table} where _file = ? order by _line", [rel]
        )
    ]
    assert loaded == case.loaded
    quarantine = corpus_run.query(
        "select line, column_name, value, reason, raw_record from raw._quarantine "
        "where file = ? order by line",
        [rel],
    )
    assert [q[:3] for q in quarantine] == [q[:3] for q in case.quarantined]
    for got, want in zip(quarantine, case.quarantined, strict=True):
        assert want[3] in got[3], got[3]
        assert got[4], "the raw record is kept for re-processing"
    # Counts reconcile: with the log, and the log with the tables.
    assert rows_read == rows_loaded + rows_quarantined
    assert (rows_loaded, rows_quarantined) == (len(loaded), len(quarantine))


def test_corpus_run_keeps_healthy_sources_and_flags_drift(corpus_run: CorpusRun) -> None:
    assert corpus_run.query("select count(*) from raw.registrations") == [(2,)]
    evaluations = {
        (e.asset_key.path[-1], e.check_name): e
        for e in corpus_run.result.get_asset_check_evaluations()
    }
    drift = evaluations[("privacy_requests", "schema_drift")]
    assert drift.passed is False and drift.severity == dg.AssetCheckSeverity.WARN
    text = drift.metadata["drift"].value
    assert "channel" in text and "received_at" in text
    assert evaluations[("privacy_requests", "no_rejected_files")].passed is False
    assert evaluations[("newsletter", "files_reconcile")].passed is True
    # The unknown column is kept, per record, as JSON.
    assert corpus_run.query(
        "select request_id, _extra->>'$.channel' from raw.privacy_requests "
        "where _file like '%extra_column%' order by _line"
    ) == [("PR-1", "webform"), ("PR-2", None)]


def test_windows_1252_characters_arrive_as_themselves(corpus_run: CorpusRun) -> None:
    rel = "ticketing/ticketing_cp1252_euro_and_quotes.csv"
    assert corpus_run.query(
        "select first_name, last_name, event_name from raw.ticket_orders where _file = ? "
        "order by _line",
        [rel],
    ) == [
        ("Hélène", "D’Hondt", "Rock’n’roll – € 5 korting"),
        ("Zoë", "Œzdemir", "“Jazz” in de Singel"),
    ]
    # The quarantined record keeps its raw text, decoded as Windows-1252 too.
    raw = corpus_run.query("select raw_record from raw._quarantine where file = ?", [rel])
    assert raw[0][0].startswith("T-2;") and "€ 54" in raw[0][0]


def test_dst_nights_follow_the_documented_rule(corpus_run: CorpusRun) -> None:
    """Brussels local times -> UTC on the two DST nights of 2025.

    30 March: 02:00-03:00 does not exist; 02:30 is read with the offset before the change
    (+01:00), i.e. 01:30 UTC. 26 October: 02:00-03:00 happens twice; the delivery cannot
    tell which, and both 02:30 orders take the later, standard-time reading (01:30 UTC).
    """
    rows = dict(
        corpus_run.query(
            "select order_id || '@' || split_part(_file, '_dst_', 2), ordered_at "
            "from raw.ticket_orders where _file like '%_dst_%'"
        )
    )
    assert rows["T-1@spring_forward.csv"] == datetime(2025, 3, 30, 0, 59)
    assert rows["T-2@spring_forward.csv"] == datetime(2025, 3, 30, 1, 30)
    assert rows["T-3@spring_forward.csv"] == datetime(2025, 3, 30, 1, 0)
    assert rows["T-1@fall_back.csv"] == datetime(2025, 10, 25, 23, 59)
    assert rows["T-2@fall_back.csv"] == rows["T-3@fall_back.csv"] == datetime(2025, 10, 26, 1, 30)
    assert rows["T-4@fall_back.csv"] == datetime(2025, 10, 26, 2, 0)


@pytest.mark.parametrize("zone", ["Europe/Brussels", "America/New_York", "Asia/Kolkata"])
def test_offset_lookups_agree_with_icu_on_every_change(zone: str) -> None:
    """The yearly offset tables give what DuckDB's ICU timezone() gives, both ways.

    Every offset change from 1970 to 2100 is probed one second either side and on the
    second itself, in UTC (UTC -> local day, ``event_date``) and in wall time (local ->
    UTC, including the gap and the repeated hour), plus years outside the tables.
    """
    table = _tz_transitions(zone)
    assert table is not None
    walls: list[datetime] = []
    for key, offsets in (("b1", "o1"), ("b2", "o2")):
        for wall, offset in zip(table[key], table[offsets], strict=True):
            for shift in (-3601, -1, 0, 1, 1800, 3601):
                walls.append(wall + timedelta(seconds=shift))
                walls.append(wall - timedelta(seconds=offset - shift))  # the UTC instant
    walls += [datetime(1969, 7, 1, 12), datetime(2101, 7, 1, 12), datetime(2025, 12, 31, 23, 30)]
    con = duckdb.connect()
    con.execute("create table t (ts timestamp)")
    con.executemany("insert into t values (?)", [[w] for w in walls])
    p = _Params()
    to_utc, day = _to_utc("ts", zone, p), _local_date("ts", zone, p)
    z = p.bind(zone)
    mismatches = con.execute(
        f"select ts, {to_utc}, timezone('UTC', timezone({z}, ts)), {day}, "
        f"cast(timezone({z}, timezone('UTC', ts)) as date) from t "
        f"where {to_utc} is distinct from timezone('UTC', timezone({z}, ts)) "
        f"or {day} is distinct from cast(timezone({z}, timezone('UTC', ts)) as date)",
        p.values,
    ).fetchall()
    assert mismatches == []


@pytest.mark.parametrize("preserve_insertion_order", [True, False])
def test_line_numbers_follow_the_file_on_a_parallel_read(
    tmp_path: Path, preserve_insertion_order: bool
) -> None:
    """Line numbers come from the scan order of a parallel read, whatever the connection.

    200,000 records span several DuckDB scan chunks, read on several threads; with
    ``preserve_insertion_order = false`` DuckDB writes them in whatever order the threads
    finish (most of 300,000 CSV rows came out of place when measured), so the loader must
    insist on the order for its numbering, and leave the setting as it found it.
    """
    rows = 200_000
    landing = tmp_path / "landing"
    (landing / "ticketing").mkdir(parents=True)
    (landing / "web_events").mkdir(parents=True)
    header = (
        "OrderNr;OrderDatum;Kanaal;KlantVoornaam;KlantNaam;KlantEmail;KlantTelefoon;"
        "KlantPostcode;AProfielId;EvenementId;Evenement;Locatie;Categorie;VoorstellingDatum;"
        "Aantal;BedragEUR;Status\n"
    )
    (landing / "ticketing" / "t.csv").write_text(
        header
        + "".join(
            f"T-{i};29/11/2025 21:14;web;An;Peeters;an.{i}@example.org;;2000;;EV-1;Jazz;"
            f"De Singel;concert;13/12/2025 20:00;1;54,00;betaald\n"
            for i in range(rows)
        ),
        encoding="cp1252",
    )
    (landing / "web_events" / "2025-11-29.jsonl").write_text(
        "".join(
            f'{{"messageId": "m-{i}", "type": "page", "anonymousId": "a-{i}", '
            f'"name": "Agenda", "timestamp": "2025-11-29T10:00:00.000Z"}}\n'
            for i in range(rows)
        )
    )
    con = duckdb.connect()
    con.execute(f"set preserve_insertion_order = {str(preserve_insertion_order).lower()}")
    for source in ("ticketing", "web_events"):
        assert ingest_source(con, SOURCES[source], landing).total("rows_loaded") == rows
    misplaced = con.execute(
        "select (select count(*) from raw.ticket_orders "
        "where cast(substr(order_id, 3) as bigint) <> _line - 2), "
        "(select count(*) from raw.web_events "
        "where cast(substr(message_id, 3) as bigint) <> _line - 1)"
    ).fetchall()
    assert misplaced == [(0, 0)]
    setting = con.execute("select current_setting('preserve_insertion_order')").fetchall()
    assert setting == [(preserve_insertion_order,)]


# ------------------------------------------------------------------ re-processing


def test_reprocess_quarantine_after_a_config_fix_and_after_a_file_fix(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    (landing / "ticketing").mkdir(parents=True)
    shutil.copyfile(GOOD / "ticketing" / "tickets_2025-11-29.csv", landing / "ticketing" / "a.csv")
    shutil.copyfile(CORPUS / "ticketing_iso_date_where_ddmm.csv", landing / "ticketing" / "b.csv")
    wrong = SOURCES["ticketing"].model_copy(update={"decimal_separator": "."})
    con = duckdb.connect(str(tmp_path / "cdp.duckdb"))
    ingest_source(con, wrong, landing)
    # '54,00' does not convert with a '.' separator: every row of both files is quarantined.
    before = dict(con.execute("select file, count(*) from raw._quarantine group by 1").fetchall())
    assert before == {"ticketing/a.csv": 4, "ticketing/b.csv": 3}

    fixed = SOURCES["ticketing"]
    out = reprocess_quarantine(con, fixed, landing, file="a.csv")
    assert out.released == {"ticketing/a.csv": 4}
    assert con.execute(
        "select count(*) from raw.ticket_orders where _file like '%a.csv'"
    ).fetchall() == [(4,)]

    # b.csv still has its iso date: config-fixed amounts load, the date row stays.
    out = reprocess_quarantine(con, fixed, landing)
    assert out.released == {"ticketing/b.csv": 2} and out.still_quarantined == {
        "ticketing/b.csv": 1
    }
    # The export is corrected under the same name: the last row leaves the quarantine.
    (landing / "ticketing" / "b.csv").write_bytes(
        (CORPUS / "ticketing_iso_date_where_ddmm.csv")
        .read_bytes()
        .replace(b"2025-11-29 21:14", b"29/11/2025 21:14")
    )
    out = reprocess_quarantine(con, fixed, landing)
    assert out.released == {"ticketing/b.csv": 1}
    assert con.execute("select count(*) from raw._quarantine").fetchall() == [(0,)]
    assert con.execute(
        "select file, status, rows_read, rows_loaded, rows_quarantined from raw._files "
        "order by loaded_at desc limit 1"
    ).fetchall() == [("ticketing/b.csv", "replaced", 3, 3, 0)]
    assert con.execute("select count(*) from raw.ticket_orders").fetchall() == [(7,)]
    con.close()


def test_web_events_day_range_is_reprocessed_by_run_config(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    (landing / "web_events").mkdir(parents=True)
    day = (GOOD / "web_events" / "2025-11-29.jsonl").read_text(encoding="utf-8")
    for d in ("2025-11-28", "2025-11-29", "2025-11-30"):
        (landing / "web_events" / f"{d}.jsonl").write_text(
            day.replace("m-5b", f"m-{d[-2:]}"), encoding="utf-8"
        )
    warehouse = tmp_path / "cdp.duckdb"
    assert _materialize(landing, warehouse, only=["web_events"]).success
    config = {
        "ops": {
            "raw__web_events": {
                "config": {"reprocess_from_day": "2025-11-29", "reprocess_to_day": "2025-11-30"}
            }
        }
    }
    result = _materialize(landing, warehouse, only=["web_events"], run_config=config)
    assert result.success
    con = duckdb.connect(str(warehouse), read_only=True)
    log = con.execute("select file, status from raw._files order by loaded_at, file").fetchall()
    rows = con.execute("select count(*), count(distinct message_id) from raw.web_events").fetchall()
    # The day of a row is the Brussels day of its event, not of the file it came in: the
    # 30th's file holds events of the 29th and one of 23:30 UTC, already the 30th.
    days = con.execute(
        "select distinct event_date::varchar from raw.web_events "
        "where _file = 'web_events/2025-11-30.jsonl' order by 1"
    ).fetchall()
    con.close()
    assert days == [("2025-11-29",), ("2025-11-30",)]
    assert log[3:] == [
        ("web_events/2025-11-29.jsonl", "replaced"),
        ("web_events/2025-11-30.jsonl", "replaced"),
    ]
    assert rows == [(12, 12)]  # nothing doubled


# --------------------------------------------------------------------- quality


def _tickets(rows: list[tuple[str, str, str]]) -> bytes:
    header = (
        "OrderNr;OrderDatum;Kanaal;KlantVoornaam;KlantNaam;KlantEmail;KlantTelefoon;"
        "KlantPostcode;AProfielId;EvenementId;Evenement;Locatie;Categorie;VoorstellingDatum;"
        "Aantal;BedragEUR;Status\n"
    )
    body = "".join(
        f"{nr};29/11/2025 21:14;web;An;Peeters;an@example.org;;2000;;EV-1;Jazz;De Singel;"
        f"concert;13/12/2025 20:00;{qty};{amount};betaald\n"
        for nr, qty, amount in rows
    )
    return (header + body).encode("cp1252")


def test_an_error_rule_blocks_downstream_of_its_source_only(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    (landing / "ticketing").mkdir(parents=True)
    (landing / "newsletter").mkdir(parents=True)
    # 99 tickets in one order and a repeated order number: error rules of the suite.
    (landing / "ticketing" / "t.csv").write_bytes(
        _tickets([("T-1", "2", "54,00"), ("T-2", "99", "10,00"), ("T-2", "1", "5,00")])
    )
    shutil.copyfile(
        GOOD / "newsletter" / "contacts_2025-12-01.csv", landing / "newsletter" / "c.csv"
    )

    @dg.asset(deps=[dg.AssetKey(["raw", "ticketing"])])
    def revenue() -> None:
        """Stands for dbt and the exports downstream of ticketing."""

    @dg.asset(deps=[dg.AssetKey(["raw", "newsletter"])])
    def subscribers() -> None:
        """Downstream of another source only."""

    result = _materialize(
        landing,
        tmp_path / "cdp.duckdb",
        only=["ticketing", "newsletter"],
        extra_assets=[revenue, subscribers],
    )
    assert not result.success
    materialized = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    # The raw data is loaded and recorded; only what reads it is held back.
    assert materialized == {"raw/ticketing", "raw/newsletter", "subscribers"}
    evaluation = next(
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "quality_errors" and e.asset_key.path[-1] == "ticketing"
    )
    assert evaluation.passed is False and evaluation.blocking
    rules = evaluation.metadata["rules"].value
    assert "quantity between in [1.0, 50.0] | NO" in rules and "99" in rules
    assert "unique (order_id) per file" in rules and "T-2 x2" in rules


def test_volume_against_the_previous_delivery_warns(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    (landing / "ticketing").mkdir(parents=True)
    (landing / "ticketing" / "t1.csv").write_bytes(
        _tickets([(f"T-{i}", "1", "5,00") for i in range(200)])
    )
    warehouse = tmp_path / "cdp.duckdb"
    assert _materialize(landing, warehouse, only=["ticketing"]).success
    (landing / "ticketing" / "t2.csv").write_bytes(
        _tickets([(f"T-{i}", "1", "5,00") for i in range(1000, 1050)])
    )
    result = _materialize(landing, warehouse, only=["ticketing"])
    assert result.success  # a warning does not block
    evaluation = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "quality_warnings"
    )
    assert evaluation.passed is False
    assert "ticketing/t2.csv: 50 rows vs 200" in evaluation.metadata["rules"].value


def test_large_deliveries_are_validated_on_a_sample_and_say_so(tmp_path: Path) -> None:
    con = duckdb.connect()
    landing = tmp_path / "landing"
    (landing / "ticketing").mkdir(parents=True)
    (landing / "ticketing" / "t.csv").write_bytes(
        _tickets([(f"T-{i}", "1", "5,00") for i in range(500)] + [("T-7", "1", "5,00")])
    )
    loaded_at = datetime.now(UTC).replace(tzinfo=None)
    ingest_source(con, SOURCES["ticketing"], landing, loaded_at=loaded_at)
    suite = Suite(
        sample_rows=50,
        expectations=[Expectation(type="between", column="quantity", min=1, max=50)],
        unique=[UniqueKey(columns=["order_id"])],
    )
    report = run_quality(con, SOURCES["ticketing"], loaded_at, suite)
    assert (report.rows_in_run, report.rows_validated, report.sampled) == (501, 50, True)
    # Uniqueness runs on every row: the one repeat is found although the sample is 10%.
    unique = next(o for o in report.outcomes if o.rule.startswith("unique"))
    assert not unique.passed and unique.unexpected == ["ticketing/t.csv: T-7 x2"]
