-- Profiles that clicked a newsletter e-mail up to the as-of date and never bought a
-- ticket (a refunded order was still bought).
with

interactions as (

    select * from {{ ref('interactions') }}

),

clickers as (

    select distinct profile_id
    from interactions
    where interaction_type = 'email_click'
        and profile_id is not null
        and occurred_at < {{ dbt.dateadd('day', 1, as_of_date()) }}

),

buyers as (

    select distinct profile_id
    from interactions
    where interaction_type in ('ticket_purchase', 'ticket_refund')
        and profile_id is not null

),

final as (

    select clickers.profile_id
    from clickers
    left join buyers
        on clickers.profile_id = buyers.profile_id
    where buyers.profile_id is null

)

select * from final
