"""Publishing serving snapshots: content, pointer flip, pruning, the Dagster asset."""

import hashlib
import json
import sqlite3
from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from cdp_pipeline.publish import snapshot as snapshot_module
from cdp_pipeline.publish.definitions import SERVING_SNAPSHOT_KEY, defs, serving_snapshot
from cdp_pipeline.publish.lookup_store import connect_read_only, lookup_store_of
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
        "profiles": 2,
        "identifiers": 6,
        "segment_members": 2,
        "consents": 2,
        "traits": 0,
        "scores": 0,
        "lookup_identifiers": 4,
        "lookup_cards": 2,
    }
    assert summary.lookup_path == summary.path.with_suffix(".sqlite")
    assert summary.name == summary.path.stem
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
        "profile_id:p-1": "p-1",
        "profile_id:p-2": "p-2",
        "a_profiel_id:A1": "p-1",
        "anonymous_id:anon-2": "p-2",
        "device_id:dev-1": "p-1",
        f"email_sha256:{digest}": "p-1",
    }
    assert members == [("auto_families", "p-2", True), ("culture_lapsed_buyers", "p-1", False)]
    assert subject_columns == (0,)
    store = sqlite3.connect(summary.lookup_path)
    # Profile ids are their own key into cards; every other kind goes through identifiers.
    assert dict(store.execute("select lookup_key, profile_id from identifiers")) == {
        key: profile for key, profile in keys.items() if not key.startswith("profile_id:")
    }
    cards = _cards(store)
    assert cards["p-1"] == {
        "segments": [
            {
                "segment": "culture_lapsed_buyers",
                "automatic": False,
                "entered_at": "2025-11-30T02:00:00",
            },
        ],
        "traits": {},
        "scores": [],
        "consents": {
            "profiling": {
                "status": "granted",
                "updated_at": "2025-11-30T02:00:00",
                "source": "consents",
            },
        },
        "contact": {
            "first_name": None,
            "last_name": None,
            "email": " Mixed.Case@Example.org",
            "phone": None,
        },
    }
    assert cards["p-2"]["segments"][0]["segment"] == "auto_families"
    assert cards["p-2"]["consents"] == {
        "profiling": {"status": "unknown", "updated_at": None, "source": None}
    }
    assert store.execute("select name, format, profiles from snapshot_info").fetchone() == (
        summary.name,
        1,
        2,
    )


def _cards(store: sqlite3.Connection) -> dict[str, dict[str, object]]:
    """Each card of the look-up store as its parts, parsed."""
    parts = ("segments", "traits", "scores", "consents", "contact")
    return {
        profile_id: {
            part: json.loads(text) for part, text in zip(parts, card.split("\x1f"), strict=True)
        }
        for profile_id, card in store.execute("select profile_id, card from cards")
    }


def test_withdrawn_profiling_is_left_out_of_the_cards(tmp_path: Path) -> None:
    warehouse = _warehouse(tmp_path / "warehouse" / "cdp.duckdb", scores="long")
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update marts.consent_state set status = 'withdrawn' where profile_id = 'p-1'")
        con.execute(
            "update marts.segment_members set segment = 'auto_x' where membership_id = 'm1'"
        )
        con.execute(
            "insert into marts.segment_members values ('m5', 'rule_based', 'p-1', ?, null)", [T0]
        )
    card = _cards(sqlite3.connect(lookup_store_of(_publish(warehouse))))["p-1"]
    assert [segment["segment"] for segment in card["segments"]] == ["rule_based"]
    assert card["scores"] == []


def test_traits_of_every_type_become_json(tmp_path: Path) -> None:
    warehouse = _warehouse(tmp_path / "warehouse" / "cdp.duckdb")
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            """
            create table marts.profile_traits as select
                'p-1' as profile_id, 'concert' as favourite, 5 as rfm, true as member,
                123.50::decimal(10, 2) as monetary, 'nan'::double as broken, 0.25 as ratio,
                date '2025-10-01' as last_purchase, timestamp '2025-10-01 12:30:00.5' as seen,
                ['a', 'b'] as categories, [1.5, 'inf'::double] as values,
                {'x': 1} as nested, uuid '00000000-0000-0000-0000-000000000001' as uuid
            """
        )
    cards = _cards(sqlite3.connect(lookup_store_of(_publish(warehouse))))
    assert cards["p-1"]["traits"] == {
        "favourite": "concert",
        "rfm": 5,
        "member": True,
        "monetary": 123.5,
        "broken": None,
        "ratio": 0.25,
        "last_purchase": "2025-10-01",
        "seen": "2025-10-01T12:30:00.500000",
        "categories": ["a", "b"],
        "values": [1.5, None],
        "nested": "{'x': 1}",
        "uuid": "00000000-0000-0000-0000-000000000001",
    }
    assert cards["p-2"]["traits"] == {}


def test_read_only_connection_returns_bytes(tmp_path: Path) -> None:
    path = lookup_store_of(_publish(_warehouse(tmp_path / "warehouse" / "cdp.duckdb")))
    connection = connect_read_only(path)
    card = connection.execute("select card from cards where profile_id = 'p-2'").fetchone()[0]
    assert card.startswith(b'[{"segment":"auto_families"')
    with pytest.raises(sqlite3.OperationalError):
        connection.execute("delete from cards")


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
        name for p in published[1:] for name in (p.name, lookup_store_of(p).name)
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
    assert sorted(p.name for p in first.parent.glob("serving-*")) == [
        first.name,
        lookup_store_of(first).name,
    ]


def test_a_failed_look_up_store_leaves_no_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = _warehouse(tmp_path / "warehouse" / "cdp.duckdb")
    first = _publish(warehouse)

    def half_written(con: duckdb.DuckDBPyConnection, target: Path, **_: object) -> None:
        target.write_bytes(b"partial")
        raise sqlite3.OperationalError("disk full")

    monkeypatch.setattr(snapshot_module, "build_lookup_store", half_written)
    with pytest.raises(sqlite3.OperationalError):
        _publish(warehouse)
    assert read_pointer(snapshots_dir_of(warehouse)) == first
    assert sorted(p.name for p in first.parent.glob("serving-*")) == [
        first.name,
        lookup_store_of(first).name,
    ]


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
