"""Access requests: everything the platform holds on the requester, as JSON and in words.

One folder per request under ``data_dir/privacy/access/<request_id>/``: ``access.json``
(machine-readable, for portability) and ``summary.md`` (for the privacy office to send).
The person is found exactly as for an erasure, so what is shown is what would be erased.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from cdp_pipeline.privacy.erasure import (
    ErasureRequest,
    Person,
    _conditions,
    find_person,
    table_exists,
)
from cdp_pipeline.privacy.identifiers import ClearMatcher, is_digest
from cdp_pipeline.privacy.inventory import RAW_IDENTIFIERS, identifier_columns, quote

# Tables of the person's profile shown under their own heading; every other table with a
# profile_id (traits, scores, segment models) goes under "other".
_NAMED = {
    "marts.profiles": "profile",
    "marts.interactions": "interactions",
    "marts.consent_state": "consents",
    "marts.segment_members": "segments",
    "marts.profile_records": "records",
}
_SKIPPED_SCHEMAS = {"raw", "staging", "intermediate", "identity", "information_schema"}


@dataclass(frozen=True)
class AccessExport:
    request_id: str
    folder: Path
    profiles: int
    sections: dict[str, int]


def pending_access(con: duckdb.DuckDBPyConnection, handled: set[str]) -> list[ErasureRequest]:
    if not table_exists(con, "raw", "privacy_requests"):
        return []
    rows = con.execute(
        "select request_id, lower(trim(identifier_type)), identifier_value, min(received_at)"
        " from raw.privacy_requests where lower(trim(request_type)) = 'access'"
        " group by all order by 4 nulls last, 1"
    ).fetchall()
    out, seen = [], set()
    for request_id, identifier_type, value, received_at in rows:
        if request_id in handled or request_id in seen or is_digest(value):
            continue
        seen.add(request_id)
        out.append(ErasureRequest(request_id, identifier_type, value, received_at))
    return out


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[dict]:
    cursor = con.execute(sql, params)
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def collect(con: duckdb.DuckDBPyConnection, state_dir: Path, person: Person) -> dict[str, Any]:
    """Everything held on ``person``: source records, profile, marts, destinations."""
    matcher = ClearMatcher(person.identifiers)
    data: dict[str, Any] = {"profile_ids": sorted(person.profile_ids), "source_records": {}}
    for table, specs in RAW_IDENTIFIERS.items():
        if not table_exists(con, "raw", table):
            continue
        relation = f"raw.{quote(table)}"
        conditions, binds = _conditions(con, relation, specs, matcher, "", {})
        if conditions:
            data["source_records"][table] = _rows(
                con,
                f"select * exclude (_file_hash, _loaded_at) from {relation}"
                f" where {' or '.join(conditions)}",
                binds,
            )
    for key in _NAMED.values():
        data[key] = []
    data["other"] = {}
    tables = con.execute(
        "select table_schema, table_name from information_schema.tables"
        " where table_type = 'BASE TABLE' order by 1, 2"
    ).fetchall()
    for schema, table in tables:
        if schema in _SKIPPED_SCHEMAS:
            continue
        specs = [s for s in identifier_columns(con, schema, table) if s[0] == "profile_id"]
        if not specs:
            continue
        rows = _rows(
            con,
            f"select * from {quote(schema)}.{quote(table)} where "
            + " or ".join(f"{expr} in (select unnest($ids::varchar[]))" for _, expr in specs),
            {"ids": sorted(person.profile_ids)},
        )
        name = _NAMED.get(f"{schema}.{table}")
        if name:
            data[name] = rows
        elif rows:
            data["other"][f"{schema}.{table}"] = rows
    data["destinations"] = _destinations(state_dir, person.profile_ids)
    return data


def _destinations(state_dir: Path, profile_ids: set[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted((state_dir / "activation").glob("*.duckdb")):
        with duckdb.connect(str(path), read_only=True) as con:
            if not table_exists(con, "main", "member_state"):
                continue
            out += _rows(
                con,
                "select destination, status, sent_hash is not null as held_by_destination,"
                " updated_at as last_sent_at from member_state"
                " where profile_id in (select unnest($ids::varchar[]))",
                {"ids": sorted(profile_ids)},
            )
    return out


def answer_access(
    con: duckdb.DuckDBPyConnection, state_dir: Path, access_dir: Path, request: ErasureRequest
) -> AccessExport:
    """Write the JSON and the summary of one access request."""
    person = find_person(con, request)
    data = collect(con, state_dir, person)
    document = {
        "request_id": request.request_id,
        "received_at": request.received_at,
        "produced_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **data,
    }
    folder = access_dir / request.request_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "access.json").write_text(
        json.dumps(document, indent=2, sort_keys=True, default=str), encoding="utf-8"
    )
    (folder / "summary.md").write_text(_summary(document), encoding="utf-8")
    sections = {
        "source_records": sum(len(v) for v in data["source_records"].values()),
        **{k: len(data[k]) for k in (*_NAMED.values(), "destinations")},
        "other": sum(len(v) for v in data["other"].values()),
    }
    return AccessExport(request.request_id, folder, len(person.profile_ids), sections)


def _summary(document: dict[str, Any]) -> str:
    lines = [
        f"# What the city's customer data platform holds on you ({document['request_id']})",
        "",
        f"Produced {document['produced_at']} in answer to your request of "
        f"{document['received_at']}. The file `access.json` beside this one holds every "
        "value in a machine-readable form.",
        "",
        "## Records from the city's systems",
        "",
    ]
    for table, rows in sorted(document["source_records"].items()):
        lines.append(f"- {table}: {len(rows)} record(s)")
    lines += ["", "## Your profile", ""]
    for profile in document["profile"]:
        for key, value in sorted(profile.items()):
            if value is not None:
                lines.append(f"- {key}: {value}")
    lines += [
        "",
        "## Consents",
        "",
        "| purpose | status | since | source |",
        "| --- | --- | --- | --- |",
    ]
    for consent in document["consents"]:
        lines.append(
            f"| {consent.get('purpose')} | {consent.get('status')} | "
            f"{consent.get('updated_at') or ''} | {consent.get('source') or ''} |"
        )
    lines += ["", "## Segments (with history)", ""]
    for member in document["segments"]:
        left = member.get("exited_at") or "still a member"
        lines.append(f"- {member.get('segment')}: entered {member.get('entered_at')}, {left}")
    lines += ["", f"## Interactions: {len(document['interactions'])}", ""]
    lines += ["## Scores, traits and other derived data", ""]
    for table, rows in sorted(document["other"].items()):
        lines.append(f"- {table}: {len(rows)} row(s)")
    lines += ["", "## Destinations you were sent to", ""]
    for destination in document["destinations"]:
        lines.append(
            f"- {destination['destination']}: {destination['status']}"
            f" (last change {destination['last_sent_at']})"
        )
    return "\n".join(lines) + "\n"
