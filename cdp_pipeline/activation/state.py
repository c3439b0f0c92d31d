"""Per-member sync state and the sync history, in a DuckDB file beside (not in) the warehouse.

The warehouse is rebuilt from the landing files; what a vendor holds is not, so the state
lives under ``state_dir/activation/<destination>.duckdb``: one file per destination, since
DuckDB admits one writing process per file and the sensor may start several destinations'
syncs at once. It is attached to the warehouse connection for the length of one sync, so
the diff is one SQL join and never a Python loop over the audience.

member_state, one row per destination and profile:

| column | meaning |
| --- | --- |
| status | sent; failed (retried next sync); rejected (refused for good by the vendor, |
| | retried only when the row changes); removed; sending (a batch was in flight) |
| sent_hash | hash of the row the vendor holds; null when it holds nothing |
| vendor_key | what a removal needs: the profile id, or JSON of the e-mail or hashed identifiers |
| pending_hash, pending_key | the row and key of the batch in flight, or of the last refusal |
| attempts, last_error | failed attempts since the last success, and the last error code |
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

STATE_ALIAS = "activation_state"

_SCHEMA = [
    f"""
    create table if not exists {STATE_ALIAS}.member_state (
        destination varchar not null,
        profile_id varchar not null,
        status varchar not null,
        sent_hash varchar,
        vendor_key varchar,
        pending_hash varchar,
        pending_key varchar,
        attempts integer not null default 0,
        last_error varchar,
        run_id varchar,
        updated_at timestamp,
        primary key (destination, profile_id)
    )
    """,
    f"""
    create table if not exists {STATE_ALIAS}.sync_history (
        run_id varchar,
        destination varchar,
        destination_type varchar,
        segment varchar,
        sync_mode varchar,
        started_at timestamp,
        finished_at timestamp,
        outcome varchar,
        segment_members bigint,
        skipped_no_consent bigint,
        skipped_suppressed bigint,
        skipped_minor bigint,
        skipped_no_identifier bigint,
        audience bigint,
        held_below_minimum boolean,
        planned_add bigint,
        planned_update bigint,
        planned_remove bigint,
        sent bigint,
        failed bigint,
        rejected bigint,
        removed bigint,
        batches bigint,
        match_rate varchar,
        error varchar
    )
    """,
    # Dead push tokens, hashed: a token FCM called unregistered is never tried again.
    f"""
    create table if not exists {STATE_ALIAS}.pruned_tokens (
        token_sha256 varchar primary key,
        pruned_at timestamp,
        reason varchar
    )
    """,
]


def state_path(state_root: Path, destination: str) -> Path:
    """The state file of one destination."""
    return state_root / "activation" / f"{destination}.duckdb"


def _quoted(path: Path) -> str:
    # ATTACH takes no bound parameters; the path comes from the settings, not from a user.
    return "'" + str(path).replace("'", "''") + "'"


@contextmanager
def attached_state(
    con: duckdb.DuckDBPyConnection, state_root: Path, destination: str, read_only: bool = False
) -> Iterator[str]:
    """Attach the state database to ``con`` as ``activation_state`` for the block.

    Read-only use (a dry run) of a platform that never synced gets an empty in-memory
    state, so looking creates no files.
    """
    path = state_path(state_root, destination)
    if read_only and not path.exists():
        con.execute(f"attach ':memory:' as {STATE_ALIAS} (read_only false)")
        read_only = False
    elif read_only:
        con.execute(f"attach {_quoted(path)} as {STATE_ALIAS} (read_only)")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        con.execute(f"attach {_quoted(path)} as {STATE_ALIAS} (read_only false)")
    try:
        if not read_only:
            for statement in _SCHEMA:
                con.execute(statement)
        yield STATE_ALIAS
    finally:
        con.execute(f"detach {STATE_ALIAS}")


def read_history(state_root: Path, destination: str | None = None) -> list[dict[str, object]]:
    """The sync history (counts only) of one destination or all, newest first."""
    if destination is not None:
        paths = [state_path(state_root, destination)]
    else:
        paths = sorted((state_root / "activation").glob("*.duckdb"))
    rows: list[dict[str, object]] = []
    for path in paths:
        if not path.exists():
            continue
        with duckdb.connect(str(path), read_only=True) as con:
            cursor = con.execute("select * from sync_history")
            names = [column[0] for column in cursor.description]
            rows += [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return sorted(rows, key=lambda row: str(row["started_at"]), reverse=True)


def member_states(state_root: Path, destination: str) -> dict[str, dict[str, object]]:
    """The state of every member of one destination, by profile id (for tests and support)."""
    path = state_path(state_root, destination)
    if not path.exists():
        return {}
    with duckdb.connect(str(path), read_only=True) as con:
        cursor = con.execute("select * from member_state")
        names = [column[0] for column in cursor.description]
        return {row[1]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}
