-- One row per event or transaction with the profile it belongs to:
--   * ticket orders and registrations through their own record (registrations: the
--     participant's profile; the contact's profile is contact_profile_id);
--   * e-mail events through the normalised e-mail (int_profiles__email_owners: the
--     newsletter subscriber's profile wins when several profiles hold the address);
--   * web events through the logged-in account (user_id = an A-profiel account record),
--     else the visitor record of the anonymous_id.
-- Events that resolve to no profile are kept with a null profile_id.
with

unioned as (

    select * from {{ ref('int_interactions__unioned') }}

),

record_profiles as (

    select * from {{ ref('stg_identity__record_profiles') }}

),

email_owners as (

    select * from {{ ref('int_profiles__email_owners') }}

),

account_profiles as (

    select
        record_key as a_profiel_id,
        min(profile_id) as profile_id
    from record_profiles
    where role = 'account'
    group by record_key

),

visitor_profiles as (

    select
        record_key as anonymous_id,
        min(profile_id) as profile_id
    from record_profiles
    where role = 'visitor'
    group by record_key

),

final as (

    select
        unioned.interaction_id,
        coalesce(
            record_profiles.profile_id,
            email_owners.profile_id,
            account_profiles.profile_id,
            visitor_profiles.profile_id
        ) as profile_id,
        unioned.source,
        unioned.interaction_type,
        unioned.occurred_at,
        unioned.category,
        unioned.item_name,
        unioned.url,
        unioned.amount_eur,
        unioned.quantity,
        unioned.status,
        unioned.order_id,
        unioned.event_id,
        unioned.registration_id,
        unioned.activity_id,
        unioned.campaign_id,
        unioned.message_id,
        contact_profiles.profile_id as contact_profile_id
    from unioned
    left join record_profiles
        on unioned.record_id = record_profiles.record_id
    left join record_profiles as contact_profiles
        on unioned.contact_record_id = contact_profiles.record_id
    left join email_owners
        on unioned.email = email_owners.email
    left join account_profiles
        on unioned.user_id = account_profiles.a_profiel_id
    left join visitor_profiles
        on unioned.anonymous_id = visitor_profiles.anonymous_id

)

select * from final
