"""Stand-in marts for tests and benchmarks of the serving layer.

The serving snapshot reads four marts (and two optional ones). These helpers create them with
the columns of ``dbt_project/models/marts`` so the publisher and the API can be exercised
without a nightly run: by hand-made rows in tests, or generated at scale in ``bench/``.
"""

import duckdb

MARTS_DDL = (
    "create schema if not exists marts",
    """
    create table marts.profiles (
        profile_id varchar, first_name varchar, last_name varchar, email varchar,
        phone varchar, birth_date date, postcode varchar, municipality varchar,
        a_profiel_id varchar, is_known boolean, n_records bigint, sources varchar,
        first_seen_at timestamp, last_seen_at timestamp, updated_at timestamp
    )
    """,
    """
    create table marts.profile_records (
        record_id varchar, source varchar, record_key varchar, role varchar, profile_id varchar
    )
    """,
    """
    create table marts.segment_members (
        membership_id varchar, segment varchar, profile_id varchar, entered_at timestamp,
        exited_at timestamp
    )
    """,
    """
    create table marts.consent_state (
        profile_id varchar, purpose varchar, status varchar, updated_at timestamp,
        source varchar, subject varchar
    )
    """,
)

PURPOSES = ("email_marketing", "push_marketing", "ad_targeting", "profiling")


def create_marts(con: duckdb.DuckDBPyConnection) -> None:
    """Empty marts tables with the published columns."""
    for statement in MARTS_DDL:
        con.execute(statement)


def synthetic_marts(con: duckdb.DuckDBPyConnection, profiles: int, seed: int = 7) -> None:
    """Fill empty marts with ``profiles`` generated people, traits and scores (all in SQL).

    Profile ``i`` has id ``p-<i as 12 hex digits>``, e-mail ``person<i>@example.org`` (for
    70 % of them), A-profiel id ``A<i>`` (40 %), one or two web visitors ``v<i>-<n>`` and, for
    20 %, an app device ``d<i>``, so a benchmark can draw identifiers of every kind.
    """
    create_marts(con)
    con.execute("select setseed(?)", [1 / (abs(seed) + 2)])
    con.execute(
        """
        insert into marts.profiles
        select
            printf('p-%012x', i) as profile_id,
            'Given' || (i % 997) as first_name,
            'Family' || (i % 4999) as last_name,
            case when i % 10 < 7 then 'person' || i || '@example.org' end as email,
            case when i % 10 < 5 then '+3247' || lpad((i % 10000000)::varchar, 7, '0') end,
            date '1950-01-01' + (i % 20000)::integer as birth_date,
            (2000 + i % 700)::varchar as postcode,
            'Antwerpen' as municipality,
            case when i % 10 < 4 then 'A' || i end as a_profiel_id,
            i % 10 < 8 as is_known,
            2 as n_records,
            'web_events' as sources,
            timestamp '2024-01-01' + to_seconds(i % 30000000) as first_seen_at,
            timestamp '2025-11-01' + to_seconds(i % 2000000) as last_seen_at,
            timestamp '2025-11-01' + to_seconds(i % 2000000) as updated_at
        from range(?) as numbers(i)
        """,
        [profiles],
    )
    con.execute(
        """
        insert into marts.profile_records
        select 'aprofiel|account|' || a_profiel_id, 'aprofiel', a_profiel_id, 'account',
            profile_id
        from marts.profiles where a_profiel_id is not null
        union all
        select 'web_events|visitor|' || visitor, 'web_events', visitor, 'visitor', profile_id
        from (
            select profile_id, 'v' || substr(profile_id, 3) || '-' || n as visitor
            from marts.profiles, range(1 + (hash(profile_id) % 2)::integer) as visits(n)
        )
        union all
        select 'app_devices|device|d' || substr(profile_id, 3), 'app_devices',
            'd' || substr(profile_id, 3), 'device', profile_id
        from marts.profiles where hash(profile_id) % 5 = 0
        """
    )
    con.execute(
        """
        insert into marts.segment_members
        select
            md5(segment || profile_id), segment, profile_id,
            timestamp '2025-11-30 02:00:00', null
        from marts.profiles,
            (values ('culture_lapsed_buyers', 3), ('sport_camp_families', 11),
                    ('newsletter_clickers_no_purchase', 5), ('auto_young_families', 4),
                    ('auto_culture_regulars', 6)) as segments(segment, modulus)
        where hash(profile_id || segment) % modulus = 0
        """
    )
    con.execute(
        """
        insert into marts.consent_state
        select
            profile_id, purpose,
            case hash(profile_id || purpose) % 4
                when 0 then 'withdrawn' when 1 then 'unknown' else 'granted' end,
            timestamp '2025-10-01', 'consents', null
        from marts.profiles, unnest(?::varchar[]) as purposes(purpose)
        """,
        [list(PURPOSES)],
    )
    con.execute(
        """
        create table marts.profile_traits as
        select
            profile_id,
            (hash(profile_id) % 5 + 1)::integer as rfm_recency_score,
            (hash(profile_id || 'f') % 5 + 1)::integer as rfm_frequency_score,
            ['concert', 'theatre', 'sport', 'museum'][(hash(profile_id) % 4 + 1)::integer]
                as favourite_category,
            round((hash(profile_id || 'm') % 50000) / 100.0, 2)::decimal(10, 2)
                as monetary_eur,
            date '2025-01-01' + (hash(profile_id) % 300)::integer as last_purchase_date
        from marts.profiles
        """
    )
    con.execute(
        """
        create table marts.propensity_scores as
        select
            profile_id, model,
            (hash(profile_id || model) % 1000) / 1000.0 as score,
            (hash(profile_id || model) % 10 + 1)::integer as decile
        from marts.profiles, (values ('ticket_purchase_30d'), ('newsletter_click')) as m(model)
        """
    )
