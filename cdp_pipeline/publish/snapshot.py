"""Build a serving snapshot from the marts, flip the CURRENT pointer, prune old snapshots.

A publication is two files holding only what the touchpoints read (contact details,
identifiers, current segment memberships, consent per purpose, traits and propensity scores
when the warehouse has them):

* ``serving-<UTC timestamp>.duckdb``: the tables, for analytical readers (the marketer UI);
* ``serving-<UTC timestamp>.sqlite``: the look-up store the profile API serves from, with
  each profile's answer pre-rendered (see :mod:`cdp_pipeline.publish.lookup_store`).

Readers open them read-only and never touch the warehouse, so a nightly run can hold the
warehouse's single writer lock while they keep answering. Both live in
``<warehouse folder>/snapshots`` beside ``CURRENT``, one line naming the DuckDB file of the
current publication (its look-up store has the same name with ``.sqlite``), replaced
atomically (temp + os.replace) once both files are complete and synced. Neither file is
modified after the flip. Only the new publication and the one it replaced are kept: a reader
that opened the previous files a moment before the flip finishes its requests on them.
"""

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from cdp_pipeline.publish.lookup_store import LOOKUP_SUFFIX, build_lookup_store, lookup_store_of
from cdp_pipeline.settings import Settings

logger = logging.getLogger(__name__)

IDENTIFIER_KINDS = ("profile_id", "a_profiel_id", "anonymous_id", "device_id", "email_sha256")
AUTOMATIC_SEGMENT_PREFIX = "auto_"
SNAPSHOT_PREFIX = "serving-"
SNAPSHOT_SUFFIX = ".duckdb"
POINTER_NAME = "CURRENT"
TRAITS_TABLE = ("marts", "profile_traits")
SCORES_TABLE = ("marts", "propensity_scores")
SNAPSHOT_TABLES = ("profiles", "identifiers", "segment_members", "consents", "traits", "scores")


@dataclass(frozen=True)
class SnapshotSummary:
    """What one publication wrote."""

    path: Path
    rows: dict[str, int]
    size_bytes: int
    traits_present: bool
    scores_present: bool
    removed: list[str] = field(default_factory=list)
    lookup_size_bytes: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The publication's name, as the API reports it: ``serving-<UTC timestamp>``."""
        return publication_name(self.path.name)

    @property
    def lookup_path(self) -> Path:
        """The look-up store published with the snapshot."""
        return lookup_store_of(self.path)


def snapshots_dir(settings: Settings) -> Path:
    """The folder of the serving snapshots, beside the warehouse file."""
    return snapshots_dir_of(settings.warehouse)


def snapshots_dir_of(warehouse: Path) -> Path:
    """The snapshot folder of the warehouse file ``warehouse``."""
    return warehouse.parent / "snapshots"


def lookup_key(kind: str, value: str) -> str:
    """The single indexed column of ``identifiers``: DuckDB's ART only serves one-column keys."""
    return f"{kind}:{value}"


def publication_name(file_name: str) -> str:
    """``serving-<stamp>`` of any file of a publication (``.duckdb``, ``.sqlite``, ``.wal``)."""
    base = file_name.removesuffix(".wal")
    for suffix in (SNAPSHOT_SUFFIX, LOOKUP_SUFFIX):
        base = base.removesuffix(suffix)
    return base


def read_pointer(directory: Path) -> Path | None:
    """The snapshot CURRENT names in ``directory``, or None when there is none (yet)."""
    try:
        name = (directory / POINTER_NAME).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not name or "/" in name or not name.startswith(SNAPSHOT_PREFIX):
        logger.warning("Ignoring a malformed snapshot pointer in %s", directory)
        return None
    path = directory / name
    return path if path.exists() else None


def current_snapshot(settings: Settings) -> Path | None:
    """The serving snapshot readers should use now, or None before the first publication."""
    return read_pointer(snapshots_dir(settings))


