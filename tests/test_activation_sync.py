"""The sync engine against a signed webhook on loopback: diffs, failures, resume, suppression."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from destinations.vendors import WebhookVendor
from destinations.warehouse import AS_OF, SEGMENT, build_warehouse, execute, profile_id

from cdp_pipeline.activation.config import WebhookDestination
from cdp_pipeline.activation.definitions import RETRY_AFTER, destinations_to_retry
from cdp_pipeline.activation.http import RetryPolicy, VendorError
from cdp_pipeline.activation.state import member_states, read_history
from cdp_pipeline.activation.sync import (
    InjectedCrash,
    SyncResult,
    dry_run,
    sync_destination,
)

SECRET = "s3cret-for-tests"
FAST = RetryPolicy(attempts=3, backoff_factor=0, max_retry_after=2, timeout=5)


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookVendor]:
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)
    vendor = WebhookVendor(SECRET, max_batch=10)
    with vendor.running():
        yield vendor


def destination(vendor: WebhookVendor, **overrides: Any) -> WebhookDestination:
    values: dict[str, Any] = {
        "name": "hook",
        "type": "webhook",
        "segment": SEGMENT,
        "purpose": "email_marketing",
        "identifier": "email",
        "fields": ["profile_id", "email", "first_name"],
        "url": f"{vendor.url}/hooks/cdp",
        "secret_env": "TEST_WEBHOOK_SECRET",
        "batch_size": 10,
        **overrides,
    }
    return WebhookDestination(**values)


def sync(tmp_path: Path, target: WebhookDestination, **options: Any) -> SyncResult:
    with duckdb.connect(str(tmp_path / "cdp.duckdb"), read_only=True) as con:
        return sync_destination(
            con,
            target,
            tmp_path / "state",
            tmp_path / "exports",
            as_of=AS_OF,
            retry=FAST,
            **options,
        )


def test_unchanged_segment_sends_nothing_and_one_change_sends_one(
    tmp_path: Path, webhook: WebhookVendor
) -> None:
    build_warehouse(tmp_path / "cdp.duckdb", 25)
    target = destination(webhook)
    first = sync(tmp_path, target)
    assert (first.added, first.batches, len(webhook.requests)) == (25, 3, 3)
    assert sorted(webhook.upserts) == [profile_id(i) for i in range(25)]
    assert webhook.violations == []

    again = sync(tmp_path, target)
    assert (again.added, again.updated, again.removed, again.batches) == (0, 0, 0, 0)
    assert len(webhook.requests) == 3  # not one request for an unchanged segment

    execute(
        tmp_path / "cdp.duckdb",
        "update marts.profiles set first_name = 'Changed' where profile_id = $id",
        {"id": profile_id(7)},
    )
    changed = sync(tmp_path, target)
    assert (changed.added, changed.updated, changed.removed) == (0, 1, 0)
    assert len(webhook.requests) == 4
    assert webhook.requests[-1].json()["members"] == [
        {"profile_id": profile_id(7), "email": "person7@example.be", "first_name": "Changed"}
    ]


def test_crash_after_two_batches_resumes_without_sending_anyone_twice(
    tmp_path: Path, webhook: WebhookVendor
) -> None:
    build_warehouse(tmp_path / "cdp.duckdb", 25)
    target = destination(webhook)
    with pytest.raises(InjectedCrash):
        sync(tmp_path, target, crash_after_batches=2)
    assert sum(webhook.upserts.values()) == 20
    resumed = sync(tmp_path, target)
    assert resumed.added == 5
    assert set(webhook.upserts.values()) == {1} and len(webhook.upserts) == 25


def test_crash_inside_a_batch_resends_only_that_batch(
    tmp_path: Path, webhook: WebhookVendor
) -> None:
    build_warehouse(tmp_path / "cdp.duckdb", 25)
    target = destination(webhook)
    with pytest.raises(InjectedCrash):
        sync(tmp_path, target, crash_after_batches=1)
    # Simulate dying after the second batch was marked in flight but before its answer.
    with duckdb.connect(str(tmp_path / "state" / "activation" / "hook.duckdb")) as con:
        con.execute(
            "insert into member_state (destination, profile_id, status, attempts)"
            " select 'hook', printf('p-%05d', i), 'sending', 0 from range(10, 20) as r(i)"
        )
    resumed = sync(tmp_path, target)
    assert resumed.added == 15
    assert len(webhook.upserts) == 25 and sum(webhook.upserts.values()) == 25


def test_partial_failure_retries_only_failed_members_and_never_permanent_ones(
    tmp_path: Path, webhook: WebhookVendor
) -> None:
    build_warehouse(tmp_path / "cdp.duckdb", 12)
    target = destination(webhook)
    webhook.reject = {profile_id(3)}
    first = sync(tmp_path, target)
    assert (first.added, first.rejected) == (11, 1)
    states = member_states(tmp_path / "state", "hook")
    assert states[profile_id(3)]["status"] == "rejected"
    assert states[profile_id(3)]["last_error"] == "opted_out"

    webhook.reject = set()
    calls = len(webhook.requests)
    second = sync(tmp_path, target)
    assert (second.added, second.rejected, len(webhook.requests)) == (0, 0, calls)

    # A transient failure of the whole batch: recorded as failed, retried alone next time.
    execute(
        tmp_path / "cdp.duckdb",
        "update marts.profiles set first_name = 'X' where profile_id in ($a, $b)",
        {"a": profile_id(1), "b": profile_id(2)},
    )
    webhook.fail_next(503, times=FAST.attempts + 1)
    with pytest.raises(VendorError):
        sync(tmp_path, target)
    states = member_states(tmp_path / "state", "hook")
    assert {states[profile_id(i)]["status"] for i in (1, 2)} == {"failed"}
    assert states[profile_id(1)]["attempts"] == 1
    assert read_history(tmp_path / "state", "hook")[0]["outcome"] == "aborted"
    retried = sync(tmp_path, target)
    assert (retried.updated, retried.failed) == (2, 0)
    assert sorted(m["profile_id"] for m in webhook.requests[-1].json()["members"]) == [
        profile_id(1),
        profile_id(2),
    ]


def test_429_retry_after_is_honoured_and_permanent_4xx_is_not_retried(
    tmp_path: Path, webhook: WebhookVendor
) -> None:
    build_warehouse(tmp_path / "cdp.duckdb", 5)
    target = destination(webhook)
    webhook.fail_next(429, retry_after="1")
    webhook.fail_next(500)
    started = time.monotonic()
    result = sync(tmp_path, target)
    assert time.monotonic() - started >= 1.0
    assert result.added == 5
    assert [r.json()["action"] for r in webhook.requests] == ["upsert"] * 3

    execute(tmp_path / "cdp.duckdb", "update marts.profiles set first_name = 'Y'")
    webhook.fail_next(403)
    calls = len(webhook.requests)
    with pytest.raises(VendorError) as error:
        sync(tmp_path, target)
    assert error.value.permanent and error.value.status == 403
    assert len(webhook.requests) == calls + 1  # one try, no retry


def test_sync_modes_decide_what_a_segment_exit_does(tmp_path: Path, webhook: WebhookVendor) -> None:
    build_warehouse(tmp_path / "cdp.duckdb", 6)
    mirror = destination(webhook, name="mirror", sync_mode="mirror")
    upsert = destination(webhook, name="upsert", sync_mode="upsert")
    add_only = destination(webhook, name="add_only", sync_mode="add_only")
    for target in (mirror, upsert, add_only):
        sync(tmp_path, target)
    execute(
        tmp_path / "cdp.duckdb",
        "update marts.segment_members set exited_at = now() where profile_id = $id",
        {"id": profile_id(0)},
    )
    execute(
        tmp_path / "cdp.duckdb",
        "update marts.profiles set first_name = 'Z' where profile_id = $id",
        {"id": profile_id(1)},
    )
    results = {target.name: sync(tmp_path, target) for target in (mirror, upsert, add_only)}
    counts = {name: (r.added, r.updated, r.removed) for name, r in results.items()}
    assert counts == {"mirror": (0, 1, 1), "upsert": (0, 1, 0), "add_only": (0, 0, 0)}
    assert webhook.removes == {profile_id(0): 1}


def test_withdrawn_consent_erasure_and_bounce_are_removed_in_every_mode(
    tmp_path: Path, webhook: WebhookVendor
) -> None:
    warehouse = tmp_path / "cdp.duckdb"
    build_warehouse(warehouse, 8)
    target = destination(webhook, sync_mode="upsert")
    sync(tmp_path, target)
    execute(
        warehouse,
        "update marts.consent_state set status = 'withdrawn'"
        " where profile_id = $id and purpose = 'email_marketing'",
        {"id": profile_id(1)},
    )
    execute(
        warehouse,
        "create table staging.stg_privacy_requests__requests as select 'PR-1' as request_id,"
        " 'erasure' as request_type, 'email' as identifier_type,"
        " 'person2@example.be' as identifier_value",
    )
    execute(
        warehouse,
        "create table marts.interactions as select $id as profile_id,"
        " 'email_bounce' as interaction_type, timestamp '2025-11-20' as occurred_at",
        {"id": profile_id(3)},
    )
    # Erased and also gone from the segment: still removed although the mode is upsert.
    execute(
        warehouse,
        "update marts.segment_members set exited_at = now() where profile_id = $id",
        {"id": profile_id(2)},
    )
    result = sync(tmp_path, target)
    assert (result.skipped_no_consent, result.skipped_suppressed) == (1, 1)
    assert result.removed == 3
    assert sorted(webhook.removes) == [profile_id(1), profile_id(2), profile_id(3)]


def test_minors_never_reach_advertising_and_small_audiences_are_held(
    tmp_path: Path, webhook: WebhookVendor
) -> None:
    warehouse = tmp_path / "cdp.duckdb"
    build_warehouse(warehouse, 104, minors=(5, 6))
    ads = destination(webhook, name="ads", purpose="ad_targeting", min_audience_size=100)
    result = sync(tmp_path, ads)
    assert (result.skipped_minor, result.audience, result.added) == (2, 102, 102)
    assert profile_id(5) not in webhook.upserts and profile_id(6) not in webhook.upserts

    # The minors are not held back from e-mail marketing, only from advertising.
    mail = destination(webhook, name="mail")
    assert sync(tmp_path, mail).added == 104

    execute(
        warehouse,
        "update marts.consent_state set status = 'withdrawn'"
        " where purpose = 'ad_targeting' and profile_id >= $id",
        {"id": profile_id(90)},
    )
    held = sync(tmp_path, ads)
    assert held.held_below_minimum and held.audience < 100
    assert (held.added, held.updated) == (0, 0)
    assert held.removed == 14  # withdrawals are honoured even when the upload is held


def test_dry_run_reports_without_sending_and_history_counts_runs(
    tmp_path: Path, webhook: WebhookVendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "platform"
    (root / "warehouse").mkdir(parents=True)
    warehouse = root / "warehouse" / "cdp.duckdb"
    build_warehouse(warehouse, 4)
    monkeypatch.setenv("CDP_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("CDP_AS_OF_DATE", AS_OF.isoformat())
    config = tmp_path / "destinations.yml"
    config.write_text(
        "destinations:\n"
        "  - name: hook\n    type: webhook\n    segment: seg_test\n"
        "    purpose: email_marketing\n    identifier: email\n"
        f"    url: {webhook.url}/hooks/cdp\n    secret_env: TEST_WEBHOOK_SECRET\n",
        encoding="utf-8",
    )
    report = dry_run("hook", config)
    assert report.to_add == [profile_id(i) for i in range(4)]
    assert (report.to_update, report.to_remove) == ([], [])
    assert webhook.requests == []
    assert not (root / "state").exists()

    with duckdb.connect(str(warehouse), read_only=True) as con:
        target = destination(webhook)
        sync_destination(con, target, root / "state", root / "exports", retry=FAST)
    execute(
        warehouse,
        "update marts.segment_members set exited_at = now() where profile_id = $id",
        {"id": profile_id(0)},
    )
    report = dry_run("hook", config)
    assert (report.to_add, report.to_remove) == ([], [profile_id(0)])
    history = read_history(root / "state", "hook")
    assert len(history) == 1
    assert {key: history[0][key] for key in ("outcome", "sent", "failed", "audience")} == {
        "outcome": "success",
        "sent": 4,
        "failed": 0,
        "audience": 4,
    }


def test_sensor_retries_a_failed_sync_once_after_a_pause(
    tmp_path: Path, webhook: WebhookVendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "platform"
    (root / "warehouse").mkdir(parents=True)
    warehouse = root / "warehouse" / "cdp.duckdb"
    build_warehouse(warehouse, 3)
    monkeypatch.setenv("CDP_WAREHOUSE", str(warehouse))
    target = destination(webhook)
    assert destinations_to_retry([target]) == []
    webhook.fail_next(502, times=FAST.attempts + 1)
    with duckdb.connect(str(warehouse), read_only=True) as con, pytest.raises(VendorError):
        sync_destination(con, target, root / "state", root / "exports", retry=FAST, run_id="r1")
    finished = read_history(root / "state", "hook")[0]["finished_at"]
    assert destinations_to_retry([target], now=finished + RETRY_AFTER / 2) == []
    assert destinations_to_retry([target], now=finished + RETRY_AFTER) == [(target, "r1")]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        sync_destination(con, target, root / "state", root / "exports", retry=FAST)
    assert destinations_to_retry([target], now=finished + 2 * RETRY_AFTER) == []
