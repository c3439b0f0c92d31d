-- Ticket orders of every ticket_order source (a second shop lands in the same raw table
-- with another _source). An order can be re-delivered with a new status (refund), so the
-- row of the latest loaded file wins per source and order.
with

source as (

    select * from {{ source('raw', 'ticket_orders') }}

),

ranked as (

    select
        source.*,
        row_number() over (
            partition by source._source, source.order_id
            order by source._loaded_at desc, source._file desc, source._line desc
        ) as delivery_rank
    from source
    where source.order_id is not null

),

final as (

    select
        ---------- ids
        {{ dbt.concat(["_source", "'|'", "order_id"]) }} as order_key,
        _source as source,
        order_id,
        {{ empty_to_null('a_profiel_id') }} as a_profiel_id,
        {{ empty_to_null('event_id') }} as event_id,

        ---------- buyer
        {{ empty_to_null('first_name') }} as first_name,
        {{ empty_to_null('last_name') }} as last_name,
        {{ empty_to_null('email') }} as email,
        {{ normalise_email('email') }} as email_normalised,
        {{ empty_to_null('phone') }} as phone,
        {{ empty_to_null('postcode') }} as postcode,

        ---------- order
        lower(channel) as channel,
        {{ empty_to_null('event_name') }} as event_name,
        {{ empty_to_null('venue') }} as venue,
        lower(trim(category)) as category,
        quantity,
        amount_eur,
        lower(trim(status)) as status,
        case lower(trim(status))
            when 'betaald' then 'paid'
            when 'terugbetaald' then 'refunded'
            when 'geannuleerd' then 'cancelled'
            else 'other'
        end as order_status,

        ---------- timestamps
        ordered_at,
        performance_at,

        ---------- lineage
        _file as loaded_from_file,
        _loaded_at as loaded_at

    from ranked
    where delivery_rank = 1

)

select * from final
