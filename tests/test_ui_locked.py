"""The UI keeps serving while a nightly run holds the warehouse, and catches up after it.

A second process opens the warehouse for writing (as the nightly job does: DuckDB then locks
every other process out) and changes a person's name. During the lock the app searches
the published snapshot, shows profiles from its replica and says it shows the previous
copy, plans a destination's dry run on the replica and records decisions in its own
store; once the writer is gone, the next refresh copies the change in.
"""

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient

from cdp_pipeline.publish.snapshot import publish_snapshot, snapshots_dir_of
from cdp_pipeline.publish.synthetic import synthetic_marts
from cdp_pipeline.settings import get_settings
from cdp_pipeline.ui import create_user
from cdp_pipeline.ui.app import create_app

PROFILE = "p-00000000002a"  # person 42 of synthetic_marts: Given42 Family42, two+ records

# The nightly job's stand-in: holds a write connection until its stdin closes.
WRITER = textwrap.dedent(
    """
    import sys
    import duckdb

    con = duckdb.connect(sys.argv[1])
    con.execute(
        "update marts.profiles set last_name = 'Renamed' where profile_id = ?", [sys.argv[2]]
    )
    sys.stdout.write("holding\\n")
    sys.stdout.flush()
    sys.stdin.read()
    con.close()
    """
)


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    warehouse = tmp_path / "warehouse" / "cdp.duckdb"
    warehouse.parent.mkdir()
    monkeypatch.setenv("CDP_WAREHOUSE", str(warehouse))
    with duckdb.connect(str(warehouse)) as con:
        synthetic_marts(con, 200)
        con.execute("create schema identity")
        # The identity step's columns (identity.resolve), from the synthetic records.
        con.execute(
            "create table identity.record_profiles as select r.record_id, r.source,"
            " r.record_key, r.role, r.profile_id, lower(p.email) as email_normalised,"
            " p.phone as phone_e164, lower(p.first_name) as first_name_normalised,"
            " lower(p.last_name) as last_name_normalised, p.birth_date, p.postcode,"
            " 'test' as run_id, p.updated_at as assigned_at from marts.profile_records as r"
            " inner join marts.profiles as p on p.profile_id = r.profile_id order by r.record_id"
        )
        con.execute(
            "create table identity.links (record_id_l varchar, record_id_r varchar,"
            " link_type varchar, match_weight double, match_probability double,"
            " evidence varchar, run_id varchar)"
        )
        con.execute(
            "create table identity.profile_history (run_id varchar, profile_id varchar,"
            " change varchar, other_profile_id varchar, n_records bigint, changed_at timestamp)"
        )
        publish_snapshot(con, snapshots_dir_of(warehouse))
    create_user("mia", "marketer", "mia-password-1")
    with TestClient(create_app(get_settings(), segments_dir=tmp_path / "segments")) as client:
        response = client.post(
            "/login",
            data={"username": "mia", "password": "mia-password-1"},
            follow_redirects=False,
        )
        assert response.status_code == 303
        yield client


def test_pages_work_while_a_run_holds_the_warehouse(client: TestClient) -> None:
    store = client.app.state.store
    # The first profile page makes the replica (the warehouse is free).
    assert "Family42" in client.get(f"/profiles/{PROFILE}").text
    first_copy = store.replica_path
    warehouse = get_settings().warehouse
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(warehouse), PROFILE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "holding"
        # The warehouse changed and is locked: the copy is refused, the old one serves.
        assert not store.refresh_replica(force=True)
        assert "warehouse busy" in store.replica_message
        assert store.replica_path == first_copy

        found = client.get("/", params={"q": "Given42 Family42"})
        assert found.status_code == 200 and f"/profiles/{PROFILE}" in found.text
        page = client.get(f"/profiles/{PROFILE}")
        assert page.status_code == 200
        assert "Family42" in page.text and "Renamed" not in page.text
        assert "warehouse busy, showing the previous copy" in page.text
        assert page.text.count('name="all_record_ids"') >= 2
        # A decision goes to the app's own store, not to the held warehouse.
        with duckdb.connect(str(first_copy), read_only=True) as replica:
            records = [
                row[0]
                for row in replica.execute(
                    "select record_id from identity.record_profiles where profile_id = ?"
                    " order by record_id",
                    [PROFILE],
                ).fetchall()
            ]
        split = client.post(
            f"/profiles/{PROFILE}/split",
            data={"record_ids": records[-1:], "all_record_ids": records},
            follow_redirects=False,
        )
        assert split.status_code == 303
        # A destination's dry run is planned on the replica too.
        dry = client.post("/destinations/culture_lapsed_newsletter/dry-run")
        assert dry.status_code == 200 and 'id="dry-run"' in dry.text, dry.text[:3000]
    finally:
        writer.stdin.close()
        assert writer.wait(timeout=30) == 0

    decisions = get_settings().state_dir / "identity" / "decisions.jsonl"
    assert records[-1] in decisions.read_text()
    audit = [
        json.loads(line)
        for line in (get_settings().state_dir / "ui" / "audit.jsonl").read_text().splitlines()
    ]
    assert [entry["action"] for entry in audit[-2:]] == ["split", "dry_run"]
    assert all(entry["user"] == "mia" and entry["at"] for entry in audit[-2:])
    assert audit[-1]["ok"] is True
    # The run is over: the next refresh copies its change in.
    assert store.refresh_replica(force=True)
    assert store.replica_path != first_copy
    assert "Renamed" in client.get(f"/profiles/{PROFILE}").text
