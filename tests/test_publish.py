"""Publishing serving snapshots: content, pointer flip, pruning, the Dagster asset."""

import hashlib
from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from cdp_pipeline.publish.definitions import SERVING_SNAPSHOT_KEY, defs, serving_snapshot
from cdp_pipeline.publish.snapshot import (
    current_snapshot,
    publish_snapshot,
    read_pointer,
    snapshots_dir_of,
)
from cdp_pipeline.publish.synthetic import create_marts
from cdp_pipeline.resources import WarehouseResource
from cdp_pipeline.settings import get_settings

T0 = datetime(2025, 11, 30, 2, 0)


def _warehouse(path: Path, scores: str | None = None) -> Path:
    """Two profiles, one erased person's leftovers; optional scores in long or wide shape."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as con:
        create_marts(con)
        con.executemany(
            "insert into marts.profiles (profile_id, email, a_profiel_id, is_known, updated_at)"
            " values (?, ?, ?, ?, ?)",
            [("p-1", " Mixed.Case@Example.org", "A1", True, T0), ("p-2", None, None, False, T0)],
        )
        con.executemany(
            "insert into marts.profile_records values (?, ?, ?, ?, ?)",
            [
                ("r1", "aprofiel", "A1", "account", "p-1"),
                ("r2", "web_events", "anon-2", "visitor", "p-2"),
                ("r3", "app_devices", "dev-1", "device", "p-1"),
                ("r4", "ticketing", "O-9", "buyer", "p-1"),
                ("r5", "web_events", "anon-gone", "visitor", "p-erased"),
            ],
        )
        con.executemany(
            "insert into marts.segment_members values (?, ?, ?, ?, ?)",
            [
                ("m1", "culture_lapsed_buyers", "p-1", T0, None),
                ("m2", "sport_camp_families", "p-1", T0, T0),
                ("m3", "auto_families", "p-2", T0, None),
                ("m4", "culture_lapsed_buyers", "p-erased", T0, None),
            ],
        )
        con.executemany(
            "insert into marts.consent_state values (?, ?, ?, ?, ?, ?)",
            [
                ("p-1", "profiling", "granted", T0, "consents", "email:mixed.case@example.org"),
                ("p-2", "profiling", "unknown", None, None, None),
            ],
        )
        if scores == "long":
            con.execute(
                "create table marts.propensity_scores as select 'p-1' as profile_id,"
                " 'buy' as model, 0.7 as score, 8 as decile"
            )
        elif scores == "wide":
            con.execute(
                "create table marts.propensity_scores as select 'p-1' as profile_id,"
                " 0.7 as buy_score, 8 as buy_decile, 3 as click_decile"
            )
    return path


def _publish(warehouse: Path) -> Path:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return publish_snapshot(con, snapshots_dir_of(warehouse)).path


def test_snapshot_content(tmp_path: Path) -> None:
    warehouse = _warehouse(tmp_path / "warehouse" / "cdp.duckdb")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        summary = publish_snapshot(con, snapshots_dir_of(warehouse))
    assert summary.rows == {
        "profiles": 2, "identifiers": 6, "segment_members": 2, "consents": 2, "traits": 0,
        "scores": 0, "profile_cards": 2,
    }
    assert not summary.traits_present and not summary.scores_present
    with duckdb.connect(str(summary.path), read_only=True) as snap:
        keys = dict(snap.execute("select lookup_key, profile_id from identifiers").fetchall())
        members = snap.execute(
            "select segment, profile_id, is_automatic from segment_members order by segment"
        ).fetchall()
        subject_columns = snap.execute(
            "select count(*) from information_schema.columns where column_name = 'subject'"
        ).fetchone()
    digest = hashlib.sha256(b"mixed.case@example.org").hexdigest()
    assert keys == {
        "profile_id:p-1": "p-1", "profile_id:p-2": "p-2", "a_profiel_id:A1": "p-1",
        "anonymous_id:anon-2": "p-2", "device_id:dev-1": "p-1",
        f"email_sha256:{digest}": "p-1",
    }
    assert members == [("auto_families", "p-2", True), ("culture_lapsed_buyers", "p-1", False)]
    assert subject_columns == (0,)


@pytest.mark.parametrize("shape", ["long", "wide"])
def test_scores_in_either_shape(tmp_path: Path, shape: str) -> None:
    warehouse = _warehouse(tmp_path / "warehouse" / "cdp.duckdb", scores=shape)
    path = _publish(warehouse)
    with duckdb.connect(str(path), read_only=True) as snap:
        rows = snap.execute("select profile_id, model, score, decile from scores").fetchall()
    expected = [("p-1", "buy", 0.7, 8)]
    if shape == "wide":
        expected.append(("p-1", "click", None, 3))
    assert sorted(rows, key=str) == sorted(expected, key=str)


def test_pointer_flips_and_keeps_two(tmp_path: Path) -> None:
    warehouse = _warehouse(tmp_path / "warehouse" / "cdp.duckdb")
    directory = snapshots_dir_of(warehouse)
    assert read_pointer(directory) is None
    published = [_publish(warehouse) for _ in range(3)]
    assert len({path.name for path in published}) == 3
    assert read_pointer(directory) == published[-1]
    assert sorted(p.name for p in directory.glob("serving-*")) == sorted(
        p.name for p in published[1:]
    )
    assert not list(directory.glob(".CURRENT*"))


def test_a_failed_build_leaves_the_current_snapshot(tmp_path: Path) -> None:
    warehouse = _warehouse(tmp_path / "warehouse" / "cdp.duckdb")
    first = _publish(warehouse)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("drop table marts.consent_state")
    with pytest.raises(duckdb.Error):
        _publish(warehouse)
    assert read_pointer(snapshots_dir_of(warehouse)) == first
    assert [p.name for p in first.parent.glob("serving-*")] == [first.name]


def test_current_snapshot_follows_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = _warehouse(tmp_path / "warehouse" / "cdp.duckdb")
    monkeypatch.setenv("CDP_WAREHOUSE", str(warehouse))
    assert current_snapshot(get_settings()) is None
    path = _publish(warehouse)
    assert current_snapshot(get_settings()) == path


def test_asset_materialises_with_metadata(tmp_path: Path) -> None:
    warehouse = _warehouse(tmp_path / "warehouse" / "cdp.duckdb", scores="long")
    result = dg.materialize(
        [serving_snapshot], resources={"warehouse": WarehouseResource(database=str(warehouse))}
    )
    assert result.success
    metadata = result.asset_materializations_for_node("publish__serving_snapshot")[0].metadata
    assert metadata["rows/profiles"].value == 2
    assert metadata["rows/scores"].value == 1
    assert metadata["scores_present"].value is True
    assert metadata["size_bytes"].value > 0
    assert Path(str(metadata["path"].value)).parent == snapshots_dir_of(warehouse)


def test_asset_spec() -> None:
    spec = serving_snapshot.specs_by_key[SERVING_SNAPSHOT_KEY]
    assert defs.assets == [serving_snapshot]
    assert spec.group_name == "profiles"
    assert {dep.asset_key for dep in spec.deps} == {
        dg.AssetKey(["marts", name])
        for name in ("profiles", "profile_records", "segment_members", "consent_state")
    }
