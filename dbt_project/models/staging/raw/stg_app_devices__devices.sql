-- City app devices: the registry export is a snapshot, so the latest loaded row wins
-- per device.
with

source as (

    select * from {{ source('raw', 'app_devices') }}

),

ranked as (

    select
        source.*,
        row_number() over (
            partition by source._source, source.device_id
            order by source._loaded_at desc, source._file desc, source._line desc
        ) as delivery_rank
    from source
    where source.device_id is not null

),

final as (

    select
        ---------- ids
        device_id,
        _source as source,
        {{ empty_to_null('a_profiel_id') }} as a_profiel_id,

        ---------- device
        lower(trim(platform)) as platform,
        {{ empty_to_null('push_token') }} as push_token,
        {{ empty_to_null('app_version') }} as app_version,
        push_opt_in,

        ---------- timestamps
        first_seen_at,
        last_seen_at,

        ---------- lineage
        _file as loaded_from_file,
        _loaded_at as loaded_at

    from ranked
    where delivery_rank = 1

)

select * from final