def publish_snapshot(
    con: duckdb.DuckDBPyConnection, directory: Path, now: datetime | None = None
) -> SnapshotSummary:
    """Write a new snapshot from the marts ``con`` reads, make it current, prune old ones."""
    directory.mkdir(parents=True, exist_ok=True)
    target = _new_snapshot_path(directory, now or datetime.now(UTC))
    try:
        rows, traits_present, scores_present, seconds = build_snapshot(con, target)
        _fsync(target)
        _fsync(lookup_store_of(target))
    except BaseException:
        # Half-written files are never named by CURRENT; remove them so they cannot pile up.
        _remove(target)
        raise
    previous = read_pointer(directory)
    _flip_pointer(directory, target.name)
    keep = {target.name} | ({previous.name} if previous else set())
    removed = prune_snapshots(directory, keep)
    return SnapshotSummary(
        path=target,
        rows=rows,
        size_bytes=target.stat().st_size,
        traits_present=traits_present,
        scores_present=scores_present,
        removed=removed,
        lookup_size_bytes=lookup_store_of(target).stat().st_size,
        seconds=seconds,
    )


def build_snapshot(
    con: duckdb.DuckDBPyConnection, target: Path
) -> tuple[dict[str, int], bool, bool, dict[str, float]]:
    """Create ``target`` and its look-up store from the marts.

    Returns the rows per table, whether traits and scores were present, and the seconds
    each step took.
    """
    traits_present = _table_exists(con, *TRAITS_TABLE)
    scores_present = _table_exists(con, *SCORES_TABLE)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    # ATTACH takes no bound parameters; the path is ours, quotes are doubled all the same.
    quoted = str(target).replace("'", "''")
    con.execute(f"attach '{quoted}' as serving_snapshot (read_write)")
    try:
        for statement in _BUILD_STATEMENTS:
            con.execute(statement)
        con.execute(_traits_sql() if traits_present else _EMPTY_TRAITS_SQL)
        con.execute(_scores_sql(con) if scores_present else _EMPTY_SCORES_SQL)
        con.execute(
            "create table serving_snapshot.snapshot_info as select ? as name,"
            " ? as published_at, ? as traits_present, ? as scores_present",
            [target.name, datetime.now(UTC).replace(tzinfo=None), traits_present, scores_present],
        )
        rows = {table: _count(con, table) for table in SNAPSHOT_TABLES}
        seconds["duckdb_tables"] = time.perf_counter() - started
        started = time.perf_counter()
        rows |= build_lookup_store(
            con,
            lookup_store_of(target),
            catalog="serving_snapshot",
            name=publication_name(target.name),
            traits_present=traits_present,
            scores_present=scores_present,
        )
        seconds["lookup_store"] = time.perf_counter() - started
        started = time.perf_counter()
        con.execute("checkpoint serving_snapshot")
    finally:
        con.execute("detach serving_snapshot")
    seconds["checkpoint"] = time.perf_counter() - started
    logger.info(
        "Built %s in %s",
        publication_name(target.name),
        ", ".join(f"{step} {value:.1f} s" for step, value in seconds.items()),
    )
    return rows, traits_present, scores_present, seconds


def prune_snapshots(directory: Path, keep: set[str]) -> list[str]:
    """Delete every file of a publication not in ``keep`` (file names); the names removed."""
    kept = {publication_name(name) for name in keep}
    removed = []
    for path in sorted(directory.glob(f"{SNAPSHOT_PREFIX}*")):
        if publication_name(path.name) in kept:
            continue
        path.unlink(missing_ok=True)
        removed.append(path.name)
    return removed


