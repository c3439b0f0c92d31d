-- Every person-bearing source record in one shape: the input of the identity step and
-- exactly the set of marts.profile_records. record_id = source|role|record_key.
-- Deleted A-profiel accounts are left out: the person closed the account.
with

accounts as (

    select * from {{ ref('stg_aprofiel__accounts') }}

),

orders as (

    select * from {{ ref('stg_ticketing__orders') }}

),

registrations as (

    select * from {{ ref('stg_registrations__registrations') }}

),

newsletter_contacts as (

    select * from {{ ref('stg_newsletter__contacts') }}

),

devices as (

    select * from {{ ref('stg_app_devices__devices') }}

),

web_events as (

    select * from {{ ref('stg_web_events__events') }}

),

web_identities as (

    select * from {{ ref('int_identity__web_identities') }}

),

account_records as (

    select
        source,
        account_id as record_key,
        'account' as role,
        first_name,
        last_name,
        birth_date,
        email_normalised as email,
        phone,
        street,
        case
            when box is null then house_number
            else {{ dbt.concat(["house_number", "' bus '", "box"]) }}
        end as house_number,
        postcode,
        municipality,
        account_id as a_profiel_id,
        cast(null as {{ dbt.type_string() }}) as device_id,
        cast(null as {{ dbt.type_string() }}) as anonymous_id,
        false as is_child_record,
        cast(null as {{ dbt.type_string() }}) as household_key,
        coalesce(updated_at, created_at) as observed_at
    from accounts
    where not is_deleted

),

buyer_records as (

    select
        source,
        order_id as record_key,
        'buyer' as role,
        first_name,
        last_name,
        cast(null as date) as birth_date,
        email_normalised as email,
        phone,
        cast(null as {{ dbt.type_string() }}) as street,
        cast(null as {{ dbt.type_string() }}) as house_number,
        postcode,
        cast(null as {{ dbt.type_string() }}) as municipality,
        a_profiel_id,
        cast(null as {{ dbt.type_string() }}) as device_id,
        cast(null as {{ dbt.type_string() }}) as anonymous_id,
        false as is_child_record,
        cast(null as {{ dbt.type_string() }}) as household_key,
        ordered_at as observed_at
    from orders

),

registration_people as (

    select
        registrations.*,
        coalesce(
            lower(trim(registrations.participant_first_name))
            = lower(trim(registrations.contact_first_name))
            and lower(trim(registrations.participant_last_name))
            = lower(trim(registrations.contact_last_name)),
            false
        ) as is_participant_the_contact,
        coalesce(
            registrations.participant_birth_date
            > cast({{ dbt.dateadd('year', -18, 'registered_at') }} as date),
            false
        ) as is_participant_minor
    from registrations

),

contact_records as (

    select
        source,
        registration_id as record_key,
        'contact' as role,
        contact_first_name as first_name,
        contact_last_name as last_name,
        case when is_participant_the_contact then participant_birth_date end as birth_date,
        contact_email_normalised as email,
        contact_phone as phone,
        street,
        house_number,
        postcode,
        city as municipality,
        a_profiel_id,
        cast(null as {{ dbt.type_string() }}) as device_id,
        cast(null as {{ dbt.type_string() }}) as anonymous_id,
        false as is_child_record,
        cast(null as {{ dbt.type_string() }}) as household_key,
        registered_at as observed_at
    from registration_people

),

-- The participant carries the contact's e-mail, phone and A-profiel id only when the
-- participant is the contact (same name): a parent's details must not link a child.
participant_records as (

    select
        source,
        registration_id as record_key,
        'participant' as role,
        participant_first_name as first_name,
        participant_last_name as last_name,
        participant_birth_date as birth_date,
        case when is_participant_the_contact then contact_email_normalised end as email,
        case when is_participant_the_contact then contact_phone end as phone,
        street,
        house_number,
        postcode,
        city as municipality,
        case when is_participant_the_contact then a_profiel_id end as a_profiel_id,
        cast(null as {{ dbt.type_string() }}) as device_id,
        cast(null as {{ dbt.type_string() }}) as anonymous_id,
        (is_participant_minor and not is_participant_the_contact) as is_child_record,
        {{ dbt.concat(["source", "'|contact|'", "registration_id"]) }} as household_key,
        registered_at as observed_at
    from registration_people

),

