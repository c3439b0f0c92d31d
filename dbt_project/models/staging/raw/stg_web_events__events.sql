-- Website and app events (Segment spec): one row per message_id; a client retry or a
-- late re-delivery keeps the first loaded copy.
with

source as (

    select * from {{ source('raw', 'web_events') }}

),

ranked as (

    select
        source.*,
        row_number() over (
            partition by source.message_id
            order by source._loaded_at, source._file, source._line
        ) as delivery_rank
    from source
    where source.message_id is not null

),

final as (

    select
        ---------- ids
        message_id,
        _source as source,
        {{ empty_to_null('anonymous_id') }} as anonymous_id,
        {{ empty_to_null('user_id') }} as user_id,
        {{ empty_to_null('previous_id') }} as previous_id,

        ---------- event
        lower(trim(event_type)) as event_type,
        {{ empty_to_null('event_name') }} as event_name,
        {{ json_text('properties', '$.path') }} as page_path,
        {{ json_text('properties', '$.url') }} as page_url,
        {{ json_text('properties', '$.event_id') }} as event_id,
        {{ normalise_email(json_text('traits', '$.email')) }} as traits_email_normalised,
        {{ json_text('context', '$.locale') }} as locale,
        cast(properties as {{ dbt.type_string() }}) as properties,
        cast(context as {{ dbt.type_string() }}) as context,
        cast(traits as {{ dbt.type_string() }}) as traits,

        ---------- timestamps
        occurred_at,
        event_date,

        ---------- lineage
        _file as loaded_from_file,
        _loaded_at as loaded_at

    from ranked
    where delivery_rank = 1

)

select * from final
