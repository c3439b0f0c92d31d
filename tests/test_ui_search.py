"""The UI's search on a synthetic snapshot: the prefix index and the scan agree, fast."""

import time
from pathlib import Path

import duckdb
import pytest

from cdp_pipeline.publish.snapshot import publish_snapshot
from cdp_pipeline.publish.synthetic import synthetic_marts
from cdp_pipeline.ui import search_index
from cdp_pipeline.ui.data import search_profiles

PROFILES = 3_000


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("search")
    with duckdb.connect(str(folder / "cdp.duckdb")) as con:
        synthetic_marts(con, PROFILES)
        # A name with diacritics and an apostrophe, as Antwerp's sources deliver them.
        con.execute(
            "update marts.profiles set first_name = 'Hélène', last_name = 'D''Hondt',"
            " phone = '0470 12 34 56', email = 'Person7@Example.org', a_profiel_id = 'A7'"
            " where profile_id = 'p-000000000007'"
        )
        return publish_snapshot(con, folder / "snapshots").path


@pytest.fixture(scope="module")
def index(snapshot: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("index") / "search.sqlite"
    search_index.build(snapshot, path)
    return path


@pytest.mark.parametrize(
    "query",
    [
        "p-000000000007",  # profile id
        "helene",  # first name without the accent
        "Hél d'hon",  # two word prefixes, accent and apostrophe as typed
        "+32 470 12 34 56",  # phone in another format
        "person7@EXAMPLE.org",  # e-mail, any case
        "A7",  # A-profiel id
    ],
)
def test_index_finds_a_person_by_every_kind_of_query(index: Path, query: str) -> None:
    found = [row["profile_id"] for row in search_index.search(index, query, 50)]
    assert "p-000000000007" in found


def test_index_and_scan_return_the_same_profiles(index: Path, snapshot: Path) -> None:
    with duckdb.connect(str(snapshot), read_only=True) as con:
        for query in ("Family12", "Given5 Family1", "person70@example.org", "p-00000000000a"):
            scanned = {row["profile_id"] for row in search_profiles(con, query, limit=5000)}
            indexed = {row["profile_id"] for row in search_index.search(index, query, 5000)}
            assert indexed == scanned, query


def test_no_match_and_empty_query(index: Path) -> None:
    assert search_index.search(index, "zzzzqqq", 50) == []
    assert search_index.search(index, "   ", 50) == []
    # LIKE wildcards typed by a user are text, not patterns.
    assert search_index.search(index, "%", 50) == []


def test_index_search_is_fast(index: Path) -> None:
    started = time.perf_counter()
    for _ in range(20):
        search_index.search(index, "Family12", 50)
    assert (time.perf_counter() - started) / 20 < 0.1


def test_the_replica_follows_the_warehouse_while_readers_hold_the_old_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cdp_pipeline.settings import get_settings
    from cdp_pipeline.ui.data import Store

    warehouse = tmp_path / "warehouse" / "cdp.duckdb"
    warehouse.parent.mkdir()
    monkeypatch.setenv("CDP_WAREHOUSE", str(warehouse))
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema identity")
        con.execute("create table identity.record_profiles (record_id varchar, profile_id varchar)")
        con.execute("insert into identity.record_profiles values ('r1', 'p-1')")
    store = Store(get_settings())
    with store.replica() as replica:
        assert replica.execute("select profile_id from identity.record_profiles").fetchall() == [
            ("p-1",)
        ]
        # A night moves the record while this request still reads the first copy.
        with duckdb.connect(str(warehouse)) as con:
            con.execute("update identity.record_profiles set profile_id = 'p-2'")
        assert store.refresh_replica(force=True)
        with store.replica() as fresh:
            assert fresh.execute("select profile_id from identity.record_profiles").fetchall() == [
                ("p-2",)
            ]
        assert replica.execute("select profile_id from identity.record_profiles").fetchall() == [
            ("p-1",)
        ]
    # Unchanged warehouse: no new copy.
    assert not store.refresh_replica(force=True)
