-- Every consent signal resolved to the profile(s) it concerns, one row per signal and
-- profile, with the e-mail address the signal covers (covered_email: what an
-- email_marketing grant may authorise, see consent_state):
--   * preference centre events: subject a_profiel -> every profile holding a record with
--     that A-profiel id; subject email -> every profile holding that e-mail; subject
--     device -> the profile of the device record; covered_email is the subject's address
--     for an e-mail subject and the account's own e-mail for an A-profiel subject;
--   * newsletter STATUS -> email_marketing: subscribed = granted (at opt-in),
--     unsubscribed / cleaned = withdrawn (at unsubscribe, else opt-in); pending is not a
--     decision and yields no signal; covered_email is the subscribed address;
--   * app push_opt_in -> push_marketing, as last reported by the device (no e-mail).
with

consent_events as (

    select * from {{ ref('stg_consents__consent_events') }}

),

newsletter_contacts as (

    select
        *,
        coalesce(unsubscribed_at, opt_in_at, loaded_at) as unsubscribed_or_loaded_at
    from {{ ref('stg_newsletter__contacts') }}

),

devices as (

    select * from {{ ref('stg_app_devices__devices') }}

),

record_attributes as (

    select * from {{ ref('int_profiles__record_attributes') }}

),

subject_profiles as (

    select distinct
        'a_profiel' as subject_type,
        a_profiel_id as subject_id,
        profile_id
    from record_attributes
    where a_profiel_id is not null

    union all

    select distinct
        'email' as subject_type,
        email as subject_id,
        profile_id
    from record_attributes
    where email is not null

    union all

    select distinct
        'device' as subject_type,
        device_id as subject_id,
        profile_id
    from record_attributes
    where device_id is not null

),

-- The account holder's own address: what an A-profiel-subject grant covers.
account_emails as (

    select distinct
        a_profiel_id,
        email
    from record_attributes
    where role = 'account'
        and a_profiel_id is not null
        and email is not null

),

preference_centre_signals as (

    select
        subject_profiles.profile_id,
        consent_events.purpose,
        consent_events.consent_status,
        consent_events.occurred_at,
        consent_events.source,
        {{ dbt.concat(["consent_events.subject_type", "':'", "consent_events.subject_id"]) }}
            as subject,
        case
            when consent_events.subject_type = 'email' then consent_events.subject_id
            when consent_events.subject_type = 'a_profiel' then account_emails.email
        end as covered_email
    from consent_events
    inner join subject_profiles
        on consent_events.subject_type = subject_profiles.subject_type
        and consent_events.subject_id = subject_profiles.subject_id
    left join account_emails
        on consent_events.subject_type = 'a_profiel'
        and consent_events.subject_id = account_emails.a_profiel_id
    where consent_events.consent_status in ('granted', 'withdrawn')

),

newsletter_signals as (

    select
        record_attributes.profile_id,
        'email_marketing' as purpose,
        case
            when newsletter_contacts.status = 'subscribed' then 'granted'
            else 'withdrawn'
        end as consent_status,
        case
            when newsletter_contacts.status = 'subscribed'
                then coalesce(newsletter_contacts.opt_in_at, newsletter_contacts.loaded_at)
            else newsletter_contacts.unsubscribed_or_loaded_at
        end as occurred_at,
        newsletter_contacts.source,
        {{ dbt.concat(["'newsletter:'", "newsletter_contacts.contact_key"]) }} as subject,
        newsletter_contacts.email_normalised as covered_email
    from newsletter_contacts
    inner join record_attributes
        on record_attributes.role = 'subscriber'
        and newsletter_contacts.source = record_attributes.source
        and newsletter_contacts.contact_key = record_attributes.record_key
    where newsletter_contacts.status in ('subscribed', 'unsubscribed', 'cleaned')

),

push_signals as (

    select
        record_attributes.profile_id,
        'push_marketing' as purpose,
        case when devices.push_opt_in then 'granted' else 'withdrawn' end as consent_status,
        coalesce(devices.last_seen_at, devices.first_seen_at, devices.loaded_at) as occurred_at,
        devices.source,
        {{ dbt.concat(["'device:'", "devices.device_id"]) }} as subject,
        cast(null as {{ dbt.type_string() }}) as covered_email
    from devices
    inner join record_attributes
        on record_attributes.role = 'device'
        and devices.source = record_attributes.source
        and devices.device_id = record_attributes.record_key
    where devices.push_opt_in is not null

),

final as (

    select * from preference_centre_signals
    union all
    select * from newsletter_signals
    union all
    select * from push_signals

)

select * from final
