"""Send a destination its segment's consented audience, and only what changed since last time.

The diff is against the per-member state of the last successful sends
(:mod:`cdp_pipeline.activation.state`), so an unchanged segment sends nothing and a member
the vendor refused is retried alone. Batches are committed one at a time:

1. the batch's members are marked ``sending`` (committed);
2. the batch goes to the vendor;
3. the outcome per member is committed.

A crash between two batches leaves every earlier batch recorded, so the rerun sends only
the rest. A crash *during* a batch leaves its members ``sending``: for vendors that upsert
by key the batch is simply sent again (harmless), for push — which cannot be deduplicated
— the members are counted as sent, since sending nobody twice beats a second notification.
"""

import json
import logging
import os
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from cdp_pipeline.activation.audience import AudienceCounts, build_audience
from cdp_pipeline.activation.config import (
    Destination,
    FileDestination,
    PushDestination,
    load_destinations,
)
from cdp_pipeline.activation.http import RetryPolicy, VendorError, make_session
from cdp_pipeline.activation.normalise import sha256_hex
from cdp_pipeline.activation.senders import BatchOutcome, Sender, make_sender
from cdp_pipeline.activation.state import STATE_ALIAS, attached_state
from cdp_pipeline.settings import get_settings

logger = logging.getLogger(__name__)


class InjectedCrash(RuntimeError):
    """Raised by tests and the benchmark to stop a sync between two batches."""


@dataclass(frozen=True)
class SyncResult:
    """What one sync did for one destination; every count is of profiles."""

    destination: str
    segment: str
    destination_type: str
    sync_mode: str
    run_id: str
    segment_members: int
    skipped_no_consent: int
    skipped_suppressed: int
    skipped_minor: int
    skipped_no_identifier: int
    audience: int
    held_below_minimum: bool
    planned_add: int
    planned_update: int
    planned_remove: int
    added: int
    updated: int
    removed: int
    failed: int
    rejected: int
    pruned_tokens: int
    invalid_entries: int
    batches: int
    match_rate: str | None
    fingerprint: str
    export_file: str | None
    dry_run: bool = False

    @property
    def skipped_for_consent(self) -> int:
        """Members kept back by consent, suppression or age: the 'skipped for consent' count."""
        return self.skipped_no_consent + self.skipped_suppressed + self.skipped_minor

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


@dataclass(frozen=True)
class DryRunReport:
    """What a sync would add, update and remove now (profile ids only), and why not more."""

    destination: str
    segment: str
    sync_mode: str
    segment_members: int
    audience: int
    skipped_no_consent: int
    skipped_suppressed: int
    skipped_minor: int
    skipped_no_identifier: int
    held_below_minimum: bool
    to_add: list[str] = field(default_factory=list)
    to_update: list[str] = field(default_factory=list)
    to_remove: list[str] = field(default_factory=list)

    def summary(self) -> str:
        held = " (held: audience below the minimum size)" if self.held_below_minimum else ""
        return (
            f"{self.destination} ({self.segment}, {self.sync_mode}): audience {self.audience}"
            f" of {self.segment_members} members; would add {len(self.to_add)},"
            f" update {len(self.to_update)}, remove {len(self.to_remove)}{held}"
        )


_PLAN_SQL = f"""
create or replace temp table _plan as
with state as (
    select * from {STATE_ALIAS}.member_state where destination = $name
),

upserts as (
    select
        audience.profile_id,
        case when state.sent_hash is null then 'add' else 'update' end as action,
        audience._row_hash,
        state.sent_hash as old_hash,
        state.vendor_key as old_key,
        coalesce(state.attempts, 0) as attempts
    from _audience as audience
    left join state on audience.profile_id = state.profile_id
    where not $hold
        and (state.sent_hash is null or state.sent_hash <> audience._row_hash
            or state.status = 'failed')
        -- a refusal the vendor called final is not repeated until the row changes
        and not coalesce(state.status = 'rejected' and state.pending_hash = audience._row_hash,
            false)
        and not ($add_only and state.sent_hash is not null)
),

removals as (
    select
        state.profile_id,
        'remove' as action,
        null::varchar as _row_hash,
        state.sent_hash as old_hash,
        state.vendor_key as old_key,
        state.attempts
    from state
    left join _audience as audience on state.profile_id = audience.profile_id
    left join _candidates as candidates on state.profile_id = candidates.profile_id
    where $removes and audience.profile_id is null and state.sent_hash is not null
        -- leaving the segment removes in mirror mode; losing the right to be sent, always
        and ($mirror or candidates.exclusion in ('suppressed', 'no_consent', 'minor'))
),

final as (
    select * from removals
    union all
    select * from upserts
)

select
    row_number() over (
        order by case when action = 'remove' then 0 else 1 end, profile_id
    ) as seq,
    *
from final
"""


