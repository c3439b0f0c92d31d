-- Evidence that a web/app visitor is an A-profiel account: identify calls
-- (anonymousId + userId) and alias calls (previousId -> userId), one row per pair.
with

web_events as (

    select * from {{ ref('stg_web_events__events') }}

),

identity_calls as (

    select
        anonymous_id,
        user_id,
        occurred_at
    from web_events
    where event_type = 'identify'
        and anonymous_id is not null
        and user_id is not null

    union all

    select
        previous_id as anonymous_id,
        user_id,
        occurred_at
    from web_events
    where event_type = 'alias'
        and previous_id is not null
        and user_id is not null

),

final as (

    select
        anonymous_id,
        user_id,
        min(occurred_at) as first_seen_at,
        max(occurred_at) as last_seen_at,
        count(*) as n_events
    from identity_calls
    group by anonymous_id, user_id

)

select * from final
