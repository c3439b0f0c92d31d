"""What the UI reads: the published serving snapshot and its own read-only warehouse replica.

The nightly job holds the warehouse file (DuckDB admits one writer, and a writer locks out
other processes' readers), so the UI never reads it while a request waits:

* the **serving snapshot** (``current_snapshot``) answers searches, golden records,
  consents, current segments, traits and scores; it is published read-only by the job;
* the **replica** (``state_dir/ui/replica/replica-<time>.duckdb``) holds the tables the
  snapshot leaves out (identity evidence and review queue, source records, interactions,
  segment history, the dry run's suppression signals). It is copied from the warehouse,
  table by table and sorted by ``profile_id`` so DuckDB's min/max zone maps make a
  one-profile read skip almost every block (tables keyed by record id get an index),
  whenever the warehouse changed and is not locked by a run; while a run holds it the
  previous replica is served.
"""

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from cdp_pipeline.activation.config import Destination
from cdp_pipeline.activation.sync import DryRunReport, plan_report
from cdp_pipeline.publish import current_snapshot
from cdp_pipeline.settings import Settings
from cdp_pipeline.ui import search_index
from cdp_pipeline.ui.search_index import fold

logger = logging.getLogger(__name__)

# Copied into the replica when present. Tables with a profile_id are sorted by it.
REPLICA_TABLES = (
    ("identity", "record_profiles"),
    ("identity", "links"),
    ("identity", "profile_history"),
    ("identity", "review_queue"),
    ("identity", "golden_attributes"),
    ("intermediate", "int_identity__records"),
    # The matching preview re-runs identity resolution on these two.
    ("intermediate", "int_identity__web_identities"),
    ("marts", "profiles"),
    ("marts", "profile_records"),
    ("marts", "interactions"),
    ("marts", "segment_members"),
    ("marts", "consent_state"),
    ("marts", "profile_traits"),
    # Segment estimates evaluate propensity conditions on these.
    ("ml", "propensity_scores"),
    # A destination's dry run reads these as suppression signals (activation.audience).
    ("staging", "stg_privacy_requests__requests"),
    ("staging", "stg_newsletter__contacts"),
    ("staging", "stg_app_devices__devices"),
)
# Tables without a profile_id are read by record id when a profile page joins them to the
# profile's records. Sorting does not help them (DuckDB's min/max zone maps keep a string's
# first 8 bytes, and record ids start with their source name), so the replica gives them an
# ART index, which the join uses. Measured on the 1 000 000-profile bench replica
# (bench/ui_latency.py, 2.1 M records, 1.5 M links, load 1.8): records with their details
# 56-80 ms -> 7 ms, the links of a profile 30 ms -> 3 ms; building both indexes took 1.7 s.
REPLICA_INDEXES = (
    ("intermediate", "int_identity__records", "record_id"),
    ("identity", "links", "record_id_l"),
)
# Stored with a replica: a replica made by code that copied other tables or indexes is
# copied again even when the warehouse did not change.
REPLICA_LAYOUT = hashlib.sha256(repr((REPLICA_TABLES, REPLICA_INDEXES)).encode()).hexdigest()[:16]
# A replica younger than this is not checked against the warehouse again: a stat per page
# view is cheap, but a refused lock attempt during a run is not.
REFRESH_INTERVAL_SECONDS = 30.0
SEARCH_LIMIT = 50
# Snapshots up to this many profiles get their search index built in the request that
# first needs it (well under a second); larger ones in a background thread, while searches
# scan the snapshot.
SYNC_INDEX_PROFILES = 20_000


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    found = con.execute(
        "select count(*) from information_schema.tables"
        " where table_catalog = current_database() and table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(found and found[0])


def columns_of(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[str]:
    return [
        row[0]
        for row in con.execute(
            "select column_name from information_schema.columns"
            " where table_catalog = current_database() and table_schema = ? and table_name = ?"
            " order by ordinal_position",
            [schema, table],
        ).fetchall()
    ]


def _quoted_path(path: Path) -> str:
    # ATTACH takes no bound parameters; the path is ours, quotes are doubled all the same.
    return "'" + str(path).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _stamp(path: Path) -> str:
    """Identity of a warehouse version: size and mtime of the file and its WAL."""
    parts = []
    for candidate in (path, path.with_name(path.name + ".wal")):
        try:
            info = candidate.stat()
        except FileNotFoundError:
            parts.append("-")
            continue
        parts.append(f"{info.st_size}:{info.st_mtime_ns}")
    return "|".join(parts)


class Store:
    """Read-only connections to the current snapshot and replica, reopened when they change.

    One DuckDB connection per file is shared; each request gets its own cursor from it
    (``reader``), which is DuckDB's way of using one database from several threads.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._connections: dict[str, tuple[str, duckdb.DuckDBPyConnection]] = {}
        self._last_check = 0.0
        self._building: set[Path] = set()
        self._copying = False
        self.replica_message = ""

    @property
    def _replica_dir(self) -> Path:
        return self.settings.state_dir / "ui" / "replica"

    @property
    def _replica_meta(self) -> Path:
        return self._replica_dir / "CURRENT.json"

    @property
    def replica_path(self) -> Path:
        """The current copy. Every copy gets a new name: DuckDB caches an open database by
        its path in the process, so a file replaced under the same name would keep being
        served from the old one while any connection to it lives."""
        name = self.replica_info().get("file") or "none"
        return self._replica_dir / name

    def _open(self, kind: str, path: Path | None) -> duckdb.DuckDBPyConnection | None:
        if path is None or not path.exists():
            return None
        key = f"{path}:{path.stat().st_mtime_ns}:{path.stat().st_ino}"
        with self._lock:
            current = self._connections.get(kind)
            if current and current[0] == key:
                return current[1]
            con = duckdb.connect(str(path), read_only=True)
            # The replaced connection is left to the garbage collector, not closed: a
            # request that took a cursor from it a moment ago may still be reading.
            self._connections[kind] = (key, con)
            return con

    @contextmanager
    def snapshot(self) -> Iterator[duckdb.DuckDBPyConnection | None]:
        con = self._open("snapshot", current_snapshot(self.settings))
        if con is None:
            yield None
            return
        cursor = con.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    @contextmanager
    def replica(self) -> Iterator[duckdb.DuckDBPyConnection | None]:
        if self.replica_path.exists():
            # A stale copy keeps serving while the new one is made beside it.
            self._refresh_in_background()
        else:
            self.refresh_replica(force=True)
        con = self._open("replica", self.replica_path)
        if con is None:
            yield None
            return
        cursor = con.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    @property
    def search_dir(self) -> Path:
        return self.settings.state_dir / "ui" / "search"

    def search(self, query: str, limit: int = SEARCH_LIMIT) -> tuple[list[dict], str]:
        """Matching profiles and how they were found (``index``, ``scan`` or ``none``)."""
        snapshot_path = current_snapshot(self.settings)
        if snapshot_path is None:
            return [], "none"
        index = search_index.index_path(self.search_dir, snapshot_path)
        if not index.exists():
            self._ensure_index(snapshot_path, index)
        if index.exists():
            return search_index.search(index, query, limit), "index"
        with self.snapshot() as con:
            return (search_profiles(con, query, limit) if con is not None else []), "scan"

    def _ensure_index(self, snapshot_path: Path, index: Path) -> None:
        with self._lock:
            if index in self._building:
                return
            self._building.add(index)
        with self.snapshot() as con:
            found = con.execute("select count(*) from profiles").fetchone() if con else None
        if found and found[0] <= SYNC_INDEX_PROFILES:
            self._build_index(snapshot_path, index)
        else:
            threading.Thread(
                target=self._build_index,
                args=(snapshot_path, index),
                daemon=True,
                name="ui-search-index",
            ).start()

    def _build_index(self, snapshot_path: Path, index: Path) -> None:
        try:
            search_index.build(snapshot_path, index)
            search_index.prune(self.search_dir, {index})
        except Exception:
            # Searches keep scanning the snapshot; the next new snapshot tries again.
            logger.exception("Search index of %s failed", snapshot_path.name)
        finally:
            with self._lock:
                self._building.discard(index)

    def replica_info(self) -> dict[str, Any]:
        if not self._replica_meta.exists():
            return {}
        return json.loads(self._replica_meta.read_text(encoding="utf-8"))

    def _refresh_in_background(self) -> None:
        if time.monotonic() - self._last_check < REFRESH_INTERVAL_SECONDS or self._copying:
            return
        threading.Thread(target=self.refresh_replica, daemon=True, name="ui-replica").start()

    def refresh_replica(self, force: bool = False) -> bool:
        """Copy the warehouse tables when the warehouse changed; False when it was not copied."""
        with self._lock:
            now = time.monotonic()
            # One copy at a time: concurrent requests that find the copy stale skip it.
            if self._copying or (not force and now - self._last_check < REFRESH_INTERVAL_SECONDS):
                return False
            self._last_check = now
            self._copying = True
        try:
            warehouse = self.settings.warehouse
            if not warehouse.exists():
                self.replica_message = "no warehouse yet"
                return False
            stamp = _stamp(warehouse)
            info = self.replica_info()
            if (
                self.replica_path.exists()
                and info.get("stamp") == stamp
                and info.get("layout") == REPLICA_LAYOUT
            ):
                return False
            return self._copy(warehouse, stamp)
        finally:
            self._copying = False

    def _copy(self, warehouse: Path, stamp: str) -> bool:
        self._replica_dir.mkdir(parents=True, exist_ok=True)
        previous = self.replica_path
        target = self._replica_dir / f"replica-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
        counter = 1
        while target.with_suffix(".duckdb").exists():
            counter += 1
            target = target.with_name(f"{target.name.split('~')[0]}~{counter}")
        target = target.with_suffix(".duckdb")
        temporary = self._replica_dir / f".replica.{os.getpid()}.tmp.duckdb"
        temporary.unlink(missing_ok=True)
        started = time.perf_counter()
        copied: list[str] = []
        con = duckdb.connect(str(temporary))
        try:
            try:
                con.execute(f"attach {_quoted_path(warehouse)} as warehouse (read_only)")
            except duckdb.Error as error:
                # The nightly run holds the lock: keep serving the previous replica.
                self.replica_message = f"warehouse busy, showing the previous copy ({error})"
                logger.info("Replica not refreshed: %s", error)
                con.close()
                temporary.unlink(missing_ok=True)
                return False
            try:
                for schema, table in REPLICA_TABLES:
                    present = con.execute(
                        "select count(*) from information_schema.tables where"
                        " table_catalog = 'warehouse' and table_schema = ? and table_name = ?",
                        [schema, table],
                    ).fetchone()
                    if not present or not present[0]:
                        continue
                    names = [
                        row[0]
                        for row in con.execute(
                            "select column_name from information_schema.columns where"
                            " table_catalog = 'warehouse' and table_schema = ?"
                            " and table_name = ?",
                            [schema, table],
                        ).fetchall()
                    ]
                    order = " order by profile_id" if "profile_id" in names else ""
                    con.execute(f"create schema if not exists {_ident(schema)}")
                    con.execute(
                        f"create table {_ident(schema)}.{_ident(table)} as select *"
                        f" from warehouse.{_ident(schema)}.{_ident(table)}{order}"
                    )
                    copied.append(f"{schema}.{table}")
            finally:
                con.execute("detach warehouse")
            for schema, table, column in REPLICA_INDEXES:
                if f"{schema}.{table}" in copied:
                    con.execute(
                        f"create index {_ident(f'{table}__{column}')}"
                        f" on {_ident(schema)}.{_ident(table)} ({_ident(column)})"
                    )
            con.execute("checkpoint")
        finally:
            con.close()
        os.replace(temporary, target)
        seconds = time.perf_counter() - started
        meta = self._replica_meta.with_suffix(".tmp")
        meta.write_text(
            json.dumps(
                {
                    "file": target.name,
                    "stamp": stamp,
                    "layout": REPLICA_LAYOUT,
                    "tables": copied,
                    "seconds": round(seconds, 2),
                    "copied_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            ),
            encoding="utf-8",
        )
        os.replace(meta, self._replica_meta)
        # The previous copy stays for requests that opened it a moment ago; older ones go.
        for old in self._replica_dir.glob("replica-*.duckdb*"):
            if old.name.split(".duckdb")[0] not in (target.stem, previous.stem):
                old.unlink(missing_ok=True)
        self.replica_message = ""
        logger.info(
            "Replica of %s refreshed in %.1f s (%d tables)", warehouse, seconds, len(copied)
        )
        return True


def search_profiles(
    con: duckdb.DuckDBPyConnection, query: str, limit: int = SEARCH_LIMIT
) -> list[dict]:
    """Profiles of the snapshot whose id, e-mail, phone or name matches ``query``.

    Ids (profile, A-profiel, device, web visitor, exact e-mail) go through the snapshot's
    ``identifiers`` table (one indexed key column); e-mail and name are prefix matches and
    phones compare their last nine digits, so ``0470 12 34 56`` finds ``+32470123456``.
    """
    query = query.strip()
    if not query:
        return []
    keys = [
        f"{kind}:{query}" for kind in ("profile_id", "a_profiel_id", "device_id", "anonymous_id")
    ]
    if "@" in query:
        keys.append("email_sha256:" + _sha256(query.lower()))
    found = rows(
        con,
        "select distinct profile_id from identifiers where lookup_key in"
        " (select unnest(?::varchar[]))",
        [keys],
    )
    ids = [row["profile_id"] for row in found]
    digits = re.sub(r"\D", "", query)
    conditions: list[str] = []
    params: list[Any] = []
    if "@" in query:
        conditions.append("lower(email) like ? escape '\\'")
        params.append(_like_prefix(query.lower()))
    elif len(digits) >= 6 and len(digits) >= len(re.sub(r"[\s+().-]", "", query)):
        conditions.append("regexp_replace(phone, '[^0-9]', '', 'g') like ?")
        params.append("%" + digits[-9:])
    else:
        tokens = [fold(token) for token in query.split() if token][:4]
        if tokens:
            conditions.append(
                " and ".join(
                    "(strip_accents(lower(first_name)) like ? escape '\\'"
                    " or strip_accents(lower(last_name)) like ? escape '\\')"
                    for _ in tokens
                )
            )
            for token in tokens:
                params += [_like_prefix(token), _like_prefix(token)]
    where = ["profile_id in (select unnest(?::varchar[]))"]
    all_params: list[Any] = [ids]
    if conditions:
        where.append("(" + conditions[0] + ")")
        all_params += params
    return rows(
        con,
        "select profile_id, first_name, last_name, email, phone, a_profiel_id, is_known"
        f" from profiles where {' or '.join(where)}"
        " order by last_name nulls last, first_name nulls last, profile_id limit ?",
        [*all_params, limit],
    )


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


def _optional(con: duckdb.DuckDBPyConnection | None, schema: str, table: str) -> bool:
    return con is not None and table_exists(con, schema, table)


def profile_360(
    snapshot: duckdb.DuckDBPyConnection | None,
    replica: duckdb.DuckDBPyConnection | None,
    profile_id: str,
    interactions_limit: int = 200,
) -> dict[str, Any] | None:
    """Everything the profile page shows, or None when neither store knows the profile."""
    page: dict[str, Any] = {"profile_id": profile_id}
    golden = []
    if _optional(replica, "marts", "profiles"):
        golden = rows(replica, "select * from marts.profiles where profile_id = ?", [profile_id])
    if not golden and snapshot is not None:
        golden = rows(snapshot, "select * from profiles where profile_id = ?", [profile_id])
    if not golden:
        return None
    page["golden"] = golden[0]
    page["golden_sources"] = (
        rows(
            replica,
            "select attribute, value, source, record_id, observed_at, rule"
            " from identity.golden_attributes where profile_id = ? order by attribute",
            [profile_id],
        )
        if _optional(replica, "identity", "golden_attributes")
        else []
    )
    page["records"] = _source_records(replica, profile_id)
    page["interactions"] = (
        rows(
            replica,
            "select occurred_at, interaction_type, source, category, item_name, amount_eur,"
            " quantity, status from marts.interactions where profile_id = ?"
            " order by occurred_at desc nulls last limit ?",
            [profile_id, interactions_limit],
        )
        if _optional(replica, "marts", "interactions")
        else []
    )
    page["consents"] = []
    page["segments"] = []
    page["scores"] = []
    page["traits"] = {}
    if snapshot is not None:
        page["consents"] = rows(
            snapshot,
            "select purpose, status, updated_at, source from consents where profile_id = ?"
            " order by purpose",
            [profile_id],
        )
        page["segments"] = rows(
            snapshot,
            "select segment, entered_at, is_automatic from segment_members where profile_id = ?"
            " order by segment",
            [profile_id],
        )
        page["scores"] = rows(
            snapshot,
            "select model, score, decile from scores where profile_id = ? order by model",
            [profile_id],
        )
        traits = rows(snapshot, "select * from traits where profile_id = ?", [profile_id])
        page["traits"] = {
            k: v for k, v in (traits[0] if traits else {}).items() if k != "profile_id"
        }
    page["segment_history"] = (
        rows(
            replica,
            "select segment, entered_at, exited_at from marts.segment_members"
            " where profile_id = ? order by entered_at desc",
            [profile_id],
        )
        if _optional(replica, "marts", "segment_members")
        else []
    )
    return page


def _source_records(replica: duckdb.DuckDBPyConnection | None, profile_id: str) -> list[dict]:
    # identity.record_profiles is the identity step's own assignment; marts.profile_records
    # repeats it after dbt, so it is only the fallback of a warehouse without identity.*.
    assignment = next(
        (
            f"{schema}.{table}"
            for schema, table in (("identity", "record_profiles"), ("marts", "profile_records"))
            if _optional(replica, schema, table)
        ),
        None,
    )
    if assignment is None:
        return []
    if _optional(replica, "intermediate", "int_identity__records"):
        return rows(
            replica,
            "select records.record_id, records.source, records.record_key, records.role,"
            " details.first_name, details.last_name, details.email, details.phone,"
            " details.birth_date, details.postcode, details.observed_at"
            f" from {assignment} as records"
            " left join intermediate.int_identity__records as details"
            " on records.record_id = details.record_id"
            " where records.profile_id = ? order by records.source, records.record_key",
            [profile_id],
        )
    return rows(
        replica,
        f"select record_id, source, record_key, role from {assignment}"
        " where profile_id = ? order by source, record_key",
        [profile_id],
    )


def dry_run_on_replica(replica: Path, destination: Destination, state_dir: Path) -> DryRunReport:
    """What ``destination``'s next sync would do, planned on the replica, not the warehouse.

    The activation step's own planning (``plan_report``) runs on a private in-memory
    connection with the replica attached read-only as its default catalog: the plan's temp
    tables and the attached sync state stay on that connection, so concurrent dry runs and
    page reads do not see each other's.
    """
    con = duckdb.connect()
    try:
        con.execute(f"attach {_quoted_path(replica)} as replica (read_only)")
        con.execute("use replica")
        return plan_report(con, destination, state_dir)
    finally:
        con.close()


def destinations_of(state_dir: Path, profile_id: str) -> list[dict]:
    """Where the profile was sent: its row in every destination's sync state."""
    found = []
    for path in sorted((state_dir / "activation").glob("*.duckdb")):
        try:
            with duckdb.connect(str(path), read_only=True) as con:
                found += rows(
                    con,
                    "select destination, status, updated_at, last_error from member_state"
                    " where profile_id = ?",
                    [profile_id],
                )
        except duckdb.Error as error:
            # A sync writing this state right now holds its lock; the page shows the rest.
            logger.info("Sync state %s not readable now: %s", path.name, error)
    return found


def segment_sizes(
    snapshot: duckdb.DuckDBPyConnection | None, replica: duckdb.DuckDBPyConnection | None
) -> dict[str, Any]:
    """Current sizes per segment (snapshot) and weekly sizes over time (replica history)."""
    current = (
        rows(
            snapshot,
            "select segment, count(*) as members, bool_or(is_automatic) as is_automatic"
            " from segment_members group by segment order by segment",
        )
        if snapshot is not None
        else []
    )
    history: dict[str, list[dict]] = {}
    if _optional(replica, "marts", "segment_members"):
        # A member on a day entered on or before it and left after it (or never).
        for row in rows(
            replica,
            "with days as (select distinct cast(entered_at as date) as day"
            " from marts.segment_members union select distinct cast(exited_at as date)"
            " from marts.segment_members where exited_at is not null)"
            " select members.segment, days.day, count(*) as members"
            " from days inner join marts.segment_members as members"
            " on cast(members.entered_at as date) <= days.day"
            " and (members.exited_at is null or cast(members.exited_at as date) > days.day)"
            " group by members.segment, days.day order by members.segment, days.day",
        ):
            history.setdefault(row["segment"], []).append(row)
    return {"current": current, "history": history}
