"""Consent merge rules of marts.consent_state, one test per case, on a hand-made warehouse.

The warehouse has the contract's raw.* and identity.* tables (tests/fixtures) with one
person per rule; profile ids are assigned by hand, as the identity step would. dbt runs
once, in-process, on the models up to consent_state, then the data tests of the two
consent models. As of 2025-12-01.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from fixtures.warehouse_fixture import AS_OF_DATE, IDENTITY_TABLES, LINEAGE, RAW_TABLES

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"
LOADED = datetime(2025, 12, 1, 1, 0)
CREATED = datetime(2021, 3, 4, 9, 0)


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _account(account_id: str, email: str, first: str, last: str) -> tuple:
    return (
        account_id, email, first, last, None, None, None, None, None, None, "2000",
        "Antwerpen", "BE", "nl", CREATED, CREATED, "active",
    )  # fmt: skip


def _newsletter(email: str, list_name: str, status: str, opt_in: str | None,
                unsubscribed: str | None) -> tuple:  # fmt: skip
    return (
        email, "X", "Y", list_name, status, _ts(opt_in) if opt_in else None,
        _ts(unsubscribed) if unsubscribed else None, "nl",
    )  # fmt: skip


def _consent(subject_type: str, subject_id: str, purpose: str, status: str, at: str) -> tuple:
    return (subject_type, subject_id, purpose, status, _ts(at), "preference_centre")


# One person per rule (profile id -> what the rule says):
#   P-WOUT   grant on his account (Jan 2025), newsletter unsubscribed on an old address
#            (May 2025) -> a withdrawal on one identity beats the older grant on another.
#   P-RITA   withdrew on her account (2024), granted on her e-mail (2025) -> granted again.
#   P-GREET  golden e-mail greet@ (account); grants only for greet.work@ -> not granted.
#   P-ANKE   grant on her account covers the account's e-mail (golden) -> granted, even
#            though the profile also holds a ticket-shop address.
#   P-ANKE-CAMP  a registration contact that carries Anke's account id but was not merged:
#            her account grant does not cover this profile's address -> not granted.
#   P-ULLA / P-CAS  newsletter unsubscribed / cleaned -> withdrawn.
#   P-PEPIJN newsletter pending -> not granted.
#   P-DIRK   app device with push opt-in -> push_marketing only.
RAW_ROWS: dict[str, list[tuple]] = {
    "citizen_accounts": [
        _account("ap-100", "wout@example.be", "Wout", "Wouters"),
        _account("ap-200", "rita@example.be", "Rita", "Ramon"),
        _account("ap-300", "greet@example.be", "Greet", "Gevers"),
        _account("ap-400", "anke@example.be", "Anke", "Aerts"),
    ],
    "ticket_orders": [
        ("T-1", _ts("2025-06-01 10:00:00"), "web", "Anke", "Aerts", "anke.tickets@example.be",
         None, "2000", None, "EV-1", "Event", "De Singel", "concert",
         _ts("2025-06-10 20:00:00"), 1, 20, "betaald"),
    ],
    "registrations": [
        ("R-1", _ts("2025-06-02 10:00:00"), "SK-1", "Kamp", "sportkamp", "Anke", "Aerts",
         None, "Anke", "Aerts", "anke.camp@example.be", None, "Straat", "1", "2000",
         "Antwerpen", "ap-400", 85, "confirmed"),
    ],
    "newsletter_contacts": [
        _newsletter("wout.old@example.be", "cultuur", "unsubscribed", "2020-01-01 10:00:00",
                    "2025-05-01 10:00:00"),
        _newsletter("greet.work@example.be", "cultuur", "subscribed", "2025-02-01 10:00:00",
                    None),
        _newsletter("ulla@example.be", "cultuur", "unsubscribed", "2023-01-01 10:00:00",
                    "2025-02-01 10:00:00"),
        _newsletter("cas@example.be", "sport", "cleaned", "2023-01-01 10:00:00", None),
        _newsletter("pepijn@example.be", "cultuur", "pending", None, None),
    ],
    "app_devices": [
        ("d-500", "android", "fcm:token-500", "4.2.0", None, True,
         _ts("2025-01-01 10:00:00"), _ts("2025-11-20 10:00:00")),
    ],
    "consent_events": [
        _consent("a_profiel", "ap-100", "email_marketing", "granted", "2025-01-10 09:00:00"),
        _consent("a_profiel", "ap-200", "email_marketing", "withdrawn", "2024-03-01 09:00:00"),
        _consent("email", "Rita@Example.be ", "email_marketing", "granted",
                 "2025-04-01 09:00:00"),
        _consent("email", "greet.work@example.be", "email_marketing", "granted",
                 "2025-03-01 09:00:00"),
        _consent("a_profiel", "ap-400", "email_marketing", "granted", "2025-05-01 09:00:00"),
    ],
}  # fmt: skip

# record_id -> (profile_id, normalised e-mail)
RECORD_PROFILES: dict[str, tuple[str, str | None]] = {
    "aprofiel|account|ap-100": ("P-WOUT", "wout@example.be"),
    "newsletter|subscriber|cultuur:wout.old@example.be": ("P-WOUT", "wout.old@example.be"),
    "aprofiel|account|ap-200": ("P-RITA", "rita@example.be"),
    "aprofiel|account|ap-300": ("P-GREET", "greet@example.be"),
    "newsletter|subscriber|cultuur:greet.work@example.be": ("P-GREET", "greet.work@example.be"),
    "aprofiel|account|ap-400": ("P-ANKE", "anke@example.be"),
    "ticketing|buyer|T-1": ("P-ANKE", "anke.tickets@example.be"),
    "registrations|contact|R-1": ("P-ANKE-CAMP", "anke.camp@example.be"),
    "newsletter|subscriber|cultuur:ulla@example.be": ("P-ULLA", "ulla@example.be"),
    "newsletter|subscriber|sport:cas@example.be": ("P-CAS", "cas@example.be"),
    "newsletter|subscriber|cultuur:pepijn@example.be": ("P-PEPIJN", "pepijn@example.be"),
    "app_devices|device|d-500": ("P-DIRK", None),
}

SOURCE_OF_TABLE = {
    "citizen_accounts": "aprofiel",
    "ticket_orders": "ticketing",
    "registrations": "registrations",
    "newsletter_contacts": "newsletter",
    "app_devices": "app_devices",
    "consent_events": "consents",
}


def _build_warehouse(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as con:
        for schema, tables in (("raw", RAW_TABLES), ("identity", IDENTITY_TABLES)):
            con.execute(f"create schema if not exists {schema}")
            for table, columns in tables.items():
                lineage = f"{LINEAGE}, " if schema == "raw" else ""
                con.execute(f"create or replace table {schema}.{table} ({lineage}{columns})")
        for table, rows in RAW_ROWS.items():
            source = SOURCE_OF_TABLE[table]
            for line, row in enumerate(rows, start=2):
                placeholders = ", ".join(["?"] * (5 + len(row)))
                con.execute(
                    f"insert into raw.{table} values ({placeholders})",
                    [source, f"{source}/delivery.csv", line, "sha256:x", LOADED, *row],
                )
        for record_id, (profile_id, email) in RECORD_PROFILES.items():
            source, role, record_key = record_id.split("|", 2)
            con.execute(
                "insert into identity.record_profiles values"
                " (?, ?, ?, ?, ?, ?, null, null, null, null, null, 'run-1', ?)",
                [record_id, source, record_key, role, profile_id, email, LOADED],
            )
    return path


def _dbt(tmp: Path, *args: str) -> None:
    from dbt.cli.main import dbtRunner

    command = [
        *args,
        "--project-dir", str(DBT_PROJECT_DIR),
        "--profiles-dir", str(DBT_PROJECT_DIR),
        "--target-path", str(tmp / "target"),
        "--log-path", str(tmp / "logs"),
        "--vars", f'{{as_of_date: "{AS_OF_DATE}"}}',
    ]  # fmt: skip
    result = dbtRunner().invoke(command)
    assert result.success, f"dbt {' '.join(args)} failed: {result.exception or result.result}"


@dataclass(frozen=True)
class ConsentStates:
    """marts.consent_state and the golden e-mails after one dbt run."""

    states: dict[tuple[str, str], tuple[str, str | None, str | None]]
    golden_emails: dict[str, str | None]

    def status(self, profile_id: str, purpose: str = "email_marketing") -> str:
        return self.states[profile_id, purpose][0]


@pytest.fixture(scope="module")
def consent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsentStates]:
    tmp = tmp_path_factory.mktemp("consent")
    warehouse = _build_warehouse(tmp / "warehouse" / "cdp.duckdb")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CDP_WAREHOUSE", str(warehouse))
        patch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        patch.delenv("CDP_AS_OF_DATE", raising=False)
        _dbt(tmp, "run", "--select", "+consent_state")
        _dbt(tmp, "test", "--select", "consent_state", "int_consents__profile_events")
    # Not read-only: in-process dbt may still hold the file with its own configuration.
    with duckdb.connect(str(warehouse)) as con:
        states = {
            (profile_id, purpose): (status, source, subject)
            for profile_id, purpose, status, source, subject in con.execute(
                "select profile_id, purpose, status, source, subject from marts.consent_state"
            ).fetchall()
        }
        golden = dict(con.execute("select profile_id, email from marts.profiles").fetchall())
    yield ConsentStates(states=states, golden_emails=golden)


def test_withdrawal_on_one_identity_beats_an_older_grant_on_another(
    consent: ConsentStates,
) -> None:
    # The account grant covers his golden e-mail, but the later unsubscribe of his old
    # address (another identity of the same profile) withdraws e-mail marketing.
    assert consent.golden_emails["P-WOUT"] == "wout@example.be"
    assert consent.states["P-WOUT", "email_marketing"] == (
        "withdrawn",
        "newsletter",
        "newsletter:cultuur:wout.old@example.be",
    )


def test_a_later_grant_reopens_the_purpose(consent: ConsentStates) -> None:
    assert consent.states["P-RITA", "email_marketing"] == (
        "granted",
        "consents",
        "email:rita@example.be",
    )


def test_a_grant_for_another_address_does_not_authorise_the_golden_email(
    consent: ConsentStates,
) -> None:
    # Greet subscribed and consented with her work address; activation would e-mail her
    # golden (account) address, for which she gave nothing.
    assert consent.golden_emails["P-GREET"] == "greet@example.be"
    assert consent.states["P-GREET", "email_marketing"] == ("unknown", None, None)


def test_an_a_profiel_grant_covers_the_accounts_own_email(consent: ConsentStates) -> None:
    assert consent.golden_emails["P-ANKE"] == "anke@example.be"
    assert consent.states["P-ANKE", "email_marketing"] == (
        "granted",
        "consents",
        "a_profiel:ap-400",
    )
    # A profile that only carries the account id, with another address: not covered.
    assert consent.golden_emails["P-ANKE-CAMP"] == "anke.camp@example.be"
    assert consent.status("P-ANKE-CAMP") == "unknown"


def test_newsletter_unsubscribed_or_cleaned_is_a_withdrawal(consent: ConsentStates) -> None:
    assert consent.states["P-ULLA", "email_marketing"][:2] == ("withdrawn", "newsletter")
    assert consent.states["P-CAS", "email_marketing"][:2] == ("withdrawn", "newsletter")


def test_a_pending_subscription_is_no_grant(consent: ConsentStates) -> None:
    assert consent.states["P-PEPIJN", "email_marketing"] == ("unknown", None, None)


def test_an_app_push_opt_in_grants_push_marketing_only(consent: ConsentStates) -> None:
    assert consent.states["P-DIRK", "push_marketing"] == (
        "granted",
        "app_devices",
        "device:d-500",
    )
    for purpose in ("email_marketing", "ad_targeting", "profiling"):
        assert consent.status("P-DIRK", purpose) == "unknown", purpose


def test_granted_email_marketing_always_covers_the_golden_email(
    consent: ConsentStates,
) -> None:
    granted = {
        profile_id
        for (profile_id, purpose), (status, _, _) in consent.states.items()
        if purpose == "email_marketing" and status == "granted"
    }
    assert granted == {"P-RITA", "P-ANKE"}
    assert len(consent.states) == 4 * len(consent.golden_emails)