def _plan(
    con: duckdb.DuckDBPyConnection, destination: Destination, counts: AudienceCounts
) -> tuple[bool, int, int, int]:
    hold = destination.is_advertising and counts.audience < destination.min_audience_size
    con.execute(
        _PLAN_SQL,
        {
            "name": destination.name,
            "hold": hold,
            "add_only": destination.sync_mode == "add_only",
            "mirror": destination.sync_mode == "mirror",
            "removes": not isinstance(destination, PushDestination),
        },
    )
    to_add, to_update, to_remove = con.execute(
        "select count(*) filter (where action = 'add'), count(*) filter (where action = 'update'),"
        " count(*) filter (where action = 'remove') from _plan"
    ).fetchone()
    return hold, to_add, to_update, to_remove


def _recover_in_flight(
    con: duckdb.DuckDBPyConnection, destination: Destination, idempotent: bool
) -> int:
    """Settle members a crashed sync left ``sending``; returns how many there were."""
    (stuck,) = con.execute(
        f"select count(*) from {STATE_ALIAS}.member_state"
        " where destination = $name and status = 'sending'",
        {"name": destination.name},
    ).fetchone()
    if not stuck:
        return 0
    if idempotent:
        con.execute(
            f"update {STATE_ALIAS}.member_state set status = 'failed',"
            " last_error = 'interrupted', pending_hash = null, pending_key = null"
            " where destination = $name and status = 'sending'",
            {"name": destination.name},
        )
    else:
        # At most once: the vendor may have delivered it, so count it as delivered.
        con.execute(
            f"update {STATE_ALIAS}.member_state set status = 'sent',"
            " sent_hash = pending_hash, vendor_key = pending_key, pending_hash = null,"
            " pending_key = null, last_error = 'interrupted'"
            " where destination = $name and status = 'sending'",
            {"name": destination.name},
        )
    return stuck


_STATE_COLUMNS = (
    "profile_id",
    "status",
    "sent_hash",
    "vendor_key",
    "pending_hash",
    "pending_key",
    "attempts",
    "last_error",
)


def _write_state(
    con: duckdb.DuckDBPyConnection, destination: str, run_id: str, rows: list[dict[str, Any]]
) -> None:
    if not rows:
        return
    table = pa.table(
        {
            name: pa.array(
                [row[name] for row in rows], type=pa.int32() if name == "attempts" else pa.string()
            )
            for name in _STATE_COLUMNS
        }
    )
    con.register("_batch_state", table)
    try:
        con.execute(
            f"""
            insert or replace into {STATE_ALIAS}.member_state
            select $name, profile_id, status, sent_hash, vendor_key, pending_hash, pending_key,
                attempts, last_error, $run_id, now()
            from _batch_state
            """,
            {"name": destination, "run_id": run_id},
        )
    finally:
        con.unregister("_batch_state")


@dataclass
class _Tally:
    added: int = 0
    updated: int = 0
    removed: int = 0
    failed: int = 0
    rejected: int = 0
    pruned_tokens: int = 0
    invalid_entries: int = 0
    batches: int = 0


def _fetch_batch(con: duckdb.DuckDBPyConnection, low: int, high: int) -> list[dict[str, Any]]:
    cursor = con.execute(
        """
        select plan.*, audience.* exclude (profile_id, _row_hash)
        from _plan as plan
        left join _audience as audience on plan.profile_id = audience.profile_id
        where plan.seq between $low and $high
        order by plan.seq
        """,
        {"low": low, "high": high},
    )
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _settle(
    row: dict[str, Any], outcome: BatchOutcome, new_key: str | None, removal: bool
) -> tuple[dict[str, Any], str]:
    """The member's new state row and what happened to it (sent, removed, failed, rejected)."""
    profile_id = row["profile_id"]
    kept = {
        "profile_id": profile_id,
        "sent_hash": row["old_hash"],
        "vendor_key": row["old_key"],
        "pending_hash": None,
        "pending_key": None,
        "attempts": int(row["attempts"] or 0) + 1,
    }
    if profile_id in outcome.failed:
        return {**kept, "status": "failed", "last_error": outcome.failed[profile_id]}, "failed"
    if removal:
        # A removal the vendor refuses for good (unknown member) means it holds nothing.
        gone = {"sent_hash": None, "vendor_key": None, "attempts": 0, "last_error": None}
        return {**kept, **gone, "status": "removed"}, "removed"
    if profile_id in outcome.rejected:
        refused = {"pending_hash": row["_row_hash"], "last_error": outcome.rejected[profile_id]}
        return {**kept, **refused, "status": "rejected"}, "rejected"
    sent = {"sent_hash": row["_row_hash"], "vendor_key": new_key, "attempts": 0}
    return {**kept, **sent, "status": "sent", "last_error": None}, "sent"


