-- E-mail engagement events. The export has no event id, so one is derived from the
-- event's content; a re-delivered event is kept once (earliest load).
with

source as (

    select * from {{ source('raw', 'email_events') }}

),

keyed as (

    select
        source.*,
        {{ dbt.hash(dbt.concat([
            "coalesce(" ~ normalise_email('source.email') ~ ", '')", "'|'",
            "coalesce(source.campaign_id, '')", "'|'",
            "coalesce(lower(source.event_type), '')", "'|'",
            "coalesce(source.url, '')", "'|'",
            "coalesce(cast(source.occurred_at as " ~ dbt.type_string() ~ "), '')"
        ])) }} as email_event_id
    from source

),

ranked as (

    select
        keyed.*,
        row_number() over (
            partition by keyed.email_event_id
            order by keyed._loaded_at, keyed._file, keyed._line
        ) as delivery_rank
    from keyed

),

final as (

    select
        ---------- ids
        email_event_id,
        _source as source,
        {{ empty_to_null('campaign_id') }} as campaign_id,

        ---------- event
        {{ empty_to_null('email') }} as email,
        {{ normalise_email('email') }} as email_normalised,
        lower(trim(event_type)) as event_type,
        {{ empty_to_null('url') }} as url,
        occurred_at,

        ---------- lineage
        _file as loaded_from_file,
        _loaded_at as loaded_at

    from ranked
    where delivery_rank = 1

)

select * from final
