"""A prefix index of the people in one serving snapshot, so searches stay fast at 1M profiles.

DuckDB scans a column to answer ``last_name like 'jans%'``: about 0.25 s for 100 000
profiles on a busy two-core machine, seconds at a million. The UI therefore builds, once
per snapshot, a SQLite file (``state_dir/ui/search/<snapshot>.sqlite``) whose B-tree
answers prefix ranges in well under a millisecond:

* ``terms(term, profile_id)``: ``n:<name word>`` (lower-case, no diacritics, one row per
  word of the first and last name), ``e:<e-mail>``, ``p:<last nine phone digits>`` and
  ``i:<id>`` (profile id, A-profiel id, device id, web visitor id);
* ``profiles``: the columns the result list shows.

The file is written under a temporary name and renamed when complete, so a reader sees a
whole index or none (and then falls back to the snapshot scan).
"""

import logging
import os
import re
import sqlite3
import time
import unicodedata
from pathlib import Path

import duckdb

logger = logging.getLogger(__name__)

BATCH_ROWS = 50_000
_WORDS = re.compile(r"[a-z0-9]+")

# Words of the folded name: the same split as _WORDS, in DuckDB's regexp dialect.
_TERMS_SQL = """
select distinct term, profile_id from (
    select 'n:' || unnest(regexp_extract_all(strip_accents(lower(
        coalesce(first_name, '') || ' ' || coalesce(last_name, ''))), '[a-z0-9]+')) as term,
        profile_id
    from profiles
    union all
    select 'e:' || lower(trim(email)), profile_id from profiles where trim(email) <> ''
    union all
    select 'p:' || right(regexp_replace(phone, '[^0-9]', '', 'g'), 9), profile_id
    from profiles where length(regexp_replace(phone, '[^0-9]', '', 'g')) >= 6
    union all
    select 'i:' || value, profile_id from identifiers
    where kind in ('profile_id', 'a_profiel_id', 'device_id', 'anonymous_id')
)
"""

_SCHEMA = (
    "create table profiles (profile_id text primary key, first_name text, last_name text,"
    " email text, phone text, a_profiel_id text, is_known integer) without rowid",
    "create table terms (term text not null, profile_id text not null,"
    " primary key (term, profile_id)) without rowid",
)


def fold(text: str) -> str:
    """Lower-case without diacritics, as ``strip_accents(lower(...))`` does in DuckDB."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def index_path(directory: Path, snapshot: Path) -> Path:
    return directory / f"{snapshot.stem}.sqlite"


def build(snapshot: Path, target: Path) -> float:
    """Write the index of ``snapshot`` to ``target``; the seconds it took."""
    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    lite = sqlite3.connect(temporary)
    try:
        # A throw-away file until the rename: no journal and no fsync per batch.
        lite.execute("pragma journal_mode = off")
        lite.execute("pragma synchronous = off")
        for statement in _SCHEMA:
            lite.execute(statement)
        with duckdb.connect(str(snapshot), read_only=True) as con:
            _copy(
                con,
                lite,
                "select profile_id, first_name, last_name, email, phone,"
                " a_profiel_id, cast(is_known as integer) from profiles order by profile_id",
                "insert into profiles values (?, ?, ?, ?, ?, ?, ?)",
            )
            _copy(
                con,
                lite,
                _TERMS_SQL + " order by term, profile_id",
                "insert or ignore into terms values (?, ?)",
            )
        lite.commit()
    finally:
        lite.close()
    os.replace(temporary, target)
    seconds = time.perf_counter() - started
    logger.info("Search index of %s built in %.1f s", snapshot.name, seconds)
    return seconds


def _copy(
    con: duckdb.DuckDBPyConnection, lite: sqlite3.Connection, select: str, insert: str
) -> None:
    cursor = con.execute(select)
    while batch := cursor.fetchmany(BATCH_ROWS):
        lite.executemany(insert, batch)


def prune(directory: Path, keep: set[Path]) -> None:
    """Remove the indexes of snapshots no longer served."""
    for path in directory.glob("*.sqlite"):
        if path not in keep:
            path.unlink(missing_ok=True)


def _prefix_range(term: str) -> tuple[str, str]:
    # Every string starting with ``term`` sorts in [term, term + U+10FFFF).
    return term, term + "\U0010ffff"


def search(path: Path, query: str, limit: int) -> list[dict]:
    """Profiles matching ``query``: ids and e-mails exactly or by prefix, phones by their
    last nine digits, names by a prefix of every word typed."""
    query = query.strip()
    if not query:
        return []
    digits = re.sub(r"\D", "", query)
    branches: list[str] = []
    params: list[str] = []
    # Ids are matched exactly, whatever else the query looks like.
    branches.append("select profile_id from terms where term = ?")
    params.append("i:" + query)
    if "@" in query:
        branches.append("select profile_id from terms where term >= ? and term < ?")
        params += _prefix_range("e:" + query.lower())
    elif len(digits) >= 6 and len(digits) >= len(re.sub(r"[\s+().-]", "", query)):
        branches.append("select profile_id from terms where term = ?")
        params.append("p:" + digits[-9:])
    else:
        words = _WORDS.findall(fold(query))[:4]
        if words:
            # Every word typed must start some word of the name.
            branches.append(
                " intersect ".join(
                    "select profile_id from terms where term >= ? and term < ?" for _ in words
                )
            )
            for word in words:
                params += _prefix_range("n:" + word)
    union = " union ".join(f"select * from ({branch})" for branch in branches)
    lite = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        lite.row_factory = sqlite3.Row
        found = lite.execute(
            "select profiles.* from profiles where profile_id in"
            f" (select profile_id from ({union}) limit 1000)"
            " order by last_name is null, last_name, first_name, profile_id limit ?",
            [*params, limit],
        ).fetchall()
    finally:
        lite.close()
    return [dict(row) | {"is_known": bool(row["is_known"])} for row in found]