def _send_batches(
    con: duckdb.DuckDBPyConnection,
    destination: Destination,
    sender: Sender,
    run_id: str,
    plan_counts: tuple[int, int, int],
    crash_after_batches: int | None,
) -> _Tally:
    tally = _Tally()
    to_add, to_update, to_remove = plan_counts
    groups = [("remove", 1, to_remove), ("upsert", to_remove + 1, to_remove + to_add + to_update)]
    for action, first, last in groups:
        if last < first:
            continue
        removal = action == "remove"
        sender.begin(action, last - first + 1)
        for low in range(first, last + 1, destination.batch_size):
            high = min(low + destination.batch_size - 1, last)
            rows = _fetch_batch(con, low, high)
            new_keys = (
                {} if removal else {row["profile_id"]: sender.vendor_key(row) for row in rows}
            )
            con.execute("begin")
            _write_state(
                con,
                destination.name,
                run_id,
                [
                    {
                        "profile_id": row["profile_id"],
                        "status": "sending",
                        "sent_hash": row["old_hash"],
                        "vendor_key": row["old_key"],
                        "pending_hash": None if removal else row["_row_hash"],
                        "pending_key": new_keys.get(row["profile_id"]),
                        "attempts": int(row["attempts"] or 0),
                        "last_error": None,
                    }
                    for row in rows
                ],
            )
            con.execute("commit")
            try:
                if removal:
                    outcome = sender.remove(
                        [(row["profile_id"], row["old_key"]) for row in rows], high == last
                    )
                else:
                    # A member whose vendor key changed (new e-mail, new hashes) loses the old one.
                    stale = [
                        (row["profile_id"], row["old_key"])
                        for row in rows
                        if row["old_key"] and row["old_key"] != new_keys[row["profile_id"]]
                    ]
                    if stale and sender.supports_removal:
                        sender.remove(stale, False)
                    outcome = sender.upsert(rows, high == last)
            except VendorError as error:
                failed = BatchOutcome(failed={row["profile_id"]: str(error) for row in rows})
                con.execute("begin")
                _write_state(
                    con,
                    destination.name,
                    run_id,
                    [_settle(row, failed, None, removal)[0] for row in rows],
                )
                con.execute("commit")
                tally.failed += len(rows)
                raise
            settled = [
                _settle(row, outcome, new_keys.get(row["profile_id"]), removal) for row in rows
            ]
            con.execute("begin")
            _write_state(con, destination.name, run_id, [state for state, _ in settled])
            if outcome.pruned_tokens:
                con.executemany(
                    f"insert or ignore into {STATE_ALIAS}.pruned_tokens values (?, now(), ?)",
                    [[sha256_hex(token), reason] for token, reason in outcome.pruned_tokens],
                )
            con.execute("commit")
            for (_, what), row in zip(settled, rows, strict=True):
                if what == "sent":
                    tally.added += row["action"] == "add"
                    tally.updated += row["action"] == "update"
                elif what == "removed":
                    tally.removed += 1
                elif what == "failed":
                    tally.failed += 1
                else:
                    tally.rejected += 1
            tally.pruned_tokens += len(outcome.pruned_tokens)
            tally.invalid_entries += outcome.invalid_entries
            tally.batches += 1
            if outcome.abort is not None:
                raise outcome.abort
            if crash_after_batches is not None and tally.batches >= crash_after_batches:
                raise InjectedCrash(f"stopped after {tally.batches} batches")
    sender.finish()
    return tally


