"""Contract tests: each vendor sender against a loopback server enforcing the vendor's API."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from destinations.vendors import (
    BrevoVendor,
    FcmVendor,
    GoogleAdsVendor,
    MailchimpVendor,
    MetaVendor,
)
from destinations.warehouse import AS_OF, SEGMENT, build_warehouse, execute, profile_id
from pydantic import ValidationError

from cdp_pipeline.activation.config import (
    BrevoDestination,
    Destination,
    GoogleAdsDestination,
    MailchimpDestination,
    MetaDestination,
    MissingSecretError,
    PushDestination,
)
from cdp_pipeline.activation.http import RetryPolicy, VendorError, make_session
from cdp_pipeline.activation.normalise import sha256_hex
from cdp_pipeline.activation.senders import MailchimpSender
from cdp_pipeline.activation.state import member_states
from cdp_pipeline.activation.sync import SyncResult, sync_destination

FAST = RetryPolicy(attempts=3, backoff_factor=0, max_retry_after=1, timeout=5)


def sync(tmp_path: Path, target: Destination) -> SyncResult:
    with duckdb.connect(str(tmp_path / "cdp.duckdb"), read_only=True) as con:
        return sync_destination(
            con, target, tmp_path / "state", tmp_path / "exports", as_of=AS_OF, retry=FAST
        )


def exit_segment(tmp_path: Path, *indexes: int) -> None:
    execute(
        tmp_path / "cdp.duckdb",
        "update marts.segment_members set exited_at = now() where list_contains($ids, profile_id)",
        {"ids": [profile_id(i) for i in indexes]},
    )


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "TEST_BREVO_KEY": "xkeysib-test",
        "TEST_MAILCHIMP_KEY": "0123456789abcdef-us6",
        "TEST_META_TOKEN": "EAAB-test",
        "TEST_GOOGLE_DEV": "dev-token",
        "TEST_GOOGLE_TOKEN": "ya29.test",
        "TEST_FCM_TOKEN": "ya29.fcm",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def brevo(secrets: dict[str, str]) -> Iterator[BrevoVendor]:
    vendor = BrevoVendor(secrets["TEST_BREVO_KEY"], list_id=7)
    with vendor.running():
        yield vendor


def test_brevo_imports_into_the_list_and_removes_at_most_150_per_call(
    tmp_path: Path, brevo: BrevoVendor
) -> None:
    build_warehouse(tmp_path / "cdp.duckdb", 160)
    target = BrevoDestination(
        name="brevo",
        type="brevo",
        segment=SEGMENT,
        purpose="email_marketing",
        fields=("email", "first_name", "last_name"),
        list_id=7,
        api_key_env="TEST_BREVO_KEY",
        base_url=f"{brevo.url}/v3",
    )
    brevo.fail_next(429, retry_after="0")
    first = sync(tmp_path, target)
    assert (first.added, first.batches) == (160, 2)
    assert len(brevo.list_members) == 160
    assert brevo.contacts["person4@example.be"] == {"FIRSTNAME": "First4", "LASTNAME": "Last4"}

    exit_segment(tmp_path, *range(151))
    removed = sync(tmp_path, target)
    assert (removed.removed, removed.batches) == (151, 2)
    assert len(brevo.list_members) == 9
    assert brevo.violations == []


def test_brevo_refuses_a_batch_size_over_its_limit() -> None:
    with pytest.raises(ValidationError, match="exceeds the vendor limit 150"):
        BrevoDestination(
            name="b",
            type="brevo",
            segment="s",
            purpose="email_marketing",
            list_id=1,
            api_key_env="X",
            batch_size=151,
        )


@pytest.fixture
def mailchimp(secrets: dict[str, str]) -> Iterator[MailchimpVendor]:
    vendor = MailchimpVendor(secrets["TEST_MAILCHIMP_KEY"], list_id="abc123", tag_id=42)
    with vendor.running():
        yield vendor


def test_mailchimp_upserts_members_tags_them_and_respects_vendor_opt_outs(
    tmp_path: Path, mailchimp: MailchimpVendor
) -> None:
    build_warehouse(tmp_path / "cdp.duckdb", 12)
    target = MailchimpDestination(
        name="mc",
        type="mailchimp",
        segment=SEGMENT,
        purpose="email_marketing",
        fields=("email", "first_name"),
        list_id="abc123",
        tag_id=42,
        api_key_env="TEST_MAILCHIMP_KEY",
        base_url=f"{mailchimp.url}/3.0",
        batch_size=5,
    )
    mailchimp.compliance_state = {"person3@example.be"}
    first = sync(tmp_path, target)
    assert (first.added, first.rejected, first.batches) == (11, 1, 3)
    assert mailchimp.members["person4@example.be"]["merge_fields"] == {"FNAME": "First4"}
    assert "person3@example.be" not in mailchimp.tagged and len(mailchimp.tagged) == 11
    state = member_states(tmp_path / "state", "mc")[profile_id(3)]
    assert (state["status"], state["last_error"]) == ("rejected", "ERROR_GENERIC")

    # A permanent refusal is not asked again; a new address is.
    calls = len(mailchimp.requests)
    assert sync(tmp_path, target).batches == 0 and len(mailchimp.requests) == calls
    execute(
        tmp_path / "cdp.duckdb",
        "update marts.profiles set email = 'new4@example.be' where profile_id = $id",
        {"id": profile_id(4)},
    )
    exit_segment(tmp_path, 5)
    changed = sync(tmp_path, target)
    assert (changed.updated, changed.removed) == (1, 1)
    assert {"new4@example.be"} <= mailchimp.tagged
    assert not {"person4@example.be", "person5@example.be"} & mailchimp.tagged
    assert "person5@example.be" in mailchimp.members  # untagged, not unsubscribed
    assert mailchimp.violations == []


def test_mailchimp_base_url_comes_from_the_key_data_centre(secrets: dict[str, str]) -> None:
    target = MailchimpDestination(
        name="mc",
        type="mailchimp",
        segment="s",
        purpose="email_marketing",
        list_id="l",
        tag_id=1,
        api_key_env="TEST_MAILCHIMP_KEY",
    )
    sender = MailchimpSender(target, make_session(FAST), 5)
    assert sender._base == "https://us6.api.mailchimp.com/3.0"


def test_missing_secret_names_the_variable_only(tmp_path: Path) -> None:
    build_warehouse(tmp_path / "cdp.duckdb", 2)
    target = BrevoDestination(
        name="brevo",
        type="brevo",
        segment=SEGMENT,
        purpose="email_marketing",
        list_id=7,
        api_key_env="TEST_UNSET_BREVO_KEY",
        base_url="http://127.0.0.1:9/v3",
    )
    with pytest.raises(MissingSecretError, match="TEST_UNSET_BREVO_KEY"):
        sync(tmp_path, target)


@pytest.fixture
def meta(secrets: dict[str, str]) -> Iterator[MetaVendor]:
    vendor = MetaVendor(secrets["TEST_META_TOKEN"], audience_id="2385")
    with vendor.running():
        yield vendor


def test_meta_adds_hashed_rows_in_one_session_and_removes_with_the_same_schema(
    tmp_path: Path, meta: MetaVendor
) -> None:
    build_warehouse(tmp_path / "cdp.duckdb", 122, minors=(0, 1))
    target = MetaDestination(
        name="meta",
        type="meta_custom_audience",
        segment=SEGMENT,
        purpose="ad_targeting",
        audience_id="2385",
        access_token_env="TEST_META_TOKEN",
        base_url=meta.url,
        batch_size=50,
    )
    meta.fail_next(500)
    first = sync(tmp_path, target)
    assert (first.added, first.skipped_minor, first.batches) == (120, 2, 3)
    assert len(meta.audience) == 120
    posts = [r for r in meta.requests if r.method == "POST" and r.json()["payload"]]
    assert posts[0].json()["payload"]["schema"] == ["EMAIL", "PHONE", "FN", "LN"]
    (session,) = {tuple(v) for v in meta.sessions.values() if len(v) == 3}
    assert session == ((1, False), (2, False), (3, True))
    expected = (
        sha256_hex("person2@example.be"),
        sha256_hex("32470000002"),
        sha256_hex("first"),  # "First2": letters only, per Meta's name rule
        sha256_hex("last"),
    )
    assert expected in meta.audience

    exit_segment(tmp_path, 2)
    removed = sync(tmp_path, target)
    assert removed.removed == 1
    delete = [r for r in meta.requests if r.method == "DELETE"][-1].json()
    assert delete["payload"]["schema"] == ["EMAIL", "PHONE", "FN", "LN"]
    assert delete["payload"]["data"] == [list(expected)]
    assert expected not in meta.audience and len(meta.audience) == 119

    # A new e-mail address: the old row is deleted (in a session of its own), the new added.
    execute(
        tmp_path / "cdp.duckdb",
        "update marts.profiles set email = 'new3@example.be' where profile_id = $id",
        {"id": profile_id(3)},
    )
    assert sync(tmp_path, target).updated == 1
    assert len(meta.audience) == 119
    assert not any(row[0] == sha256_hex("person3@example.be") for row in meta.audience)
    assert any(row[0] == sha256_hex("new3@example.be") for row in meta.audience)
    delete_session = [r for r in meta.requests if r.method == "DELETE"][-1].json()["session"]
    assert (delete_session["batch_seq"], delete_session["last_batch_flag"]) == (1, True)
    assert meta.violations == []


def test_meta_audience_below_minimum_is_not_uploaded(tmp_path: Path, meta: MetaVendor) -> None:
    build_warehouse(tmp_path / "cdp.duckdb", 99)
    target = MetaDestination(
        name="meta",
        type="meta_custom_audience",
        segment=SEGMENT,
        purpose="ad_targeting",
        audience_id="2385",
        access_token_env="TEST_META_TOKEN",
        base_url=meta.url,
    )
    result = sync(tmp_path, target)
    assert result.held_below_minimum and result.added == 0
    assert meta.requests == []


def test_meta_refuses_batches_over_10000() -> None:
    with pytest.raises(ValidationError, match="exceeds the vendor limit 10000"):
        MetaDestination(
            name="m",
            type="meta_custom_audience",
            segment="s",
            purpose="ad_targeting",
            audience_id="1",
            access_token_env="X",
            batch_size=10_001,
        )


@pytest.fixture
def google(secrets: dict[str, str]) -> Iterator[GoogleAdsVendor]:
    vendor = GoogleAdsVendor(
        secrets["TEST_GOOGLE_DEV"], secrets["TEST_GOOGLE_TOKEN"], "1234567890", "555"
    )
    with vendor.running():
        yield vendor


def test_google_customer_match_jobs_partial_failure_and_separate_removal_jobs(
    tmp_path: Path, google: GoogleAdsVendor
) -> None:
    build_warehouse(tmp_path / "cdp.duckdb", 110)
    target = GoogleAdsDestination(
        name="gads",
        type="google_customer_match",
        segment=SEGMENT,
        purpose="ad_targeting",
        customer_id="1234567890",
        user_list_id="555",
        developer_token_env="TEST_GOOGLE_DEV",
        access_token_env="TEST_GOOGLE_TOKEN",
        base_url=google.url,
        batch_size=50,
    )
    google.bad_identifiers = {sha256_hex("person9@example.be")}
    google.fail_next(429, retry_after="0", path_contains=":addOperations")
    first = sync(tmp_path, target)
    assert (first.added, first.rejected, first.batches) == (109, 1, 3)
    assert first.match_rate == "MATCH_RANGE_51_TO_60"
    assert len(google.jobs) == 3 and len(google.members) == 109
    operations = [r.json() for r in google.requests if r.path.endswith(":addOperations")]
    assert all(body["enablePartialFailure"] is True for body in operations)
    assert operations[0]["operations"][0]["create"]["userIdentifiers"] == [
        {"hashedEmail": sha256_hex("person0@example.be")},
        {"hashedPhoneNumber": sha256_hex("+32470000000")},
    ]
    state = member_states(tmp_path / "state", "gads")[profile_id(9)]
    assert state["last_error"] == "offlineUserDataJobError:INVALID_SHA256_FORMAT"

    exit_segment(tmp_path, 0, 1)
    removed = sync(tmp_path, target)
    assert removed.removed == 2
    last_job = list(google.jobs.values())[-1]
    assert last_job["kind"] == "remove" and len(last_job["operations"]) == 2
    assert len(google.members) == 107
    assert google.violations == []


@pytest.fixture
def fcm(secrets: dict[str, str]) -> Iterator[FcmVendor]:
    vendor = FcmVendor(secrets["TEST_FCM_TOKEN"], "city-app")
    with vendor.running():
        yield vendor


def push_destination(fcm: FcmVendor) -> PushDestination:
    return PushDestination(
        name="push",
        type="fcm_push",
        segment=SEGMENT,
        purpose="push_marketing",
        project_id="city-app",
        access_token_env="TEST_FCM_TOKEN",
        base_url=fcm.url,
        title="Zomerkampen",
        body="Inschrijvingen open",
        data={"segment": SEGMENT},
        batch_size=2,
    )


def test_push_sends_each_device_once_and_prunes_only_dead_tokens(
    tmp_path: Path, fcm: FcmVendor
) -> None:
    warehouse = tmp_path / "cdp.duckdb"
    build_warehouse(warehouse, 5, devices_per_person=2)
    fcm.unregistered = {"token-00001-0", "token-00004-0", "token-00004-1"}
    fcm.invalid = {"token-00002-1"}
    fcm.fail_next(429, retry_after="0")
    fcm.fail_next(503)
    first = sync(tmp_path, push_destination(fcm))
    # Person 4 has only dead tokens: refused for good, nothing else touched.
    assert (first.added, first.rejected, first.pruned_tokens) == (4, 1, 4)
    assert set(fcm.delivered) == {
        "token-00000-0",
        "token-00000-1",
        "token-00001-1",
        "token-00002-0",
        "token-00003-0",
        "token-00003-1",
    }
    assert set(fcm.delivered.values()) == {1}
    message = json.loads(fcm.requests[-1].body)["message"]
    assert message["notification"] == {"title": "Zomerkampen", "body": "Inschrijvingen open"}

    # A new device of a member already notified does not notify them again (add only), and a
    # pruned token is never tried again; a new member is notified on every live device.
    execute(
        warehouse,
        "insert into staging.stg_app_devices__devices values"
        " ('dev-00005-0', null, 'token-00005-0', true),"
        " ('dev-00005-1', null, 'token-00001-0', true),"
        " ('dev-00000-9', null, 'token-00000-9', true);"
        "insert into marts.profile_records values"
        " ('app_devices', 'dev-00000-9', 'device', 'p-00000')",
    )
    execute(
        warehouse,
        "insert into marts.profiles (profile_id, email) values ('p-00005', 'p5@example.be');"
        "insert into marts.profile_records values ('app_devices', 'dev-00005-0', 'device',"
        " 'p-00005'), ('app_devices', 'dev-00005-1', 'device', 'p-00005');"
        "insert into marts.consent_state values ('p-00005', 'push_marketing', 'granted', now());"
        "insert into marts.segment_members values ($segment, 'p-00005', now(), null)",
        {"segment": SEGMENT},
    )
    calls = len(fcm.requests)
    second = sync(tmp_path, push_destination(fcm))
    assert (second.added, second.pruned_tokens) == (1, 0)
    assert [json.loads(r.body)["message"]["token"] for r in fcm.requests[calls:]] == [
        "token-00005-0"
    ]
    assert fcm.violations == []


def test_push_stops_on_expired_credentials_without_notifying_anyone_twice(
    tmp_path: Path, fcm: FcmVendor
) -> None:
    build_warehouse(tmp_path / "cdp.duckdb", 3, devices_per_person=1)
    fcm.revoke_after = 1
    with pytest.raises(VendorError) as error:
        sync(tmp_path, push_destination(fcm))
    assert error.value.status == 401
    states = member_states(tmp_path / "state", "push")
    # Batches of two: the first member went out, the second waits, the second batch never ran.
    assert {pid: state["status"] for pid, state in states.items()} == {
        profile_id(0): "sent",
        profile_id(1): "failed",
    }
    fcm.revoke_after = None
    resumed = sync(tmp_path, push_destination(fcm))
    assert resumed.added == 2
    assert fcm.delivered == {f"token-0000{i}-0": 1 for i in range(3)}


def test_push_destination_is_add_only() -> None:
    values: dict[str, Any] = {
        "name": "p",
        "type": "fcm_push",
        "segment": "s",
        "purpose": "push_marketing",
        "project_id": "x",
        "access_token_env": "X",
        "title": "t",
        "body": "b",
    }
    with pytest.raises(ValidationError, match="add_only"):
        PushDestination(**values, sync_mode="mirror")
