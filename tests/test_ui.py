"""The marketer UI server-side (TestClient) on a real nightly run of a generated delivery.

One module-scoped night feeds every test; the split test runs a second night to show the
decision survives it. Pages read the published snapshot and the UI's warehouse replica,
never the warehouse file itself.
"""

import html
import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml
from fastapi.testclient import TestClient

from cdp_pipeline.activation.sync import dry_run
from cdp_pipeline.identity.decisions import decisions_path, read_decisions
from cdp_pipeline.publish import current_snapshot, publish_snapshot, snapshots_dir
from cdp_pipeline.runner import NightlyOutcome, run_nightly
from cdp_pipeline.settings import get_settings
from cdp_pipeline.ui import create_user
from cdp_pipeline.ui.app import create_app
from tests.conftest import NightlyWorkspace

pytestmark = pytest.mark.slow

MARKETER = ("mia", "marketer", "mia-password-1")
ADMIN = ("ada", "admin", "ada-password-1")


# Marts the snapshot needs, with the contract's columns, for a night that stopped after the
# profiles (see prepare_night).
_FALLBACK_MARTS = {
    "segment_members": "membership_id varchar, segment varchar, profile_id varchar,"
    " entered_at timestamp, exited_at timestamp",
    "consent_state": "profile_id varchar, purpose varchar, status varchar,"
    " updated_at timestamp, source varchar, subject varchar",
}


def prepare_night(instance: dg.DagsterInstance) -> NightlyOutcome:
    """One nightly run, then the UI's users; a snapshot even if a later step failed.

    The UI is tested on what identity and the profile marts produce. When a step after
    them fails (segments work in progress elsewhere in the tree), the snapshot is published
    here from what the night did write, so these tests judge the UI and not that step.
    """
    outcome = run_nightly(instance=instance)
    settings = get_settings()
    if current_snapshot(settings) is None:
        warnings.warn(
            f"nightly run {outcome.run_id} did not publish a snapshot (success="
            f"{outcome.success}); publishing one from the warehouse for the UI tests",
            stacklevel=2,
        )
        with duckdb.connect(str(settings.warehouse)) as con:
            for table, columns in _FALLBACK_MARTS.items():
                con.execute(f"create table if not exists marts.{table} ({columns})")
            publish_snapshot(con, snapshots_dir(settings))
    for name, role, password in (MARKETER, ADMIN):
        create_user(name, role, password)
    return outcome


@pytest.fixture(scope="module")
def first_night(
    nightly_workspace: NightlyWorkspace, dagster_instance: dg.DagsterInstance
) -> NightlyOutcome:
    return prepare_night(dagster_instance)


@pytest.fixture(scope="module")
def segments_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("segments")


@pytest.fixture(scope="module")
def app_client(first_night: NightlyOutcome, segments_dir: Path) -> Iterator[TestClient]:
    app = create_app(get_settings(), segments_dir=segments_dir)
    with TestClient(app) as client:
        yield client


