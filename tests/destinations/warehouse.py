"""A hand-made warehouse with the marts activation reads, for any number of people."""

from datetime import date
from pathlib import Path
from typing import Any

import duckdb

SEGMENT = "seg_test"
PURPOSES = ("email_marketing", "push_marketing", "ad_targeting", "profiling")


def profile_id(index: int) -> str:
    return f"p-{index:05d}"


def build_warehouse(
    path: Path,
    people: int,
    *,
    minors: tuple[int, ...] = (),
    devices_per_person: int = 0,
) -> None:
    """``people`` adults in segment SEGMENT, every purpose granted, optional app devices."""
    with duckdb.connect(str(path)) as con:
        for schema in ("marts", "staging"):
            con.execute(f"create schema if not exists {schema}")
        con.execute(
            """
            create table marts.profiles as
            select
                printf('p-%05d', i) as profile_id,
                printf('person%d@example.be', i) as email,
                printf('+3247%07d', i) as phone,
                'First' || i as first_name,
                'Last' || i as last_name,
                case when list_contains($minors, i) then date '2012-06-01'
                    else date '1980-01-01' end as birth_date,
                '2000' as postcode,
                'Antwerpen' as municipality,
                printf('A%05d', i) as a_profiel_id
            from range($people) as numbers(i)
            """,
            {"people": people, "minors": list(minors)},
        )
        con.execute(
            """
            create table marts.consent_state as
            select profiles.profile_id, purposes.purpose, 'granted' as status,
                timestamp '2025-01-01' as updated_at
            from marts.profiles as profiles
            cross join (select unnest($purposes) as purpose) as purposes
            """,
            {"purposes": list(PURPOSES)},
        )
        con.execute(
            """
            create table marts.segment_members as
            select $segment as segment, profile_id, timestamp '2025-11-01' as entered_at,
                null::timestamp as exited_at
            from marts.profiles
            """,
            {"segment": SEGMENT},
        )
        con.execute(
            """
            create table staging.stg_app_devices__devices as
            select printf('dev-%05d-%d', i, d) as device_id, null::varchar as a_profiel_id,
                printf('token-%05d-%d', i, d) as push_token, true as push_opt_in
            from range($people) as people(i), range($devices) as devices(d)
            """,
            {"people": people, "devices": devices_per_person},
        )
        con.execute(
            """
            create table marts.profile_records as
            select 'app_devices' as source, device_id as record_key, 'device' as role,
                'p-' || lpad(split_part(device_id, '-', 2), 5, '0') as profile_id
            from staging.stg_app_devices__devices
            """
        )


def execute(path: Path, sql: str, params: dict[str, Any] | None = None) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute(sql, params or {})


AS_OF = date(2025, 12, 1)
