{%- set activity_types = ['sportkamp', 'cursus', 'bibliotheek', 'evenement'] -%}
{%- set consent_purposes = ['email_marketing', 'push_marketing', 'ad_targeting', 'profiling'] -%}
{%- set as_of = as_of_date() -%}
{%- set day_after_as_of = dbt.dateadd('day', 1, as_of) -%}
{%- set ninety_days_before = dbt.dateadd('day', -90, as_of) -%}

-- One row per profile with the traits segments and models are built on, as of var
-- as_of_date (events after that day are ignored). No personal data beyond profile_id:
-- the postcode becomes a district, the birth date an age band.
with

profiles as (

    select * from {{ ref('profiles') }}

),

all_interactions as (

    select * from {{ ref('interactions') }}

),

orders as (

    select * from {{ ref('stg_ticketing__orders') }}

),

consents as (

    select * from {{ ref('consent_state') }}

),

interactions as (

    select * from all_interactions
    where profile_id is not null
        and occurred_at < {{ day_after_as_of }}

),

---------- RFM of paid ticket orders (refunds and cancellations are no purchase)
purchases as (

    select
        interactions.profile_id,
        interactions.occurred_at,
        interactions.category,
        interactions.amount_eur,
        orders.venue
    from interactions
    left join orders
        on interactions.source = orders.source
        and interactions.order_id = orders.order_id
    where interactions.interaction_type = 'ticket_purchase'

),

rfm_values as (

    select
        profile_id,
        max(occurred_at) as last_ticket_purchase_at,
        count(*) as ticket_purchases,
        coalesce(sum(amount_eur), 0) as ticket_revenue_eur,
        sum(case when category in {{ culture_categories() }} then 1 else 0 end)
            as culture_ticket_purchases,
        sum(case when category = 'sport' then 1 else 0 end) as sport_ticket_purchases
    from purchases
    group by profile_id

),

-- Scores 1-5 among buyers from the percent rank (ties share a score, 5 = best).
rfm_scores as (

    select
        profile_id,
        least(5, 1 + floor(5 * percent_rank() over (order by last_ticket_purchase_at)))
            as rfm_recency_score,
        least(5, 1 + floor(5 * percent_rank() over (order by ticket_purchases)))
            as rfm_frequency_score,
        least(5, 1 + floor(5 * percent_rank() over (order by ticket_revenue_eur)))
            as rfm_monetary_score
    from rfm_values

),

category_counts as (

    select
        profile_id,
        category,
        count(*) as n_purchases,
        max(occurred_at) as last_purchase_at
    from purchases
    where category is not null
    group by profile_id, category

),

favourite_categories as (

    select
        profile_id,
        category as favourite_category,
        row_number() over (
            partition by profile_id
            order by n_purchases desc, last_purchase_at desc, category asc
        ) as category_rank
    from category_counts

),

venue_counts as (

    select
        profile_id,
        venue,
        count(*) as n_purchases,
        max(occurred_at) as last_purchase_at
    from purchases
    where venue is not null
    group by profile_id, venue

),

favourite_venues as (

    select
        profile_id,
        venue as favourite_venue,
        row_number() over (
            partition by profile_id
            order by n_purchases desc, last_purchase_at desc, venue asc
        ) as venue_rank
    from venue_counts

),

---------- registrations: as participant or as the contact person, cancelled ones excluded
registration_rows as (

    select
        profile_id,
        interaction_id,
        category as activity_type
    from interactions
    where interaction_type = 'registration'
        and coalesce(status, '') <> 'cancelled'

    union

    select
        contact_profile_id as profile_id,
        interaction_id,
        category as activity_type
    from interactions
    where interaction_type = 'registration'
        and contact_profile_id is not null
        and coalesce(status, '') <> 'cancelled'

),

registrations as (

    select
        profile_id,
        {% for activity_type in activity_types -%}
        sum(case when activity_type = '{{ activity_type }}' then 1 else 0 end)
            as registrations_{{ activity_type }},
        {% endfor -%}
        count(*) as registrations_total
    from registration_rows
    group by profile_id

),

