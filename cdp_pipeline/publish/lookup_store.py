"""The look-up store: a SQLite row store beside each serving snapshot, for the profile API.

DuckDB is a column store: a point query on the serving snapshot cost 0.8–3.7 ms on a
1M-profile file, and the API answered about 90 requests a second. A B-tree row store answers
the same look-up in microseconds, so every publication also writes
``serving-<UTC time>.sqlite`` with two ``WITHOUT ROWID`` tables (the rows live in the
primary-key B-tree, so a look-up is one tree descent):

* ``identifiers(lookup_key, profile_id)``: ``<kind>:<value>`` → profile for every kind but
  ``profile_id`` (a profile id is its own key into ``cards``);
* ``cards(profile_id, card)``: each part of the answer (segments, traits, scores, consents,
  contact) as ready-made JSON rendered here by DuckDB, the parts separated by the byte 0x1F
  (JSON text never holds a raw control character), so a request splits and joins byte
  strings and never parses or validates anything.

The rule on withdrawn ``profiling`` consent is applied when the cards are rendered: such a
profile's card holds no scores and no automatic (``auto_``) segment, so the API cannot leak
them whatever a key may read. The file is written once, then only ever opened read-only and
``immutable`` (no locks, no change checks); CURRENT names its publication only once the
file is complete and synced.
"""

import logging
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import duckdb

logger = logging.getLogger(__name__)

LOOKUP_SUFFIX = ".sqlite"
# Bumped whenever the tables change shape; a reader refuses a file of another version.
FORMAT_VERSION = 1
# The order of the parts in a card, also their order in a profile (the field order of the
# API's Profile model), and the byte between them.
CARD_PARTS = ("segments", "traits", "scores", "consents", "contact")
CARD_SEPARATOR = b"\x1f"
# A card row is about 1 KB: 8 KB pages keep it inside its B-tree leaf (SQLite moves a row to
# overflow pages when it exceeds about a quarter of a page in a WITHOUT ROWID table).
_PAGE_SIZE = 8192
# Rows moved from DuckDB to SQLite per executemany call.
_CHUNK_ROWS = 50_000
# Memory-map the whole file (SQLite caps it at about 2 GB): page look-ups become plain reads of
# the OS page cache instead of read() calls into SQLite's own cache.
MMAP_BYTES = 2**31 - 2**16

_SCHEMA = (
    "create table identifiers (lookup_key text primary key, profile_id text not null)"
    " without rowid",
    "create table cards (profile_id text primary key, card text not null) without rowid",
    "create table snapshot_info (name text, published_at text, format integer,"
    " profiles integer, traits_present integer, scores_present integer)",
)


