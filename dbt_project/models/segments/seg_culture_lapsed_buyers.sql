-- Profiles that bought a culture ticket (var culture_categories) before the as-of date
-- but none in the 6 months up to it.
with

interactions as (

    select * from {{ ref('interactions') }}

),

culture_purchases as (

    select
        profile_id,
        occurred_at
    from interactions
    where interaction_type = 'ticket_purchase'
        and profile_id is not null
        and category in {{ culture_categories() }}
        and occurred_at < {{ dbt.dateadd('day', 1, as_of_date()) }}

),

final as (

    select profile_id
    from culture_purchases
    group by profile_id
    having max(occurred_at) < {{ dbt.dateadd('month', -6, as_of_date()) }}

)

select * from final