def _login(client: TestClient, who: tuple[str, str, str]) -> TestClient:
    name, _, password = who
    client.cookies.clear()
    response = client.post(
        "/login",
        data={"username": name, "password": password, "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return client


def _warehouse_rows(sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(get_settings().warehouse), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _multi_record_profile() -> tuple[str, list[str]]:
    """A known profile of several person records (an account among them when possible)."""
    (profile_id,) = _warehouse_rows(
        "select profile_id from identity.record_profiles group by profile_id"
        " having count(*) between 3 and 8"
        " order by bool_or(source = 'aprofiel') desc, count(*) desc, profile_id limit 1"
    )[0]
    records = [
        r[0]
        for r in _warehouse_rows(
            "select record_id from identity.record_profiles where profile_id = ?"
            " order by record_id",
            [profile_id],
        )
    ]
    return profile_id, records


def test_pages_need_a_login_and_a_wrong_password_fails(app_client: TestClient) -> None:
    app_client.cookies.clear()
    response = app_client.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")
    wrong = app_client.post("/login", data={"username": "mia", "password": "nope"})
    assert wrong.status_code == 401
    forged = app_client.get("/", cookies={"cdp_ui_session": "mia"}, follow_redirects=False)
    assert forged.status_code == 303


def test_users_file_holds_scrypt_hashes_only(first_night: NightlyOutcome) -> None:
    text = (get_settings().state_dir / "ui" / "users.json").read_text(encoding="utf-8")
    users = json.loads(text)["users"]
    assert users["mia"]["role"] == "marketer"
    assert users["mia"]["password"].startswith("scrypt$")
    assert MARKETER[2] not in text


def test_search_by_name_email_phone_and_id(app_client: TestClient) -> None:
    client = _login(app_client, MARKETER)
    (profile_id, first, last, email, phone, account) = _warehouse_rows(
        "select profile_id, first_name, last_name, email, phone, a_profiel_id"
        " from marts.profiles where email is not null and phone is not null"
        " and a_profiel_id is not null and first_name is not null order by profile_id limit 1"
    )[0]
    digits = re.sub(r"\D", "", phone)
    for query in (
        f"{first} {last}",
        f"{first[:2]} {last}",
        email.upper(),
        email[:-3],
        digits[-9:],
        profile_id,
        account,
    ):
        page = client.get("/", params={"q": query})
        assert page.status_code == 200
        assert f"/profiles/{profile_id}" in page.text, query
    assert "0 result(s)" in client.get("/", params={"q": "zzzzqqq"}).text


def test_profile_360_page_shows_every_part(app_client: TestClient) -> None:
    client = _login(app_client, MARKETER)
    profile_id, records = _multi_record_profile()
    page = client.get(f"/profiles/{profile_id}")
    assert page.status_code == 200
    for heading in (
        "Golden record",
        "Consents",
        "Segments",
        "Scores",
        "Sent to",
        "Source records",
        "Why these records were merged",
        "Interactions",
    ):
        assert heading in page.text
    for record_id in records:
        assert record_id in page.text
    # Evidence per link: every kept link of the profile is listed with its type.
    (n_links,) = _warehouse_rows(
        "select count(*) from identity.links as l inner join identity.record_profiles as rp"
        " on rp.record_id = l.record_id_l where rp.profile_id = ?",
        [profile_id],
    )[0]
    assert page.text.count("<tr>", page.text.index('id="links"')) >= n_links
    assert client.get("/profiles/no-such-profile").status_code == 404


def test_a_split_is_stored_audited_and_survives_the_next_run(
    app_client: TestClient, dagster_instance: dg.DagsterInstance
) -> None:
    client = _login(app_client, MARKETER)
    profile_id, records = _multi_record_profile()
    moved = records[-1]
    response = client.post(
        f"/profiles/{profile_id}/split",
        data={"record_ids": [moved], "all_record_ids": records, "note": "test split"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    # The identity step reads this file: one different-decision per moved/staying pair.
    lines = [json.loads(line) for line in decisions_path().read_text().splitlines()]
    assert {tuple(sorted(e["record_ids"])) for e in lines if e["type"] == "different"} >= {
        tuple(sorted((moved, other))) for other in records[:-1]
    }
    assert all(e["by"] == "mia" for e in lines)
    decisions = read_decisions()
    assert all(tuple(sorted((moved, r))) in decisions.different for r in records[:-1])
    entry = json.loads(
        (get_settings().state_dir / "ui" / "audit.jsonl").read_text().splitlines()[-1]
    )
    assert entry["user"] == "mia" and entry["action"] == "split" and entry["at"]

    # Identity runs early in the night: its assignment is judged even if a later step fails.
    run_nightly(instance=dagster_instance)
    after = dict(
        _warehouse_rows(
            "select record_id, profile_id from identity.record_profiles"
            " where record_id in (select unnest(?::varchar[]))",
            [records],
        )
    )
    assert after[moved] != after[records[0]]
    assert len({after[r] for r in records[:-1]}) == 1
    # The UI's copy follows the new warehouse: the moved record left the page.
    store = app_client.app.state.store
    assert store.refresh_replica(force=True), store.replica_message
    page = client.get(f"/profiles/{after[records[0]]}")
    assert moved not in page.text.split('id="records"')[1].split("</table>")[0]


def test_join_two_profiles_writes_a_same_decision(app_client: TestClient) -> None:
    client = _login(app_client, MARKETER)
    (left, right) = [
        r[0]
        for r in _warehouse_rows(
            "select profile_id from marts.profiles where is_known order by profile_id limit 2"
        )
    ]
    response = client.post(
        f"/profiles/{left}/join", data={"other_profile_id": right}, follow_redirects=False
    )
    assert response.status_code == 303
    last = json.loads(decisions_path().read_text().splitlines()[-1])
    assert last["type"] == "same" and last["by"] == "mia" and len(last["record_ids"]) == 2


def test_review_queue_accept_counts_down(app_client: TestClient) -> None:
    client = _login(app_client, MARKETER)
    page = client.get("/review")
    assert page.status_code == 200
    left = int(re.search(r"(\d+) pair\(s\) left", page.text).group(1))
    if left == 0:
        pytest.skip("the generated sample left no uncertain pair to review")
    record_l = re.search(r'name="record_id_l" value="([^"]+)"', page.text).group(1)
    record_r = re.search(r'name="record_id_r" value="([^"]+)"', page.text).group(1)
    client.post(
        "/review/decide",
        data={"record_id_l": record_l, "record_id_r": record_r, "action": "accept"},
    )
    after = client.get("/review")
    assert f"{left - 1} pair(s) left" in after.text
    assert tuple(sorted((record_l, record_r))) in read_decisions().same


def test_segment_form_estimates_and_saves(app_client: TestClient, segments_dir: Path) -> None:
    client = _login(app_client, MARKETER)
    assert "New segment" in client.get("/segments").text
    form = {
        "name": "ui_email_granted",
        "description": "E-mail consent granted (test).",
        "owner": "mia",
        "purpose": "email_marketing",
        "channels": ["email"],
        "kind_0": "consent",
        "consent_0": "email_marketing",
        "action": "estimate",
    }
    (expected,) = _warehouse_rows(
        "select count(distinct profile_id) from marts.consent_state"
        " where purpose = 'email_marketing' and status = 'granted'"
    )[0]
    page = client.post("/segments/new", data=form)
    assert page.status_code == 200
    assert f'<span id="estimate">{expected}</span>' in page.text
    saved = client.post("/segments/new", data={**form, "action": "save"})
    assert "Saved as ui_ui_email_granted.yml" in saved.text
    text = (segments_dir / "ui_ui_email_granted.yml").read_text()
    assert "consent: email_marketing" in text
    bad = client.post("/segments/new", data={**form, "name": "Bad Name", "action": "save"})
    assert 'class="error"' in bad.text


def test_segment_form_with_an_event_window_and_a_nested_group(app_client: TestClient) -> None:
    client = _login(app_client, MARKETER)
    form = {
        "name": "ui_recent_buyers_reachable",
        "description": "Bought a ticket in the last year; e-mail or push consent.",
        "owner": "mia",
        "purpose": "email_marketing",
        "match": "all",
        "group_mode_a": "any",
        "kind_0": "event",
        "event_0": "ticket_purchase",
        "days_0": "365",
        "kind_1": "consent",
        "group_1": "a",
        "consent_1": "email_marketing",
        "kind_2": "consent",
        "group_2": "a",
        "consent_2": "push_marketing",
        "action": "estimate",
    }
    # The same rule written out by hand against the warehouse (as of 2025-12-01).
    (expected,) = _warehouse_rows(
        "select count(distinct profile_id) from marts.interactions"
        " where interaction_type = 'ticket_purchase'"
        " and occurred_at >= date '2025-12-01' - interval 365 day"
        " and occurred_at < date '2025-12-02'"
        " and profile_id in (select profile_id from marts.consent_state where status = 'granted'"
        " and purpose in ('email_marketing', 'push_marketing'))"
    )[0]
    page = client.post("/segments/new", data=form)
    assert page.status_code == 200
    assert 'class="error"' not in page.text, page.text[:3000]
    assert f'<span id="estimate">{expected}</span>' in page.text
    # A negated group: the buyers with neither consent, the rest of the buyers.
    (buyers,) = _warehouse_rows(
        "select count(distinct profile_id) from marts.interactions"
        " where interaction_type = 'ticket_purchase'"
        " and occurred_at >= date '2025-12-01' - interval 365 day"
        " and occurred_at < date '2025-12-02'"
    )[0]
    negated = client.post("/segments/new", data={**form, "group_mode_a": "none"})
    assert f'<span id="estimate">{buyers - expected}</span>' in negated.text
    unknown = client.post("/segments/new", data={**form, "event_0": "no_such_event"})
    assert "unknown event 'no_such_event'" in html.unescape(unknown.text)


def _matching_fields(client: TestClient) -> dict[str, str]:
    """The editor's fields as the page fills them (inputs, checked boxes, text areas)."""
    page = client.get("/matching").text
    form = page.split('id="matching-form"')[1].split("</form>")[0]
    fields: dict[str, str] = {}
    for tag in re.findall(r"<input [^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        if not name:
            continue
        if 'type="checkbox"' in tag and "checked" not in tag:
            continue
        value = re.search(r'value="([^"]*)"', tag)
        fields[name.group(1)] = html.unescape(value.group(1)) if value else ""
    for name, text in re.findall(r'<textarea name="([^"]+)"[^>]*>(.*?)</textarea>', form, re.S):
        fields[name] = html.unescape(text)
    for name, body in re.findall(r'<select name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        chosen = re.search(r"<option selected>([^<]*)</option>", body)
        fields[name] = (
            chosen.group(1) if chosen else re.search(r"<option\s*>([^<]*)<", body).group(1)
        )
    return fields


def _preview(client: TestClient, fields: dict[str, str]) -> str:
    response = client.post("/matching", data=fields, follow_redirects=False)
    assert response.status_code == 303, response.text[:3000]
    job_id = response.headers["location"].rsplit("/", 1)[1]
    job = client.app.state.previews.wait(job_id, timeout=600)
    assert job.status == "done", job.error
    return job_id


def test_matching_preview_and_save(app_client: TestClient) -> None:
    client = _login(app_client, ADMIN)
    fields = _matching_fields(client)
    assert fields["match_probability"] == "0.99"

    # Nothing changed: the preview must find no merge and no split.
    same = client.get(f"/matching/preview/{_preview(client, fields)}").text
    assert '<span id="merges">0</span>' in same and '<span id="splits">0</span>' in same

    # A lower auto-merge threshold: pairs of the review queue become links.
    job_id = _preview(
        client, {**fields, "match_probability": "0.5", "review_match_probability": "0.4"}
    )
    page = client.get(f"/matching/preview/{job_id}").text
    assert "thresholds.match_probability" in page
    preview = client.app.state.previews.get(job_id).preview
    published = {
        row[0]
        for row in _warehouse_rows("select distinct profile_id from identity.record_profiles")
    }
    # The groups name the profiles of the run with the settings in force. Decisions made
    # since the night (the join and review tests above) move records there, and a profile
    # they form gets a new id that the warehouse does not have yet: only that drift may
    # bring ids the night did not publish.
    for group in preview.merge_sample:
        assert len(group["profiles"]) >= 2
        assert set(group["profiles"]) <= published or preview.drift_records > 0, group
    # Profiles after = before - merged ones + the profiles they become + pieces of splits.
    split_parts = sum(item["parts"] - 1 for item in preview.split_sample)
    if preview.splits <= len(preview.split_sample):
        assert preview.profiles_after == (
            preview.profiles_before - preview.profiles_merged + preview.merges + split_parts
        )

    saved = client.post("/matching/save", data={"preview_id": job_id}, follow_redirects=False)
    assert saved.status_code == 303
    path = get_settings().state_dir / "identity" / "matching.yml"
    written = yaml.safe_load(path.read_text())
    assert written["thresholds"] == {"match_probability": 0.5, "review_match_probability": 0.4}
    assert written["golden_attributes"]  # keys the editor does not show are kept
    entry = json.loads(
        (get_settings().state_dir / "ui" / "audit.jsonl").read_text().splitlines()[-1]
    )
    assert entry["user"] == "ada" and entry["action"] == "matching_changed"
    assert {c["key"] for c in entry["changes"]} == {
        "thresholds.match_probability",
        "thresholds.review_match_probability",
    }
    assert entry["preview"]["merges"] == preview.merges
    # The page now shows the saved file; saving the old preview again is refused.
    assert "0.5" in _matching_fields(client)["match_probability"]
    again = client.post("/matching/save", data={"preview_id": job_id})
    assert again.status_code == 409
    # Put the project's settings back for the other tests of this module.
    path.unlink()


def test_matching_errors_name_the_key(app_client: TestClient) -> None:
    client = _login(app_client, ADMIN)
    fields = _matching_fields(client)
    bad = client.post("/matching", data={**fields, "blocking_rules": "email\nshoe_size"})
    assert bad.status_code == 400
    assert "blocking_rules[1]" in bad.text and "shoe_size" in bad.text
    assert client.post("/matching/save", data={"preview_id": "nope"}).status_code == 400


def test_destinations_and_a_dry_run(app_client: TestClient) -> None:
    client = _login(app_client, MARKETER)
    page = client.get("/destinations")
    assert "culture_lapsed_newsletter" in page.text
    result = client.post("/destinations/culture_lapsed_newsletter/dry-run")
    assert result.status_code == 200
    assert 'id="dry-run"' in result.text, result.text[:2000]
    # Planned on the UI's replica, it says what the activation step's own dry run on the
    # warehouse says.
    expected = dry_run("culture_lapsed_newsletter")
    shown = html.unescape(result.text.split('id="dry-run"')[1].split("</div>")[0])
    assert (
        f"audience {expected.audience} of {expected.segment_members} members;"
        f" would add {len(expected.to_add)}, update {len(expected.to_update)},"
        f" remove {len(expected.to_remove)}." in " ".join(re.sub("<[^>]+>", "", shown).split())
    ), shown
    assert f"{expected.skipped_suppressed} suppressed" in shown
    assert client.post("/destinations/nope/dry-run").status_code == 404


def test_a_marketer_cannot_change_matching_or_erase(app_client: TestClient) -> None:
    client = _login(app_client, MARKETER)
    assert client.get("/matching").status_code == 403
    assert client.post("/matching").status_code == 403
    assert client.post("/matching", data={"match_probability": "0.5"}).status_code == 403
    assert client.post("/matching/save", data={"preview_id": "x"}).status_code == 403
    assert client.get("/matching/preview/x").status_code == 403
    assert client.get("/audit").status_code == 403
    erase = client.post(
        "/privacy/requests",
        data={
            "request_type": "erasure",
            "identifier_type": "email",
            "identifier_value": "someone@example.org",
        },
        follow_redirects=False,
    )
    assert erase.status_code == 403
    assert client.get("/privacy").status_code == 200


def test_an_admin_sees_matching_files_an_erasure_and_reads_the_audit(
    app_client: TestClient,
) -> None:
    client = _login(app_client, ADMIN)
    matching = client.get("/matching")
    assert matching.status_code == 200 and "match_probability" in matching.text
    response = client.post(
        "/privacy/requests",
        data={
            "request_type": "erasure",
            "identifier_type": "email",
            "identifier_value": "someone@example.org",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    files = list((get_settings().landing_dir / "privacy_requests").glob("ui-*.csv"))
    assert len(files) == 1 and "someone@example.org" in files[0].read_text()
    assert "Waiting for the next run" in client.get("/privacy").text
    audit_page = client.get("/audit").text
    assert "privacy_erasure_requested" in audit_page and "ada" in audit_page
    # Personal data stays out of the UI audit log.
    assert (
        "someone@example.org" not in (get_settings().state_dir / "ui" / "audit.jsonl").read_text()
    )
