"""Who may receive a destination tonight: segment members, minus consent and suppression.

Every member of the segment gets one exclusion reason or none, in this order:

1. ``suppressed`` — the profile is gone from the marts (erased), a privacy erasure request
   names it, or, for e-mail marketing, its address bounced or unsubscribed after its latest
   consent;
2. ``no_consent`` — no ``granted`` consent for the destination's purpose;
3. ``minor`` — advertising only: under 18 on the as-of date (an unknown birth date is not
   evidence of a minor);
4. ``no_identifier`` — none of the destination's identifiers (for push: no live token).

Excluded members that the vendor holds are removed whatever the sync mode; a plain exit
from the segment is a removal only in mirror mode.
"""

from dataclasses import dataclass
from datetime import date

import duckdb

from cdp_pipeline.activation.config import Destination, PushDestination
from cdp_pipeline.activation.state import STATE_ALIAS


@dataclass(frozen=True)
class AudienceCounts:
    segment_members: int
    skipped_no_consent: int
    skipped_suppressed: int
    skipped_minor: int
    skipped_no_identifier: int
    audience: int


def _has_table(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    (found,) = con.execute(
        "select count(*) from information_schema.tables"
        " where table_schema = $schema and table_name = $name and table_catalog <> $state",
        {"schema": schema, "name": name, "state": STATE_ALIAS},
    ).fetchone()
    return bool(found)


def _has_column(con: duckdb.DuckDBPyConnection, schema: str, table: str, column: str) -> bool:
    (found,) = con.execute(
        "select count(*) from information_schema.columns where table_schema = $schema"
        " and table_name = $table and column_name = $column and table_catalog <> $state",
        {"schema": schema, "table": table, "column": column, "state": STATE_ALIAS},
    ).fetchone()
    return bool(found)


def _suppression_sql(con: duckdb.DuckDBPyConnection, destination: Destination) -> str:
    """Profiles that must not receive this destination; each signal only if its table exists.

    The marts are built by other steps and a young warehouse may lack some tables, so a
    missing signal table is skipped rather than failing every sync.
    """
    parts = ["select null::varchar as profile_id where false"]
    if _has_table(con, "staging", "stg_privacy_requests__requests"):
        parts.append(
            """
            select profiles.profile_id
            from staging.stg_privacy_requests__requests as requests
            inner join marts.profiles as profiles
                on (requests.identifier_type = 'email'
                    and profiles.email = requests.identifier_value)
                or (requests.identifier_type = 'a_profiel_id'
                    and profiles.a_profiel_id = requests.identifier_value)
                or (requests.identifier_type = 'phone'
                    and profiles.phone = requests.identifier_value)
            where requests.request_type = 'erasure'
            """
        )
    if destination.purpose != "email_marketing":
        return "\nunion\n".join(parts)
    if _has_table(con, "staging", "stg_newsletter__contacts"):
        # 'cleaned' is Mailchimp's word for a hard bounce.
        parts.append(
            """
            select profiles.profile_id
            from staging.stg_newsletter__contacts as contacts
            inner join marts.profiles as profiles on profiles.email = contacts.email_normalised
            left join marts.consent_state as consent
                on profiles.profile_id = consent.profile_id and consent.purpose = 'email_marketing'
            where contacts.status = 'cleaned'
                or (contacts.status = 'unsubscribed'
                    and (consent.updated_at is null or consent.updated_at
                        <= coalesce(contacts.unsubscribed_at, consent.updated_at)))
            """
        )
    if _has_table(con, "marts", "interactions"):
        parts.append(
            """
            select interactions.profile_id
            from marts.interactions as interactions
            left join marts.consent_state as consent
                on interactions.profile_id = consent.profile_id
                and consent.purpose = 'email_marketing'
            where interactions.interaction_type = 'email_bounce'
                or (interactions.interaction_type = 'email_unsubscribe'
                    and (consent.updated_at is null
                        or consent.updated_at <= interactions.occurred_at))
            """
        )
    return "\nunion\n".join(parts)


def _tokens_sql() -> str:
    """Live push tokens per profile: opted-in devices, minus tokens FCM called dead."""
    return f"""
        select
            records.profile_id,
            list(devices.push_token order by devices.push_token) as tokens
        from staging.stg_app_devices__devices as devices
        inner join marts.profile_records as records
            on records.source = 'app_devices' and records.record_key = devices.device_id
        left join {STATE_ALIAS}.pruned_tokens as pruned
            on pruned.token_sha256 = sha256(devices.push_token)
        where devices.push_token is not null
            and coalesce(devices.push_opt_in, false)
            and pruned.token_sha256 is null
        group by records.profile_id
    """


def build_audience(
    con: duckdb.DuckDBPyConnection, destination: Destination, as_of: date
) -> AudienceCounts:
    """Fill temp tables ``_candidates`` (every member, its exclusion) and ``_audience``."""
    push = isinstance(destination, PushDestination)
    if push:
        con.execute(f"create or replace temp table _tokens as {_tokens_sql()}")
    else:
        con.execute("create or replace temp table _tokens (profile_id varchar, tokens varchar[])")
    minor_check = "false"
    if destination.is_advertising and _has_column(con, "marts", "profiles", "birth_date"):
        minor_check = "profiles.birth_date > cast($as_of as date) - interval 18 year"
    identifier_check = (
        "_tokens.tokens is not null"
        if push
        else " or ".join(f'profiles."{name}" is not null' for name in destination.identifiers)
    )
    con.execute(
        f"""
        create or replace temp table _candidates as
        with segment_members as (
            select distinct profile_id from marts.segment_members
            where segment = $segment and exited_at is null
        ),

        -- Profiles the vendor may still hold are checked too: an erasure or a withdrawal
        -- removes them even when a non-mirroring destination keeps segment leavers.
        members as (
            select profile_id from segment_members
            union
            select profile_id from {STATE_ALIAS}.member_state
            where destination = $destination and sent_hash is not null
        ),

        consented as (
            select profile_id from marts.consent_state
            where purpose = $purpose and status = 'granted'
        ),

        suppressed as ({_suppression_sql(con, destination)})

        select
            members.profile_id,
            members.profile_id in (select profile_id from segment_members) as in_segment,
            case
                when profiles.profile_id is null then 'suppressed'
                when consented.profile_id is null then 'no_consent'
                when members.profile_id in (select profile_id from suppressed) then 'suppressed'
                when {minor_check} then 'minor'
                when not ({identifier_check}) then 'no_identifier'
            end as exclusion
        from members
        left join marts.profiles as profiles on members.profile_id = profiles.profile_id
        left join consented on members.profile_id = consented.profile_id
        left join _tokens on members.profile_id = _tokens.profile_id
        """,
        {
            "segment": destination.segment,
            "purpose": destination.purpose,
            "destination": destination.name,
            **({"as_of": as_of} if minor_check != "false" else {}),
        },
    )
    fields = destination.send_fields
    columns = ", ".join(f'profiles."{name}"' for name in fields if name != "profile_id")
    hashed = [f"coalesce(cast(profiles.\"{name}\" as varchar), '')" for name in fields]
    if push:
        hashed.append("array_to_string(_tokens.tokens, ',')")
    # A change to any field sent (or to a push member's tokens) changes the hash.
    con.execute(
        f"""
        create or replace temp table _audience as
        select
            candidates.profile_id,
            {columns + "," if columns else ""}
            _tokens.tokens as _tokens,
            md5({" || '|' || ".join(hashed)}) as _row_hash
        from _candidates as candidates
        inner join marts.profiles as profiles on candidates.profile_id = profiles.profile_id
        left join _tokens on candidates.profile_id = _tokens.profile_id
        where candidates.in_segment and candidates.exclusion is null
        """
    )
    row = con.execute(
        """
        select
            count(*),
            count(*) filter (where exclusion = 'no_consent'),
            count(*) filter (where exclusion = 'suppressed'),
            count(*) filter (where exclusion = 'minor'),
            count(*) filter (where exclusion = 'no_identifier'),
            count(*) filter (where exclusion is null)
        from _candidates
        where in_segment
        """
    ).fetchone()
    return AudienceCounts(*row)
