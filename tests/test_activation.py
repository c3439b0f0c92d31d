"""File destination and the segment-change sensor, on a hand-made warehouse."""

import csv
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from cdp_pipeline.activation.config import (
    DestinationsConfigError,
    FileDestination,
    load_destinations,
)
from cdp_pipeline.activation.definitions import build_activation_defs, destination_key
from cdp_pipeline.activation.sync import sync_destination
from cdp_pipeline.resources import WarehouseResource
from cdp_pipeline.segments.definitions import segment_summary

DESTINATION = FileDestination(
    name="lapsed_mailing",
    type="file",
    segment="culture_lapsed_buyers",
    purpose="email_marketing",
    identifier="email",
    fields=("profile_id", "email", "first_name"),
)


def _make_warehouse(path: Path) -> None:
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    con.execute(
        """
        create table marts.profiles as
        select * from (values
            ('p-ann', 'ann@example.be', 'Ann', 'Peeters'),
            ('p-bob', 'bob@example.be', 'Bob', 'Janssens'),
            ('p-cas', null, 'Cas', 'Claes'),
            ('p-dirk', 'dirk@example.be', 'Dirk', 'Maes')
        ) as profiles(profile_id, email, first_name, last_name)
        """
    )
    con.execute(
        """
        create table marts.consent_state as
        select * from (values
            ('p-ann', 'email_marketing', 'granted'),
            ('p-bob', 'email_marketing', 'withdrawn'),
            ('p-cas', 'email_marketing', 'granted'),
            ('p-dirk', 'email_marketing', 'granted'),
            ('p-dirk', 'ad_targeting', 'withdrawn')
        ) as consent(profile_id, purpose, status)
        """
    )
    con.execute(
        """
        create table marts.segment_members (
            segment varchar, profile_id varchar, entered_at timestamp, exited_at timestamp
        )
        """
    )
    con.execute(
        """
        insert into marts.segment_members values
            ('culture_lapsed_buyers', 'p-ann', '2025-11-01', null),
            ('culture_lapsed_buyers', 'p-bob', '2025-11-01', null),
            ('culture_lapsed_buyers', 'p-cas', '2025-11-01', null),
            ('culture_lapsed_buyers', 'p-dirk', '2025-10-01', '2025-11-01')
        """
    )
    con.close()


def _read_export(path: str) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_file_destination_sends_consented_members_with_identifier(tmp_path: Path) -> None:
    warehouse = tmp_path / "cdp.duckdb"
    _make_warehouse(warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        result = sync_destination(con, DESTINATION, tmp_path / "state", tmp_path / "out")

    # Bob withdrew, Cas has no e-mail address, Dirk left the segment: only Ann goes out.
    assert result.segment_members == 3
    assert result.skipped_no_consent == 1
    assert result.skipped_no_identifier == 1
    assert (result.audience, result.added, result.updated, result.removed) == (1, 1, 0, 0)
    assert result.export_file is not None
    assert _read_export(result.export_file) == [
        {"profile_id": "p-ann", "email": "ann@example.be", "first_name": "Ann"}
    ]


def test_file_destination_sends_only_changes(tmp_path: Path) -> None:
    warehouse = tmp_path / "cdp.duckdb"
    _make_warehouse(warehouse)
    state, out = tmp_path / "state", tmp_path / "out"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        sync_destination(con, DESTINATION, state, out)
        unchanged = sync_destination(con, DESTINATION, state, out)
    assert not unchanged.changed
    assert unchanged.export_file is None
    assert len(list((out / DESTINATION.name).glob("*.csv"))) == 1

    with duckdb.connect(str(warehouse)) as con:
        con.execute("update marts.consent_state set status = 'granted' where profile_id = 'p-bob'")
        con.execute("update marts.profiles set first_name = 'Anna' where profile_id = 'p-ann'")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        changed = sync_destination(con, DESTINATION, state, out)
    assert (changed.added, changed.updated, changed.removed) == (1, 1, 0)

    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "update marts.segment_members set exited_at = '2025-12-01' where profile_id = 'p-ann'"
        )
    with duckdb.connect(str(warehouse), read_only=True) as con:
        exited = sync_destination(con, DESTINATION, state, out)
    assert (exited.audience, exited.added, exited.updated, exited.removed) == (1, 0, 0, 1)
    removed_files = sorted((out / DESTINATION.name).glob("*-removed.csv"))
    assert [row["profile_id"] for row in _read_export(str(removed_files[-1]))] == ["p-ann"]


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    warehouse = tmp_path / "cdp.duckdb"
    _make_warehouse(warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        result = sync_destination(
            con, DESTINATION, tmp_path / "state", tmp_path / "out", dry_run=True
        )
    assert result.added == 1
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "state").exists()