-- The contact person of a registration of someone else who is a minor on the as-of date.
children as (

    select
        interactions.contact_profile_id as profile_id,
        count(distinct interactions.profile_id) as n_children
    from interactions
    inner join profiles as participants
        on interactions.profile_id = participants.profile_id
    where interactions.interaction_type = 'registration'
        and interactions.contact_profile_id is not null
        and interactions.contact_profile_id <> interactions.profile_id
        and participants.birth_date > {{ dbt.dateadd('year', -18, as_of) }}
    group by interactions.contact_profile_id

),

---------- e-mail engagement
email as (

    select
        profile_id,
        sum(case when interaction_type = 'email_open' then 1 else 0 end) as email_opens,
        sum(case when interaction_type = 'email_click' then 1 else 0 end) as email_clicks,
        sum(
            case
                when interaction_type = 'email_open'
                    and occurred_at >= {{ ninety_days_before }} then 1
                else 0
            end
        ) as email_opens_90d,
        sum(
            case
                when interaction_type = 'email_click'
                    and occurred_at >= {{ ninety_days_before }} then 1
                else 0
            end
        ) as email_clicks_90d,
        max(case when interaction_type = 'email_click' then occurred_at end)
            as last_email_click_at
    from interactions
    where interaction_type in ('email_open', 'email_click')
    group by profile_id

),

---------- web and app sessions: a new session after 30 minutes without an event
digital_events as (

    select
        profile_id,
        case when interaction_type = 'screen' then 'app' else 'web' end as channel,
        occurred_at
    from interactions
    where interaction_type in ('page', 'track', 'screen')

),

digital_gaps as (

    select
        profile_id,
        channel,
        occurred_at,
        lag(occurred_at) over (
            partition by profile_id, channel
            order by occurred_at
        ) as previous_at
    from digital_events

),

session_starts as (

    select
        profile_id,
        channel,
        occurred_at
    from digital_gaps
    where previous_at is null
        or {{ dbt.datediff('previous_at', 'occurred_at', 'second') }} > 30 * 60

),

sessions as (

    select
        profile_id,
        sum(case when channel = 'web' then 1 else 0 end) as web_sessions,
        sum(case when channel = 'app' then 1 else 0 end) as app_sessions,
        sum(
            case
                when channel = 'web' and occurred_at >= {{ ninety_days_before }} then 1
                else 0
            end
        ) as web_sessions_90d,
        sum(
            case
                when channel = 'app' and occurred_at >= {{ ninety_days_before }} then 1
                else 0
            end
        ) as app_sessions_90d
    from session_starts
    group by profile_id

),

last_seen as (

    select
        profile_id,
        max(occurred_at) as last_seen_at
    from interactions
    group by profile_id

),

---------- wishlist adds of an event the profile never bought a ticket for
wishlist_adds as (

    select
        profile_id,
        event_id
    from interactions
    where interaction_type = 'track'
        and item_name = 'Added to Wishlist'

),

purchased_events as (

    select distinct
        profile_id,
        event_id
    from interactions
    where interaction_type = 'ticket_purchase'
        and event_id is not null

),

wishlist as (

    select
        wishlist_adds.profile_id,
        count(*) as wishlist_adds,
        sum(case when purchased_events.event_id is null then 1 else 0 end)
            as wishlist_adds_without_purchase
    from wishlist_adds
    left join purchased_events
        on wishlist_adds.profile_id = purchased_events.profile_id
        and wishlist_adds.event_id = purchased_events.event_id
    group by wishlist_adds.profile_id

),

---------- consents per channel purpose (marts.consent_state)
consent_pivot as (

    select
        {% for purpose in consent_purposes -%}
        max(case when purpose = '{{ purpose }}' then status end) as consent_{{ purpose }},
        {% endfor -%}
        profile_id
    from consents
    group by profile_id

),