# The tables are built in dependency order inside the attached snapshot (catalog
# serving_snapshot), reading marts.* of the warehouse. Every table keeps only profiles still present
# in marts.profiles: an erased person is absent there, so no identifier can reach them.
_BUILD_STATEMENTS = (
    """
    create table serving_snapshot.profiles as
    select
        profile_id,
        first_name,
        last_name,
        email,
        phone,
        a_profiel_id,
        is_known,
        updated_at
    from marts.profiles
    """,
    # Several profiles can hold one value (two profiles with the same e-mail): the
    # account record wins for A-profiel ids, then the known, most recently updated
    # profile, then the lowest id, so a value answers the same way every time. arg_min over
    # that order is a hash aggregate; the row_number() window it replaced sorted all 4.5M
    # candidates of a 1M-profile warehouse and took a minute.
    """
    create table serving_snapshot.identifiers as
    with

    candidates as (

        select 'profile_id' as kind, profile_id as value, profile_id, 0 as priority
        from serving_snapshot.profiles
        union all
        select 'a_profiel_id', record_key, profile_id, 0
        from marts.profile_records where role = 'account'
        union all
        select 'a_profiel_id', a_profiel_id, profile_id, 1
        from serving_snapshot.profiles
        union all
        select 'anonymous_id', record_key, profile_id, 0
        from marts.profile_records where role = 'visitor'
        union all
        select 'device_id', record_key, profile_id, 0
        from marts.profile_records where role = 'device'
        union all
        select 'email_sha256', sha256(lower(trim(email))), profile_id, 0
        from serving_snapshot.profiles where trim(email) <> ''

    ),

    ranked as (

        select
            candidates.kind,
            candidates.value,
            arg_min(
                candidates.profile_id,
                struct_pack(
                    priority := candidates.priority,
                    known := case
                        when profiles.is_known then 0 when not profiles.is_known then 1 else 2
                    end,
                    recency := coalesce(-epoch_us(profiles.updated_at), 9223372036854775807),
                    profile_id := candidates.profile_id
                )
            ) as profile_id
        from candidates
        inner join serving_snapshot.profiles
            on candidates.profile_id = profiles.profile_id
        where candidates.value is not null and candidates.value <> ''
        group by candidates.kind, candidates.value

    )

    select
        kind || ':' || value as lookup_key,
        kind,
        value,
        profile_id
    from ranked
    """,
    """
    create table serving_snapshot.segment_members as
    select
        members.segment,
        members.profile_id,
        max(members.entered_at) as entered_at,
        starts_with(members.segment, 'auto_') as is_automatic
    from marts.segment_members as members
    inner join serving_snapshot.profiles
        on members.profile_id = profiles.profile_id
    where members.exited_at is null
    group by members.segment, members.profile_id
    """,
    # subject (the identity a consent was given on) stays in the warehouse: touchpoints
    # need the status, not which address or device carried it.
    """
    create table serving_snapshot.consents as
    select
        consent.profile_id,
        consent.purpose,
        consent.status,
        consent.updated_at,
        consent.source
    from marts.consent_state as consent
    inner join serving_snapshot.profiles
        on consent.profile_id = profiles.profile_id
    """,
)