def test_destinations_config_names_the_bad_key(tmp_path: Path) -> None:
    path = tmp_path / "destinations.yml"
    path.write_text(
        "destinations:\n  - name: x\n    type: file\n    segment: s\n    purpose: spam\n",
        encoding="utf-8",
    )
    with pytest.raises(DestinationsConfigError, match=r"destinations\.0\.file\.purpose"):
        load_destinations(path)


def test_shipped_destinations_config_is_valid() -> None:
    assert load_destinations()
    declared = load_destinations(include_disabled=True)
    assert {destination.type for destination in declared} == {
        "file",
        "webhook",
        "brevo",
        "mailchimp",
        "meta_custom_audience",
        "google_customer_match",
        "fcm_push",
    }
    # Every destination type builds an asset, even those shipped disabled.
    defs = build_activation_defs(declared)
    dg.Definitions.validate_loadable(
        dg.Definitions.merge(defs, dg.Definitions(resources={"warehouse": WarehouseResource()}))
    )
    assert {key for asset in defs.assets or [] for key in asset.keys} == {
        destination_key(destination) for destination in declared
    }


def test_destinations_config_takes_secret_names_not_values(tmp_path: Path) -> None:
    path = tmp_path / "destinations.yml"
    path.write_text(
        "destinations:\n  - name: x\n    type: brevo\n    segment: s\n"
        "    purpose: email_marketing\n    list_id: 1\n    api_key_env: xkeysib-123abc\n",
        encoding="utf-8",
    )
    with pytest.raises(DestinationsConfigError, match=r"destinations\.0\.brevo\.api_key_env"):
        load_destinations(path)


def test_sensor_requests_a_sync_only_when_membership_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = tmp_path / "warehouse" / "cdp.duckdb"
    warehouse.parent.mkdir()
    _make_warehouse(warehouse)
    monkeypatch.setenv("CDP_WAREHOUSE", str(warehouse))
    activation = build_activation_defs([DESTINATION])
    resources = {"warehouse": WarehouseResource(database=str(warehouse))}
    summary_defs = dg.Definitions.merge(
        activation, dg.Definitions(assets=[segment_summary], resources=resources)
    )
    sensor = summary_defs.resolve_sensor_def("segment_change_sensor")

    def tick(instance: dg.DagsterInstance) -> list[dg.RunRequest]:
        with dg.build_sensor_context(instance=instance, definitions=summary_defs) as context:
            return list(sensor.evaluate_tick(context).run_requests or [])

    with dg.instance_for_test() as instance:
        assert tick(instance) == []  # no segment summary yet: nothing to sync

        dg.materialize([segment_summary], instance=instance, resources=resources)
        first = tick(instance)
        assert [request.asset_selection for request in first] == [[destination_key(DESTINATION)]]

        summary_defs.resolve_job_def("activation_job").execute_in_process(
            instance=instance, asset_selection=[destination_key(DESTINATION)]
        )
        dg.materialize([segment_summary], instance=instance, resources=resources)
        assert tick(instance) == []  # the summary ran again, but membership did not change

        with duckdb.connect(str(warehouse)) as con:
            con.execute(
                "insert into marts.segment_members values"
                " ('culture_lapsed_buyers', 'p-dirk', '2025-12-02', null)"
            )
        dg.materialize([segment_summary], instance=instance, resources=resources)
        again = tick(instance)
        assert len(again) == 1
        assert again[0].run_key != first[0].run_key
