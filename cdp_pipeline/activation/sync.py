"""Send a destination its segment's consented audience, and only what changed since last time.

Sync state (who was sent, with a hash of what was sent) lives under the state folder,
outside the warehouse, so a rebuilt warehouse does not make every member look new.
"""

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from cdp_pipeline.activation.config import Destination


@dataclass(frozen=True)
class SyncResult:
    """What one sync did for one destination; every count is of profiles."""

    destination: str
    segment: str
    segment_members: int
    skipped_no_consent: int
    skipped_no_identifier: int
    audience: int
    added: int
    updated: int
    removed: int
    fingerprint: str
    export_file: str | None

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


def _identifier_sql(name: str) -> str:
    # The name was validated against the closed list of profile fields.
    return f'profiles."{name}"'


def _audience_sql(destination: Destination) -> str:
    # profile_id always travels: the diff against the last sync is keyed on it.
    names = ["profile_id", *(field for field in destination.fields if field != "profile_id")]
    fields = ", ".join(_identifier_sql(field) for field in names)
    row_hash = " || '|' || ".join(
        f"coalesce(cast({_identifier_sql(field)} as varchar), '')" for field in destination.fields
    )
    return f"""
        with members as (
            select profile_id from marts.segment_members
            where segment = $segment and exited_at is null
        ),

        consented as (
            select profile_id from marts.consent_state
            where purpose = $purpose and status = 'granted'
        ),

        final as (
            select
                {fields},
                md5({row_hash}) as _row_hash
            from members
            inner join consented on members.profile_id = consented.profile_id
            inner join marts.profiles as profiles on members.profile_id = profiles.profile_id
            where {_identifier_sql(destination.identifier)} is not null
        )

        select * from final
    """


def _state_dir(state_root: Path, destination: Destination) -> Path:
    return state_root / "activation" / destination.name


def sync_file_destination(
    con: duckdb.DuckDBPyConnection,
    destination: Destination,
    state_root: Path,
    exports_root: Path,
    dry_run: bool = False,
) -> SyncResult:
    """Compare the consented audience with the last sync and drop a file when it changed.

    The file holds the whole current audience (file-based tools replace their list);
    a second file lists the profile ids removed since the last sync, so a tool that
    only appends can still honour exits.
    """
    params = {"segment": destination.segment, "purpose": destination.purpose}
    con.execute(f"create or replace temp table audience as {_audience_sql(destination)}", params)
    members, no_consent, no_identifier = con.execute(
        """
        select
            count(*),
            count(*) filter (where consent.profile_id is null),
            count(*) filter (where consent.profile_id is not null and audience.profile_id is null)
        from marts.segment_members as members
        left join marts.consent_state as consent
            on members.profile_id = consent.profile_id
            and consent.purpose = $purpose and consent.status = 'granted'
        left join audience on members.profile_id = audience.profile_id
        where members.segment = $segment and members.exited_at is null
        """,
        params,
    ).fetchone()

    state_dir = _state_dir(state_root, destination)
    previous = state_dir / "members.parquet"
    if previous.exists():
        con.execute(
            "create or replace temp table previous as select * from read_parquet($path)",
            {"path": str(previous)},
        )
    else:
        con.execute("create or replace temp table previous (profile_id varchar, _row_hash varchar)")
    added, updated, removed = con.execute(
        """
        select
            count(*) filter (where previous.profile_id is null),
            count(*) filter (
                where previous.profile_id is not null and audience.profile_id is not null
                and previous._row_hash <> audience._row_hash
            ),
            count(*) filter (where audience.profile_id is null)
        from audience
        full outer join previous on audience.profile_id = previous.profile_id
        """
    ).fetchone()
    audience_size, fingerprint = con.execute(
        "select count(*), md5(coalesce(string_agg(_row_hash, ',' order by profile_id), ''))"
        " from audience"
    ).fetchone()

    first_sync = not previous.exists()
    export_file: str | None = None
    if (added or updated or removed or first_sync) and not dry_run:
        export_file = str(_write_export(con, destination, exports_root))
        state_dir.mkdir(parents=True, exist_ok=True)
        # Write the new state beside the old one and rename: a crash leaves one or the other.
        partial = state_dir / "members.parquet.partial"
        con.execute(
            "copy (select profile_id, _row_hash from audience order by profile_id)"
            " to $path (format parquet)",
            {"path": str(partial)},
        )
        os.replace(partial, previous)

    return SyncResult(
        destination=destination.name,
        segment=destination.segment,
        segment_members=members,
        skipped_no_consent=no_consent,
        skipped_no_identifier=no_identifier,
        audience=audience_size,
        added=added,
        updated=updated,
        removed=removed,
        fingerprint=fingerprint,
        export_file=export_file,
    )


def _write_export(
    con: duckdb.DuckDBPyConnection, destination: Destination, exports_root: Path
) -> Path:
    folder = exports_root / destination.name
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = folder / f"{destination.name}-{stamp}.{destination.format}"
    partial = target.with_name(target.name + ".partial")
    columns = ", ".join(f'"{field}"' for field in destination.fields)
    options = "format csv, header true" if destination.format == "csv" else "format parquet"
    con.execute(
        f"copy (select {columns} from audience order by profile_id) to $path ({options})",
        {"path": str(partial)},
    )
    os.replace(partial, target)
    removed_file = folder / f"{destination.name}-{stamp}-removed.csv"
    (n_removed,) = con.execute(
        "select count(*) from previous anti join audience using (profile_id)"
    ).fetchone()
    if n_removed:
        con.execute(
            "copy (select profile_id from previous anti join audience using (profile_id)"
            " order by profile_id) to $path (format csv, header true)",
            {"path": str(removed_file)},
        )
    return target


def append_history(state_root: Path, result: SyncResult, run_id: str) -> None:
    """Append the sync's counts (no member data) to the destinations' sync history."""
    path = state_root / "activation" / "sync_history.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"run_id": run_id, "synced_at": datetime.now(UTC).isoformat(), **asdict(result)}
    with path.open("a", encoding="utf-8") as history:
        history.write(json.dumps(entry, sort_keys=True) + "\n")
