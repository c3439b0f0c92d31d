-- GDPR requests of the privacy office; the latest loaded row wins per request.
with

source as (

    select * from {{ source('raw', 'privacy_requests') }}

),

ranked as (

    select
        source.*,
        row_number() over (
            partition by source.request_id
            order by source._loaded_at desc, source._file desc, source._line desc
        ) as delivery_rank
    from source
    where source.request_id is not null

),

final as (

    select
        ---------- ids
        request_id,
        _source as source,

        ---------- request
        lower(trim(request_type)) as request_type,
        lower(trim(identifier_type)) as identifier_type,
        case
            when lower(trim(identifier_type)) = 'email'
                then {{ normalise_email('identifier_value') }}
            else {{ empty_to_null('identifier_value') }}
        end as identifier_value,
        received_at,

        ---------- lineage
        _file as loaded_from_file,
        _loaded_at as loaded_at

    from ranked
    where delivery_rank = 1

)

select * from final