def lookup_store_of(snapshot: Path) -> Path:
    """The look-up store published together with the DuckDB snapshot ``snapshot``."""
    return snapshot.with_suffix(LOOKUP_SUFFIX)


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection for serving; TEXT comes back as UTF-8 bytes, ready to send."""
    # immutable=1: the file never changes after publication, so SQLite takes no locks and
    # never checks for changes by other processes.
    connection = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True, check_same_thread=False
    )
    connection.text_factory = bytes
    connection.execute(f"pragma mmap_size = {MMAP_BYTES}")
    connection.execute("pragma query_only = 1")
    return connection


def build_lookup_store(
    con: duckdb.DuckDBPyConnection,
    target: Path,
    catalog: str,
    name: str,
    traits_present: bool,
    scores_present: bool,
) -> dict[str, int]:
    """Write the look-up store ``target`` from the snapshot tables in DuckDB catalog ``catalog``.

    Returns the rows written per table. ``target`` must not exist.
    """
    started = time.perf_counter()
    store = sqlite3.connect(target, isolation_level=None)
    try:
        # Nothing reads the file before it is complete and a failed build is deleted, so
        # the safety of a journal and of syncs is not needed until the final fsync.
        for pragma in (
            f"page_size = {_PAGE_SIZE}",
            "journal_mode = off",
            "synchronous = off",
            "locking_mode = exclusive",
            "temp_store = memory",
            "cache_size = -262144",
        ):
            store.execute(f"pragma {pragma}")
        store.execute("begin")
        for statement in _SCHEMA:
            store.execute(statement)
        # DuckDB renders the cards on a second cursor while this thread copies the
        # identifiers: DuckDB releases the GIL, so the two overlap on two cores.
        cards_cursor, identifiers_cursor = con.cursor(), con.cursor()
        with (
            cards_cursor,
            identifiers_cursor,
            ThreadPoolExecutor(1, thread_name_prefix="lookup-store") as pool,
        ):
            rendered = pool.submit(_execute, cards_cursor, cards_sql(con, catalog))
            try:
                # Rows arrive in key order, so each insert appends to the right edge of the
                # B-tree.
                identifiers = _copy(
                    store,
                    "insert into identifiers values (?, ?)",
                    _execute(
                        identifiers_cursor,
                        f"select lookup_key, profile_id from {catalog}.identifiers"
                        " where kind <> 'profile_id' order by lookup_key",
                    ),
                )
            except BaseException:
                cards_cursor.interrupt()
                raise
            copied_at = time.perf_counter()
            cards = _copy(store, "insert into cards values (?, ?)", rendered.result())
        store.execute(
            "insert into snapshot_info values (?, ?, ?, ?, ?, ?)",
            [
                name,
                datetime.now(UTC).isoformat(timespec="seconds"),
                FORMAT_VERSION,
                cards,
                int(traits_present),
                int(scores_present),
            ],
        )
        store.execute("commit")
    finally:
        store.close()
    logger.info(
        "Wrote look-up store %s: %d identifiers in %.1f s, %d cards in %.1f s",
        target.name,
        identifiers,
        copied_at - started,
        cards,
        time.perf_counter() - copied_at,
    )
    return {"lookup_identifiers": identifiers, "lookup_cards": cards}


def cards_sql(con: duckdb.DuckDBPyConnection, catalog: str) -> str:
    """One row per profile, by profile id: the id and its card (the parts, 0x1F between)."""
    return f"""
    with

    profiling_withdrawn as (

        select distinct profile_id
        from {catalog}.consents
        where purpose = 'profiling' and status = 'withdrawn'

    ),

    -- Ordered aggregates (string_agg(... order by ...)) cost three times an unordered one
    -- here. Lists are sorted afterwards instead: each element's JSON starts with its sort
    -- key (the segment's or the model's name), so sorting the texts sorts by that name.
    -- Consents are an object, whose key order means nothing.
    segment_parts as (

        select
            members.profile_id,
            '[' || array_to_string(list_sort(list(
                json_object(
                    'segment', members.segment,
                    'automatic', members.is_automatic,
                    'entered_at', {_iso_timestamp("members.entered_at")}
                )
            )), ',') || ']' as segments
        from {catalog}.segment_members as members
        where members.segment is not null
            and not (
                members.is_automatic
                and exists (
                    select 1 from profiling_withdrawn
                    where profiling_withdrawn.profile_id = members.profile_id
                )
            )
        group by members.profile_id

    ),

    score_parts as (

        select
            scores.profile_id,
            '[' || array_to_string(list_sort(list(
                json_object(
                    'model', scores.model,
                    'decile', scores.decile,
                    'score', case when isfinite(scores.score) then scores.score end
                )
            )), ',') || ']' as scores
        from {catalog}.scores as scores
        where scores.model is not null
            and not exists (
                select 1 from profiling_withdrawn
                where profiling_withdrawn.profile_id = scores.profile_id
            )
        group by scores.profile_id

    ),

    consent_parts as (

        select
            consents.profile_id,
            '{{' || string_agg(
                to_json(consents.purpose) || ':' || json_object(
                    'status', coalesce(consents.status, 'unknown'),
                    'updated_at', {_iso_timestamp("consents.updated_at")},
                    'source', consents.source
                ),
                ','
            ) || '}}' as consents
        from {catalog}.consents as consents
        where consents.purpose is not null
        group by consents.profile_id

    ),

    trait_parts as (

        select
            traits.profile_id,
            any_value({_traits_json(con, catalog)}) as traits
        from {catalog}.traits as traits
        group by traits.profile_id

    )

    -- One text column rather than five: a fifth of the Python objects to move to SQLite.
    select
        profiles.profile_id,
        coalesce(segment_parts.segments, '[]')
        || chr(31) || coalesce(trait_parts.traits, '{{}}')
        || chr(31) || coalesce(score_parts.scores, '[]')
        || chr(31) || coalesce(consent_parts.consents, '{{}}')
        || chr(31) || json_object(
            'first_name', profiles.first_name,
            'last_name', profiles.last_name,
            'email', profiles.email,
            'phone', profiles.phone
        ) as card
    from {catalog}.profiles as profiles
    left join segment_parts
        on profiles.profile_id = segment_parts.profile_id
    left join trait_parts
        on profiles.profile_id = trait_parts.profile_id
    left join score_parts
        on profiles.profile_id = score_parts.profile_id
    left join consent_parts
        on profiles.profile_id = consent_parts.profile_id
    order by profiles.profile_id
    """


def _execute(cursor: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyConnection:
    cursor.execute("set enable_progress_bar = false")
    return cursor.execute(sql)


def _copy(store: sqlite3.Connection, insert: str, source: duckdb.DuckDBPyConnection) -> int:
    rows = 0
    for chunk in _chunks(source):
        store.executemany(insert, chunk)
        rows += len(chunk)
    return rows


def _chunks(source: duckdb.DuckDBPyConnection) -> Iterator[list[tuple]]:
    while chunk := source.fetchmany(_CHUNK_ROWS):
        yield chunk


def _iso_timestamp(column: str) -> str:
    """``column`` as the API writes a timestamp: ISO 8601 with ``T``, microseconds if any."""
    return (
        f"case when epoch_us({column}) % 1000000 = 0"
        f" then strftime({column}, '%Y-%m-%dT%H:%M:%S')"
        f" else strftime({column}, '%Y-%m-%dT%H:%M:%S.%f') end"
    )


_INTEGER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}


def _trait_value_sql(expression: str, data_type: str) -> str:
    """A JSON-safe value of a trait column of DuckDB type ``data_type``.

    Numbers, booleans and text stay as they are; decimals become doubles; NaN and infinity
    (which JSON cannot carry) become null; dates and timestamps become ISO text; a list of
    such values stays a list; anything else (structs, maps, nested lists) becomes its text.
    """
    plain = _plain_value_sql(expression, data_type)
    if plain is not None:
        return plain
    if data_type.endswith("[]"):
        element = _plain_value_sql("element", data_type.removesuffix("[]"))
        if element is not None:
            return f"list_transform({expression}, lambda element: {element})"
    return f"cast({expression} as varchar)"


def _plain_value_sql(expression: str, data_type: str) -> str | None:
    if data_type in _INTEGER_TYPES or data_type in ("BOOLEAN", "VARCHAR"):
        return expression
    if data_type in ("DOUBLE", "FLOAT"):
        return f"case when isfinite({expression}) then {expression} end"
    if data_type.startswith("DECIMAL"):
        return f"cast({expression} as double)"
    if data_type == "DATE":
        return f"strftime({expression}, '%Y-%m-%d')"
    if data_type == "TIMESTAMP":
        return _iso_timestamp(expression)
    return None


def _traits_json(con: duckdb.DuckDBPyConnection, catalog: str) -> str:
    """A json_object(...) expression of every trait column of ``catalog``.traits."""
    columns = con.execute(
        "select column_name, data_type from information_schema.columns"
        " where table_catalog = ? and table_schema = 'main' and table_name = 'traits'"
        " order by ordinal_position",
        [catalog],
    ).fetchall()
    arguments = []
    for column_name, data_type in columns:
        if column_name == "profile_id":
            continue
        literal = "'" + column_name.replace("'", "''") + "'"
        quoted = 'traits."' + column_name.replace('"', '""') + '"'
        arguments.append(f"{literal}, {_trait_value_sql(quoted, data_type)}")
    if not arguments:
        return "'{}'"
    return "json_object(" + ", ".join(arguments) + ")"
