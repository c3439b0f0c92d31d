"""The nightly job end to end on a generated delivery: contract tables, idempotence, syncs."""

import csv
import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from cdp_pipeline.identity.evaluation import pairwise_scores
from cdp_pipeline.runner import NightlyOutcome, run_nightly
from tests.conftest import NightlyWorkspace

pytestmark = pytest.mark.slow

# Measured on this sample (400 people, seed 11): precision 1.000, recall 0.683. The floors
# sit just under them so that a regression fails. Recall is held back by box-office buyers
# known by name and postcode only and by visitors who never log in (issue 4 raises it).
MIN_PRECISION = 0.99
MIN_RECALL = 0.66

CONTRACT_COLUMNS = {
    "profiles": {"profile_id"},
    "profile_records": {"source", "record_key", "role", "profile_id"},
    "segment_members": {"segment", "profile_id", "entered_at", "exited_at"},
}


def _table_digest(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> tuple[int, str]:
    columns = [
        row[0]
        for row in con.execute(
            "select column_name from information_schema.columns"
            " where table_schema = ? and table_name = ? order by ordinal_position",
            [schema, table],
        ).fetchall()
        # Load times and run ids legitimately differ between two runs of the same delivery.
        if row[0] not in {"_loaded_at", "run_id", "assigned_at", "quarantined_at", "loaded_at"}
    ]
    quoted = ", ".join(f'"{column}"' for column in columns)
    return con.execute(
        f"select count(*), coalesce(md5(string_agg(row_text, '\n' order by row_text)), '')"
        f' from (select cast(row({quoted}) as varchar) as row_text from "{schema}"."{table}")'
    ).fetchone()


def _digests(warehouse: Path, schemas: tuple[str, ...]) -> dict[str, tuple[int, str]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_schema in (select unnest(?::varchar[])) and table_type = 'BASE TABLE'",
            [list(schemas)],
        ).fetchall()
        return {f"{schema}.{table}": _table_digest(con, schema, table) for schema, table in tables}


@pytest.fixture(scope="module")
def first_night(
    nightly_workspace: NightlyWorkspace, dagster_instance: dg.DagsterInstance
) -> NightlyOutcome:
    outcome = run_nightly(instance=dagster_instance)
    assert outcome.success
    return outcome


def test_contract_tables_exist_with_their_columns(
    nightly_workspace: NightlyWorkspace, first_night: NightlyOutcome
) -> None:
    with duckdb.connect(str(nightly_workspace.warehouse), read_only=True) as con:
        for table, expected in CONTRACT_COLUMNS.items():
            columns = {
                row[0]
                for row in con.execute(
                    "select column_name from information_schema.columns"
                    " where table_schema = 'marts' and table_name = ?",
                    [table],
                ).fetchall()
            }
            assert expected <= columns, table
        (orphans,) = con.execute(
            "select count(*) from marts.profile_records"
            " where profile_id not in (select profile_id from marts.profiles)"
        ).fetchone()
        assert orphans == 0


def _closed_accounts(landing: Path) -> set[str]:
    closed = set()
    for path in (landing / "aprofiel").glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            account = json.loads(line)
            if account["status"] == "deleted":
                closed.add(f"aprofiel|account|{account['account_id']}")
    return closed


def _erased_people(landing: Path) -> set[str]:
    erasures = set()
    for path in (landing / "privacy_requests").glob("*.csv"):
        with open(path, encoding="utf-8") as handle:
            erasures |= {
                row["request_id"] for row in csv.DictReader(handle) if row["type"] == "erasure"
            }
    with open(landing / "_truth" / "privacy_requests.csv", encoding="utf-8") as handle:
        return {row["person_id"] for row in csv.DictReader(handle) if row["request_id"] in erasures}


def test_every_person_record_is_unified_and_scored_against_truth(
    nightly_workspace: NightlyWorkspace, first_night: NightlyOutcome
) -> None:
    with open(nightly_workspace.landing / "_truth" / "records.csv", encoding="utf-8") as handle:
        truth = {
            f"{row['source']}|{row['role']}|{row['record_key']}": row["person_id"]
            for row in csv.DictReader(handle)
        }
    # A closed A-profiel account is not used for unification (the person left the service),
    # and the delivery's own erasure requests are carried out on the first night.
    closed = _closed_accounts(nightly_workspace.landing)
    erased = _erased_people(nightly_workspace.landing)
    assert closed and erased
    with duckdb.connect(str(nightly_workspace.warehouse), read_only=True) as con:
        predicted = dict(
            con.execute(
                "select source || '|' || role || '|' || record_key, profile_id"
                " from marts.profile_records"
            ).fetchall()
        )
    # Every true person-bearing record has a profile, and nothing else does.
    assert set(predicted) <= set(truth)
    missing = set(truth) - set(predicted)
    assert {truth[record] for record in missing - closed} <= erased
    precision, recall, f1 = pairwise_scores(
        predicted, {record: truth[record] for record in predicted}
    )
    assert precision >= MIN_PRECISION, (precision, recall, f1)
    assert recall >= MIN_RECALL, (precision, recall, f1)


def test_placeholder_emails_never_join_strangers(
    nightly_workspace: NightlyWorkspace, first_night: NightlyOutcome
) -> None:
    with open(nightly_workspace.landing / "_truth" / "records.csv", encoding="utf-8") as handle:
        truth = {
            (row["source"], row["record_key"], row["role"]): row["person_id"]
            for row in csv.DictReader(handle)
        }
    with duckdb.connect(str(nightly_workspace.warehouse), read_only=True) as con:
        rows = con.execute(
            """
            select records.source, records.record_key, records.role, records.profile_id
            from marts.profile_records as records
            inner join raw.ticket_orders as orders
                on records.source = orders._source and records.record_key = orders.order_id
            where lower(trim(orders.email)) in ('test@test.be', 'geen@email.be', 'x@x.x')
            """
        ).fetchall()
        assert rows, "the sample must carry placeholder e-mails"
        profiles = {profile for *_, profile in rows}
        for profile in profiles:
            members = con.execute(
                "select source, record_key, role from marts.profile_records where profile_id = ?",
                [profile],
            ).fetchall()
            assert len({truth[tuple(member)] for member in members}) == 1


def test_segments_have_members_and_exports_are_consented(
    nightly_workspace: NightlyWorkspace, first_night: NightlyOutcome
) -> None:
    with duckdb.connect(str(nightly_workspace.warehouse), read_only=True) as con:
        sizes = dict(
            con.execute(
                "select segment, count(*) from marts.segment_members"
                " where exited_at is null group by segment"
            ).fetchall()
        )
        hand_written = (
            "culture_lapsed_buyers",
            "newsletter_clickers_no_purchase",
            "sport_camp_families",
        )
        assert all(sizes.get(segment, 0) > 0 for segment in hand_written), sizes
        granted = {
            row[0]
            for row in con.execute(
                "select profile_id from marts.consent_state"
                " where purpose = 'email_marketing' and status = 'granted'"
            ).fetchall()
        }
    assert first_night.synced, "the first night must export every segment"
    exports = nightly_workspace.root / "exports"
    files = [path for path in exports.rglob("*.csv") if not path.name.endswith("-removed.csv")]
    assert files
    for path in files:
        with open(path, encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                assert row["profile_id"] in granted


def test_same_delivery_again_changes_no_table_and_sends_nothing(
    nightly_workspace: NightlyWorkspace,
    dagster_instance: dg.DagsterInstance,
    first_night: NightlyOutcome,
) -> None:
    schemas = ("raw", "staging", "intermediate", "identity", "marts", "segments")
    before = _digests(nightly_workspace.warehouse, schemas)
    second = run_nightly(instance=dagster_instance)
    assert second.success
    after = _digests(nightly_workspace.warehouse, schemas)
    changed = sorted(name for name in before if before[name] != after.get(name))
    # An unchanged file (same size and modification time) is not even read again, so not
    # even the delivery log raw._files changes.
    assert changed == []
    assert second.synced == {}