subscriber_records as (

    select
        source,
        contact_key as record_key,
        'subscriber' as role,
        first_name,
        last_name,
        cast(null as date) as birth_date,
        email_normalised as email,
        cast(null as {{ dbt.type_string() }}) as phone,
        cast(null as {{ dbt.type_string() }}) as street,
        cast(null as {{ dbt.type_string() }}) as house_number,
        cast(null as {{ dbt.type_string() }}) as postcode,
        cast(null as {{ dbt.type_string() }}) as municipality,
        cast(null as {{ dbt.type_string() }}) as a_profiel_id,
        cast(null as {{ dbt.type_string() }}) as device_id,
        cast(null as {{ dbt.type_string() }}) as anonymous_id,
        false as is_child_record,
        cast(null as {{ dbt.type_string() }}) as household_key,
        coalesce(unsubscribed_at, opt_in_at, loaded_at) as observed_at
    from newsletter_contacts

),

device_records as (

    select
        source,
        device_id as record_key,
        'device' as role,
        cast(null as {{ dbt.type_string() }}) as first_name,
        cast(null as {{ dbt.type_string() }}) as last_name,
        cast(null as date) as birth_date,
        cast(null as {{ dbt.type_string() }}) as email,
        cast(null as {{ dbt.type_string() }}) as phone,
        cast(null as {{ dbt.type_string() }}) as street,
        cast(null as {{ dbt.type_string() }}) as house_number,
        cast(null as {{ dbt.type_string() }}) as postcode,
        cast(null as {{ dbt.type_string() }}) as municipality,
        a_profiel_id,
        device_id,
        cast(null as {{ dbt.type_string() }}) as anonymous_id,
        false as is_child_record,
        cast(null as {{ dbt.type_string() }}) as household_key,
        coalesce(last_seen_at, first_seen_at) as observed_at
    from devices

),

visitors as (

    select
        source,
        anonymous_id,
        max(occurred_at) as last_seen_at,
        row_number() over (
            partition by anonymous_id order by max(occurred_at) desc, source
        ) as source_rank
    from web_events
    where anonymous_id is not null
    group by source, anonymous_id

),

-- The A-profiel id of a visitor only when its identify/alias calls name exactly one account.
visitor_accounts as (

    select
        anonymous_id,
        max(user_id) as a_profiel_id
    from web_identities
    group by anonymous_id
    having count(distinct user_id) = 1

),

visitor_emails as (

    select
        anonymous_id,
        max(traits_email_normalised) as email
    from web_events
    where anonymous_id is not null and traits_email_normalised is not null
    group by anonymous_id
    having count(distinct traits_email_normalised) = 1

),

visitor_records as (

    select
        visitors.source,
        visitors.anonymous_id as record_key,
        'visitor' as role,
        cast(null as {{ dbt.type_string() }}) as first_name,
        cast(null as {{ dbt.type_string() }}) as last_name,
        cast(null as date) as birth_date,
        visitor_emails.email,
        cast(null as {{ dbt.type_string() }}) as phone,
        cast(null as {{ dbt.type_string() }}) as street,
        cast(null as {{ dbt.type_string() }}) as house_number,
        cast(null as {{ dbt.type_string() }}) as postcode,
        cast(null as {{ dbt.type_string() }}) as municipality,
        visitor_accounts.a_profiel_id,
        cast(null as {{ dbt.type_string() }}) as device_id,
        visitors.anonymous_id,
        false as is_child_record,
        cast(null as {{ dbt.type_string() }}) as household_key,
        visitors.last_seen_at as observed_at
    from visitors
    left join visitor_accounts
        on visitors.anonymous_id = visitor_accounts.anonymous_id
    left join visitor_emails
        on visitors.anonymous_id = visitor_emails.anonymous_id
    where visitors.source_rank = 1

),

unioned as (

    select * from account_records
    union all
    select * from buyer_records
    union all
    select * from contact_records
    union all
    select * from participant_records
    union all
    select * from subscriber_records
    union all
    select * from device_records
    union all
    select * from visitor_records

),

final as (

    select
        {{ dbt.concat(["source", "'|'", "role", "'|'", "record_key"]) }} as record_id,
        source,
        record_key,
        role,
        first_name,
        last_name,
        birth_date,
        email,
        phone,
        street,
        house_number,
        postcode,
        municipality,
        a_profiel_id,
        device_id,
        anonymous_id,
        is_child_record,
        household_key,
        observed_at
    from unioned

)

select * from final
