"""Erasure end to end: a person in four sources and an exported audience, erased and kept out.

Nights run as ``run_nightly`` does; until the lead wires ``privacy/erasure`` in front of
staging (translator dep), each night first materialises ingest + erasure, then the job.
"""

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from cdp_pipeline.ingest.definitions import build_ingest_assets
from cdp_pipeline.privacy.definitions import (
    ERASURE_KEY,
    privacy_access_exports,
    privacy_erasure,
    privacy_inventory,
    privacy_resource,
)
from cdp_pipeline.privacy.state import read_audit
from cdp_pipeline.resources import LandingResource, WarehouseResource
from cdp_pipeline.runner import run_nightly
from tests.conftest import NightlyWorkspace
from tests.privacy_helpers import (
    add_request,
    needles_for,
    people,
    records,
    search_tree,
    unique_person_candidates,
)

pytestmark = pytest.mark.slow

REQUEST_ID = "PR-9001"


def _resources() -> dict[str, object]:
    return {
        "warehouse": WarehouseResource(),
        "landing": LandingResource(),
        "privacy": privacy_resource(),
    }


def _night(instance: dg.DagsterInstance) -> None:
    from cdp_pipeline.definitions import NIGHTLY_JOB_NAME, defs

    # Once the lead wires privacy/erasure into the code location the job runs it itself.
    wired = ERASURE_KEY in defs.resolve_asset_graph().get_all_asset_keys()
    assert defs.resolve_job_def(NIGHTLY_JOB_NAME)
    if not wired:
        result = dg.materialize(
            [*build_ingest_assets(), privacy_erasure], resources=_resources(), instance=instance
        )
        assert result.success
    outcome = run_nightly(instance=instance)
    assert outcome.success
    if not wired:
        result = dg.materialize(
            [privacy_access_exports, privacy_inventory], resources=_resources(), instance=instance
        )
        assert result.success


def _profiles_of(warehouse: Path, person_id: str, landing: Path) -> set[str]:
    keys = [
        f"{r['source']}|{r['role']}|{r['record_key']}"
        for r in records(landing)
        if r["person_id"] == person_id
    ]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {
            row[0]
            for row in con.execute(
                "select distinct profile_id from marts.profile_records"
                " where source || '|' || role || '|' || record_key"
                " in (select unnest(?::varchar[]))",
                [keys],
            ).fetchall()
        }


def _exported_profiles(root: Path) -> set[str]:
    exported: set[str] = set()
    for path in (root / "exports").rglob("*.csv"):
        if path.name.endswith("-removed.csv"):
            continue
        with duckdb.connect() as con:
            exported |= {
                row[0]
                for row in con.execute(
                    "select profile_id from read_csv(?, all_varchar = true)", [str(path)]
                ).fetchall()
            }
    return exported


@pytest.fixture(scope="module")
def erased(nightly_workspace: NightlyWorkspace, dagster_instance: dg.DagsterInstance) -> dict:
    ws = nightly_workspace
    _night(dagster_instance)
    exported = _exported_profiles(ws.root)
    chosen = None
    for person_id in unique_person_candidates(ws.landing, min_sources=4):
        profiles = _profiles_of(ws.warehouse, person_id, ws.landing)
        # One profile (identity found all their records) that a destination received.
        if len(profiles) == 1 and profiles <= exported:
            chosen = (person_id, profiles)
            break
    assert chosen, "the sample must hold a person in 4 sources, unified and exported"
    person_id, profiles = chosen
    needles = needles_for(ws.landing, person_id, profiles)
    skip = {ws.landing, ws.dagster_home}
    assert search_tree(ws.root, needles, skip), "the search must find the person before erasure"
    email = people(ws.landing)[person_id]["email"]
    add_request(
        ws.landing,
        "privacy_requests_2025-12-02.csv",
        [(REQUEST_ID, "erasure", "email", email, "2025-12-02T09:00:00+01:00")],
    )
    _night(dagster_instance)
    return {"person_id": person_id, "profiles": profiles, "needles": needles, "skip": skip}


def test_erased_person_is_nowhere(nightly_workspace: NightlyWorkspace, erased: dict) -> None:
    hits = search_tree(nightly_workspace.root, erased["needles"], erased["skip"])
    assert hits == []


def test_audit_log_records_the_request_with_counts_and_receipts(
    nightly_workspace: NightlyWorkspace, erased: dict
) -> None:
    entries = [
        e for e in read_audit(nightly_workspace.root / "state") if e["request_id"] == REQUEST_ID
    ]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["status"] == "completed"
    assert entry["profiles"] == 1
    assert sum(v for k, v in entry["rows_deleted"].items() if k.startswith("raw.")) > 0
    assert any(k.startswith("exports/") for k in entry["rows_deleted"])
    assert entry["receipts"], "every destination that held the person has a receipt"
    text = (nightly_workspace.root / "state" / "privacy" / "audit.jsonl").read_text()
    assert all(needle not in text.lower() for needle in erased["needles"].strings)


def test_redelivered_rows_do_not_bring_the_person_back(
    nightly_workspace: NightlyWorkspace, dagster_instance: dg.DagsterInstance, erased: dict
) -> None:
    ws = nightly_workspace
    # The same exports again under new names (loaded as new files) ...
    for source in ("ticketing", "aprofiel", "newsletter", "registrations", "app_devices"):
        for path in sorted((ws.landing / source).glob("*")):
            shutil.copy(path, path.with_name("again_" + path.name))
    # ... and a corrected file under the old name, which replaces what it loaded.
    ticketing = sorted((ws.landing / "ticketing").glob("ticketing_*.csv"))[0]
    ticketing.write_bytes(ticketing.read_bytes() + b"\r\n")
    _night(dagster_instance)
    assert search_tree(ws.root, erased["needles"], erased["skip"]) == []
    with duckdb.connect(str(ws.warehouse), read_only=True) as con:
        (swept,) = con.execute("select count(*) from raw.ticket_orders").fetchone()
    assert swept > 0