final as (

    select
        ---------- ids
        profiles.profile_id,
        profiles.is_known,

        ---------- who
        {{ antwerp_district('profiles.postcode') }} as district,
        {{ age_band('profiles.birth_date', as_of) }} as age_band,
        coalesce(children.n_children, 0) > 0 as has_children,
        cast(coalesce(children.n_children, 0) as integer) as n_children,

        ---------- tickets (RFM)
        rfm_values.last_ticket_purchase_at,
        {{ dbt.datediff('rfm_values.last_ticket_purchase_at', as_of, 'day') }}
            as ticket_recency_days,
        cast(coalesce(rfm_values.ticket_purchases, 0) as integer) as ticket_purchases,
        cast(coalesce(rfm_values.ticket_revenue_eur, 0) as decimal(14, 2))
            as ticket_revenue_eur,
        cast(rfm_scores.rfm_recency_score as integer) as rfm_recency_score,
        cast(rfm_scores.rfm_frequency_score as integer) as rfm_frequency_score,
        cast(rfm_scores.rfm_monetary_score as integer) as rfm_monetary_score,
        cast(coalesce(rfm_values.culture_ticket_purchases, 0) as integer)
            as culture_ticket_purchases,
        cast(coalesce(rfm_values.sport_ticket_purchases, 0) as integer)
            as sport_ticket_purchases,
        favourite_categories.favourite_category,
        favourite_venues.favourite_venue,

        ---------- registrations
        cast(coalesce(registrations.registrations_total, 0) as integer) as registrations_total,
        {% for activity_type in activity_types -%}
        cast(coalesce(registrations.registrations_{{ activity_type }}, 0) as integer)
            as registrations_{{ activity_type }},
        {% endfor %}
        ---------- e-mail
        cast(coalesce(email.email_opens, 0) as integer) as email_opens,
        cast(coalesce(email.email_clicks, 0) as integer) as email_clicks,
        cast(coalesce(email.email_opens_90d, 0) as integer) as email_opens_90d,
        cast(coalesce(email.email_clicks_90d, 0) as integer) as email_clicks_90d,
        email.last_email_click_at,

        ---------- web and app
        cast(coalesce(sessions.web_sessions, 0) as integer) as web_sessions,
        cast(coalesce(sessions.app_sessions, 0) as integer) as app_sessions,
        cast(coalesce(sessions.web_sessions_90d, 0) as integer) as web_sessions_90d,
        cast(coalesce(sessions.app_sessions_90d, 0) as integer) as app_sessions_90d,
        cast(coalesce(wishlist.wishlist_adds, 0) as integer) as wishlist_adds,
        cast(coalesce(wishlist.wishlist_adds_without_purchase, 0) as integer)
            as wishlist_adds_without_purchase,
        last_seen.last_seen_at,

        ---------- consents
        {% for purpose in consent_purposes -%}
        coalesce(consent_pivot.consent_{{ purpose }}, 'unknown') as consent_{{ purpose }},
        {% endfor %}
        ---------- as of
        cast({{ as_of }} as date) as as_of_date

    from profiles
    left join children
        on profiles.profile_id = children.profile_id
    left join rfm_values
        on profiles.profile_id = rfm_values.profile_id
    left join rfm_scores
        on profiles.profile_id = rfm_scores.profile_id
    left join favourite_categories
        on profiles.profile_id = favourite_categories.profile_id
        and favourite_categories.category_rank = 1
    left join favourite_venues
        on profiles.profile_id = favourite_venues.profile_id
        and favourite_venues.venue_rank = 1
    left join registrations
        on profiles.profile_id = registrations.profile_id
    left join email
        on profiles.profile_id = email.profile_id
    left join sessions
        on profiles.profile_id = sessions.profile_id
    left join wishlist
        on profiles.profile_id = wishlist.profile_id
    left join last_seen
        on profiles.profile_id = last_seen.profile_id
    left join consent_pivot
        on profiles.profile_id = consent_pivot.profile_id

)

select * from final
