{%- set purposes = ['email_marketing', 'push_marketing', 'ad_targeting', 'profiling'] -%}

-- Consent per profile and purpose (every profile x every purpose; 'unknown' without a
-- signal). Rule: the latest signal over all identities merged into the profile wins;
-- at the same timestamp a withdrawal wins. Hence a withdrawal on any merged identity
-- beats every grant that is older (or as old), whichever identity the grant was given on;
-- only a grant given after the withdrawal re-opens the purpose.
-- A grant for one e-mail address does not authorise another: an email_marketing grant
-- counts only when its covered_email (the e-mail subject's or newsletter's address, the
-- A-profiel account's own address) is the profile's golden e-mail (profiles.email), so
-- status granted means the profile may be e-mailed at profiles.email. Withdrawals count
-- whatever address they were given for (the rule never widens use).
with

profiles as (

    select * from {{ ref('profiles') }}

),

signals as (

    select * from {{ ref('int_consents__profile_events') }}

),

purposes as (

    {% for purpose in purposes -%}
    select '{{ purpose }}' as purpose
    {% if not loop.last %}union all
    {% endif %}
    {%- endfor %}
    union
    select distinct purpose from signals
    where purpose is not null

),

authorising_signals as (

    select signals.*
    from signals
    inner join profiles
        on signals.profile_id = profiles.profile_id
    where coalesce(signals.purpose, '') <> 'email_marketing'
        or signals.consent_status = 'withdrawn'
        or signals.covered_email = profiles.email

),

ranked_signals as (

    select
        authorising_signals.*,
        row_number() over (
            partition by authorising_signals.profile_id, authorising_signals.purpose
            order by
                case when authorising_signals.occurred_at is null then 1 else 0 end,
                authorising_signals.occurred_at desc,
                case when authorising_signals.consent_status = 'withdrawn' then 0 else 1 end,
                authorising_signals.source asc,
                authorising_signals.subject asc
        ) as signal_rank
    from authorising_signals

),

latest_signals as (

    select * from ranked_signals
    where signal_rank = 1

),

final as (

    select
        profiles.profile_id,
        purposes.purpose,
        coalesce(latest_signals.consent_status, 'unknown') as status,
        latest_signals.occurred_at as updated_at,
        latest_signals.source,
        latest_signals.subject
    from profiles
    cross join purposes
    left join latest_signals
        on profiles.profile_id = latest_signals.profile_id
        and purposes.purpose = latest_signals.purpose

)

select * from final