_EMPTY_TRAITS_SQL = "create table serving_snapshot.traits (profile_id varchar)"
_EMPTY_SCORES_SQL = (
    "create table serving_snapshot.scores"
    " (profile_id varchar, model varchar, score double, decile integer)"
)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[str]:
    rows = con.execute(
        "select column_name from information_schema.columns"
        " where table_catalog = current_database() and table_schema = ? and table_name = ?"
        " order by ordinal_position",
        [schema, table],
    ).fetchall()
    return [row[0] for row in rows]


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    row = con.execute(
        "select count(*) from information_schema.tables"
        " where table_catalog = current_database() and table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])


def _traits_sql() -> str:
    """Copy the traits mart as is: each column (but profile_id) is one trait."""
    schema, table = TRAITS_TABLE
    return f"""
    create table serving_snapshot.traits as
    select source_traits.*
    from marts.{_quote(table)} as source_traits
    inner join serving_snapshot.profiles
        on source_traits.profile_id = profiles.profile_id
    """


def _scores_sql(con: duckdb.DuckDBPyConnection) -> str:
    """Normalise the propensity mart to one row per profile and model.

    Issue 5 writes the mart; it may come long (profile_id, model, score, decile) or wide
    (``<model>_decile`` with an optional ``<model>_score`` per model). Both are read here so
    the API does not change when that shape is settled.
    """
    schema, table = SCORES_TABLE
    columns = _columns(con, schema, table)
    source = f"marts.{_quote(table)}"
    model_column = next((c for c in ("model", "model_name", "score_name") if c in columns), None)
    if model_column and "decile" in columns:
        score = "cast(source_scores.score as double)" if "score" in columns else "null::double"
        return f"""
        create table serving_snapshot.scores as
        select
            source_scores.profile_id,
            cast(source_scores.{_quote(model_column)} as varchar) as model,
            {score} as score,
            cast(source_scores.decile as integer) as decile
        from {source} as source_scores
        inner join serving_snapshot.profiles
            on source_scores.profile_id = profiles.profile_id
        """
    selects = []
    for column in columns:
        if not column.endswith("_decile"):
            continue
        model = column.removesuffix("_decile")
        score_column = next((c for c in (f"{model}_score", model) if c in columns), None)
        score = f"cast(source_scores.{_quote(score_column)} as double)" if score_column else "null"
        model_literal = "'" + model.replace("'", "''") + "'"
        selects.append(
            f"select source_scores.profile_id, {model_literal} as model, {score} as score,"
            f" cast(source_scores.{_quote(column)} as integer) as decile"
            f" from {source} as source_scores"
            " inner join serving_snapshot.profiles"
            " on source_scores.profile_id = profiles.profile_id"
        )
    if not selects:
        logger.warning("%s.%s has no decile column; serving no scores", schema, table)
        return _EMPTY_SCORES_SQL
    union = "\nunion all\n".join(selects)
    return f"create table serving_snapshot.scores as select * from ({union})"


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    row = con.execute(f"select count(*) from serving_snapshot.{_quote(table)}").fetchone()
    return int(row[0]) if row else 0


def _new_snapshot_path(directory: Path, now: datetime) -> Path:
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{SNAPSHOT_PREFIX}{stamp}{SNAPSHOT_SUFFIX}"
    counter = 1
    # Two publications within a second (tests, a manual re-run) get distinct names.
    while path.exists() or lookup_store_of(path).exists():
        counter += 1
        path = directory / f"{SNAPSHOT_PREFIX}{stamp}-{counter}{SNAPSHOT_SUFFIX}"
    return path


def _flip_pointer(directory: Path, name: str) -> None:
    """Name ``name`` in CURRENT atomically: readers see the old name or the new, never half."""
    temporary = directory / f".{POINTER_NAME}.{os.getpid()}.tmp"
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(name + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, directory / POINTER_NAME)
    _fsync_directory(directory)


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove(path: Path) -> None:
    """Delete a publication's files: the snapshot, its WAL and its look-up store."""
    for candidate in (path, path.with_name(path.name + ".wal"), lookup_store_of(path)):
        try:
            candidate.unlink()
        except FileNotFoundError:
            pass


def rebuild_lookup_store(snapshot: Path) -> Path:
    """Write the snapshot's look-up store again from the DuckDB snapshot, replacing the old one.

    The store is opened immutable by the API, so it is never edited in place: after an
    erasure cleaned the DuckDB snapshot, a new store is built beside the old one and renamed
    over it. Readers that hold the old file keep reading it until they reopen.
    """
    store = lookup_store_of(snapshot)
    partial = store.with_name(store.name + ".partial")
    partial.unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        # ATTACH takes no bound parameters; the path is ours, quotes are doubled all the same.
        quoted = str(snapshot).replace("'", "''")
        con.execute(f"attach '{quoted}' as serving_snapshot (read_only)")
        traits_present, scores_present = con.execute(
            "select traits_present, scores_present from serving_snapshot.snapshot_info"
        ).fetchone()
        build_lookup_store(
            con,
            partial,
            catalog="serving_snapshot",
            name=publication_name(snapshot.name),
            traits_present=bool(traits_present),
            scores_present=bool(scores_present),
        )
        con.execute("detach serving_snapshot")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        con.close()
    _fsync(partial)
    os.replace(partial, store)
    _fsync_directory(store.parent)
    return store