def _write_export(
    con: duckdb.DuckDBPyConnection, destination: FileDestination, exports_root: Path
) -> Path:
    """The whole audience as one file, and the removed profile ids beside it."""
    folder = exports_root / destination.name
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = folder / f"{destination.name}-{stamp}.{destination.format}"
    partial = target.with_name(target.name + ".partial")
    columns = ", ".join(f'"{name}"' for name in destination.fields)
    options = "format csv, header true" if destination.format == "csv" else "format parquet"
    con.execute(
        f"copy (select {columns} from _audience order by profile_id) to $path ({options})",
        {"path": str(partial)},
    )
    # Rename into place: a reader never sees half a file.
    os.replace(partial, target)
    (n_removed,) = con.execute("select count(*) from _plan where action = 'remove'").fetchone()
    if n_removed:
        con.execute(
            "copy (select profile_id from _plan where action = 'remove' order by profile_id)"
            " to $path (format csv, header true)",
            {"path": str(folder / f"{destination.name}-{stamp}-removed.csv")},
        )
    return target


def _deliver_file(
    con: duckdb.DuckDBPyConnection,
    destination: FileDestination,
    exports_root: Path,
    run_id: str,
    first_sync: bool,
    held: bool,
) -> tuple[_Tally, str | None]:
    tally = _Tally()
    (planned,) = con.execute("select count(*) from _plan").fetchone()
    if held or (not planned and not first_sync):
        # A held (too small) advertising audience is not written at all.
        return tally, None
    export = _write_export(con, destination, exports_root)
    con.execute("begin")
    con.execute(
        f"""
        insert or replace into {STATE_ALIAS}.member_state
        select
            $name, plan.profile_id,
            case when plan.action = 'remove' then 'removed' else 'sent' end,
            plan._row_hash,
            case when plan.action = 'remove' then null else plan.profile_id end,
            null, null, 0, null, $run_id, now()
        from _plan as plan
        """,
        {"name": destination.name, "run_id": run_id},
    )
    con.execute("commit")
    tally.added, tally.updated, tally.removed = con.execute(
        "select count(*) filter (where action = 'add'), count(*) filter (where action = 'update'),"
        " count(*) filter (where action = 'remove') from _plan"
    ).fetchone()
    tally.batches = 1
    return tally, str(export)


def _history_start(
    con: duckdb.DuckDBPyConnection, destination: Destination, run_id: str, started: datetime
) -> None:
    con.execute(
        f"insert into {STATE_ALIAS}.sync_history (run_id, destination, destination_type, segment,"
        " sync_mode, started_at, outcome) values ($run_id, $name, $type, $segment, $mode,"
        " $started, 'running')",
        {
            "run_id": run_id,
            "name": destination.name,
            "type": destination.type,
            "segment": destination.segment,
            "mode": destination.sync_mode,
            "started": started,
        },
    )


def _history_finish(
    con: duckdb.DuckDBPyConnection,
    destination: Destination,
    run_id: str,
    outcome: str,
    values: dict[str, Any],
) -> None:
    assignments = ", ".join(f"{name} = ${name}" for name in values)
    con.execute(
        f"update {STATE_ALIAS}.sync_history set finished_at = now(), outcome = $outcome,"
        f" {assignments} where run_id = $run_id and destination = $name",
        {**values, "outcome": outcome, "run_id": run_id, "name": destination.name},
    )


