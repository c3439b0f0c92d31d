-- Every event and transaction of the sources in one shape, before profiles are known:
-- each row carries the key that resolves it to a profile (record_id, e-mail, user_id or
-- anonymous_id).
with

orders as (

    select * from {{ ref('stg_ticketing__orders') }}

),

registrations as (

    select * from {{ ref('stg_registrations__registrations') }}

),

email_events as (

    select * from {{ ref('stg_email_events__events') }}

),

web_events as (

    select * from {{ ref('stg_web_events__events') }}

),

order_interactions as (

    select
        {{ dbt.concat(["source", "'|order|'", "order_id"]) }} as interaction_id,
        source,
        case order_status
            when 'paid' then 'ticket_purchase'
            when 'refunded' then 'ticket_refund'
            when 'cancelled' then 'ticket_cancellation'
            else 'ticket_other'
        end as interaction_type,
        ordered_at as occurred_at,
        category,
        event_name as item_name,
        cast(null as {{ dbt.type_string() }}) as url,
        amount_eur,
        quantity,
        status,
        order_id,
        event_id,
        cast(null as {{ dbt.type_string() }}) as registration_id,
        cast(null as {{ dbt.type_string() }}) as activity_id,
        cast(null as {{ dbt.type_string() }}) as campaign_id,
        cast(null as {{ dbt.type_string() }}) as message_id,
        {{ dbt.concat(["source", "'|buyer|'", "order_id"]) }} as record_id,
        cast(null as {{ dbt.type_string() }}) as contact_record_id,
        cast(null as {{ dbt.type_string() }}) as email,
        cast(null as {{ dbt.type_string() }}) as user_id,
        cast(null as {{ dbt.type_string() }}) as anonymous_id
    from orders

),

registration_interactions as (

    select
        {{ dbt.concat(["source", "'|registration|'", "registration_id"]) }} as interaction_id,
        source,
        'registration' as interaction_type,
        registered_at as occurred_at,
        activity_type as category,
        activity_name as item_name,
        cast(null as {{ dbt.type_string() }}) as url,
        price_eur as amount_eur,
        1 as quantity,
        status,
        cast(null as {{ dbt.type_string() }}) as order_id,
        cast(null as {{ dbt.type_string() }}) as event_id,
        registration_id,
        activity_id,
        cast(null as {{ dbt.type_string() }}) as campaign_id,
        cast(null as {{ dbt.type_string() }}) as message_id,
        {{ dbt.concat(["source", "'|participant|'", "registration_id"]) }} as record_id,
        {{ dbt.concat(["source", "'|contact|'", "registration_id"]) }} as contact_record_id,
        cast(null as {{ dbt.type_string() }}) as email,
        cast(null as {{ dbt.type_string() }}) as user_id,
        cast(null as {{ dbt.type_string() }}) as anonymous_id
    from registrations

),

email_interactions as (

    select
        {{ dbt.concat(["source", "'|email|'", "email_event_id"]) }} as interaction_id,
        source,
        {{ dbt.concat(["'email_'", "event_type"]) }} as interaction_type,
        occurred_at,
        cast(null as {{ dbt.type_string() }}) as category,
        cast(null as {{ dbt.type_string() }}) as item_name,
        url,
        cast(null as decimal(12, 2)) as amount_eur,
        cast(null as integer) as quantity,
        cast(null as {{ dbt.type_string() }}) as status,
        cast(null as {{ dbt.type_string() }}) as order_id,
        cast(null as {{ dbt.type_string() }}) as event_id,
        cast(null as {{ dbt.type_string() }}) as registration_id,
        cast(null as {{ dbt.type_string() }}) as activity_id,
        campaign_id,
        cast(null as {{ dbt.type_string() }}) as message_id,
        cast(null as {{ dbt.type_string() }}) as record_id,
        cast(null as {{ dbt.type_string() }}) as contact_record_id,
        email_normalised as email,
        cast(null as {{ dbt.type_string() }}) as user_id,
        cast(null as {{ dbt.type_string() }}) as anonymous_id
    from email_events

),

web_interactions as (

    select
        {{ dbt.concat(["source", "'|web|'", "message_id"]) }} as interaction_id,
        source,
        event_type as interaction_type,
        occurred_at,
        cast(null as {{ dbt.type_string() }}) as category,
        event_name as item_name,
        coalesce(page_path, page_url) as url,
        cast(null as decimal(12, 2)) as amount_eur,
        cast(null as integer) as quantity,
        cast(null as {{ dbt.type_string() }}) as status,
        cast(null as {{ dbt.type_string() }}) as order_id,
        event_id,
        cast(null as {{ dbt.type_string() }}) as registration_id,
        cast(null as {{ dbt.type_string() }}) as activity_id,
        cast(null as {{ dbt.type_string() }}) as campaign_id,
        message_id,
        cast(null as {{ dbt.type_string() }}) as record_id,
        cast(null as {{ dbt.type_string() }}) as contact_record_id,
        cast(null as {{ dbt.type_string() }}) as email,
        user_id,
        anonymous_id
    from web_events

),

final as (

    select * from order_interactions
    union all
    select * from registration_interactions
    union all
    select * from email_interactions
    union all
    select * from web_interactions

)

select * from final