def sync_destination(
    con: duckdb.DuckDBPyConnection,
    destination: Destination,
    state_root: Path,
    exports_root: Path,
    *,
    run_id: str | None = None,
    as_of: date | None = None,
    dry_run: bool = False,
    retry: RetryPolicy | None = None,
    sender: Sender | None = None,
    crash_after_batches: int | None = None,
) -> SyncResult:
    """Sync one destination from the warehouse ``con`` (read-only is enough).

    ``sender`` overrides the vendor client (tests); ``crash_after_batches`` stops the sync
    after that many committed batches, to prove a rerun resumes.
    """
    run_id = run_id or uuid.uuid4().hex
    as_of = as_of or get_settings().as_of_date
    started = datetime.now(UTC).replace(tzinfo=None)
    with attached_state(con, state_root, destination.name, read_only=dry_run):
        if sender is None and not isinstance(destination, FileDestination) and not dry_run:
            policy = retry or RetryPolicy()
            sender = make_sender(destination, make_session(policy), policy.timeout)
        if not dry_run:
            idempotent = sender.idempotent if sender is not None else True
            stuck = _recover_in_flight(con, destination, idempotent)
            if stuck:
                logger.warning(
                    "%s: settled %d members of an interrupted sync", destination.name, stuck
                )
        counts = build_audience(con, destination, as_of)
        hold, to_add, to_update, to_remove = _plan(con, destination, counts)
        # Order-free (a sum of row hashes), so fingerprinting a large audience needs no sort.
        (fingerprint,) = con.execute(
            "select md5(count(*) || ':' || coalesce(sum(hash(profile_id, _row_hash)::hugeint), 0))"
            " from _audience"
        ).fetchone()
        (previous_rows,) = con.execute(
            f"select count(*) from {STATE_ALIAS}.member_state where destination = $name",
            {"name": destination.name},
        ).fetchone()
        base = {
            **asdict(counts),
            "held_below_minimum": hold,
            "planned_add": to_add,
            "planned_update": to_update,
            "planned_remove": to_remove,
        }
        if dry_run:
            tally, export = _Tally(added=to_add, updated=to_update, removed=to_remove), None
        else:
            _history_start(con, destination, run_id, started)
            try:
                if isinstance(destination, FileDestination):
                    tally, export = _deliver_file(
                        con,
                        destination,
                        exports_root,
                        run_id,
                        first_sync=previous_rows == 0,
                        held=hold,
                    )
                else:
                    assert sender is not None
                    tally = _send_batches(
                        con,
                        destination,
                        sender,
                        run_id,
                        (to_add, to_update, to_remove),
                        crash_after_batches,
                    )
                    export = None
            except Exception as error:
                _history_finish(
                    con, destination, run_id, "aborted", {**base, "error": type(error).__name__}
                )
                raise
            outcome = "partial" if tally.failed or tally.rejected else "success"
            _history_finish(
                con,
                destination,
                run_id,
                outcome,
                {
                    **base,
                    "sent": tally.added + tally.updated,
                    "failed": tally.failed,
                    "rejected": tally.rejected,
                    "removed": tally.removed,
                    "batches": tally.batches,
                    "match_rate": sender.match_rate if sender is not None else None,
                },
            )
    return SyncResult(
        destination=destination.name,
        segment=destination.segment,
        destination_type=destination.type,
        sync_mode=destination.sync_mode,
        run_id=run_id,
        **base,
        added=tally.added,
        updated=tally.updated,
        removed=tally.removed,
        failed=tally.failed,
        rejected=tally.rejected,
        pruned_tokens=tally.pruned_tokens,
        invalid_entries=tally.invalid_entries,
        batches=tally.batches,
        match_rate=sender.match_rate if sender is not None else None,
        fingerprint=fingerprint,
        export_file=export,
        dry_run=dry_run,
    )


def plan_report(
    con: duckdb.DuckDBPyConnection,
    destination: Destination,
    state_root: Path,
    as_of: date | None = None,
) -> DryRunReport:
    """What a sync of ``destination`` would do now; writes nothing and sends nothing."""
    as_of = as_of or get_settings().as_of_date
    with attached_state(con, state_root, destination.name, read_only=True):
        counts = build_audience(con, destination, as_of)
        hold, *_ = _plan(con, destination, counts)
        ids: dict[str, list[str]] = {"add": [], "update": [], "remove": []}
        for action, profile_id in con.execute(
            "select action, profile_id from _plan order by seq"
        ).fetchall():
            ids[action].append(profile_id)
    return DryRunReport(
        destination=destination.name,
        segment=destination.segment,
        sync_mode=destination.sync_mode,
        segment_members=counts.segment_members,
        audience=counts.audience,
        skipped_no_consent=counts.skipped_no_consent,
        skipped_suppressed=counts.skipped_suppressed,
        skipped_minor=counts.skipped_minor,
        skipped_no_identifier=counts.skipped_no_identifier,
        held_below_minimum=hold,
        to_add=ids["add"],
        to_update=ids["update"],
        to_remove=ids["remove"],
    )


def dry_run(destination_name: str, destinations_path: Path | None = None) -> DryRunReport:
    """What the named destination's next sync would add, update and remove (CLI entry point)."""
    destinations = {d.name: d for d in load_destinations(destinations_path, include_disabled=True)}
    if destination_name not in destinations:
        raise KeyError(
            f"unknown destination {destination_name!r}; declared: {sorted(destinations)}"
        )
    settings = get_settings()
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        return plan_report(con, destinations[destination_name], settings.state_dir)


def result_json(result: SyncResult | DryRunReport) -> str:
    """Counts (and, for a dry run, profile ids) as JSON for logs-free tooling."""
    return json.dumps(asdict(result), sort_keys=True, default=str)
