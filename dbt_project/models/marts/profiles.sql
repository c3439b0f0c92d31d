-- Published: one row per unified person (known or anonymous) with its golden record.
with

record_attributes as (

    select * from {{ ref('int_profiles__record_attributes') }}

),

interactions as (

    select * from {{ ref('interactions') }}

),

-- Survivorship per attribute (macro survivorship_rank): the non-null value of the most
-- trusted record (aprofiel > registrations contact > participant > ticketing > newsletter
-- > app_devices > web), then the most recently observed, then the lowest record_id.
ranked as (

    select
        *,
        {{ survivorship_rank('first_name') }} as first_name_rank,
        {{ survivorship_rank('last_name') }} as last_name_rank,
        {{ survivorship_rank('email') }} as email_rank,
        {{ survivorship_rank('phone_e164') }} as phone_e164_rank,
        {{ survivorship_rank('birth_date') }} as birth_date_rank,
        {{ survivorship_rank('postcode') }} as postcode_rank,
        {{ survivorship_rank('municipality') }} as municipality_rank,
        {{ survivorship_rank('a_profiel_id') }} as a_profiel_id_rank
    from record_attributes

),

golden as (

    select
        profile_id,
        max(case when first_name_rank = 1 then first_name end) as first_name,
        max(case when last_name_rank = 1 then last_name end) as last_name,
        max(case when email_rank = 1 then email end) as email,
        max(case when phone_e164_rank = 1 then phone_e164 end) as phone_e164,
        max(case when birth_date_rank = 1 then birth_date end) as birth_date,
        max(case when postcode_rank = 1 then postcode end) as postcode,
        max(case when municipality_rank = 1 then municipality end) as municipality,
        max(case when a_profiel_id_rank = 1 then a_profiel_id end) as a_profiel_id,
        max(case when role <> 'visitor' then 1 else 0 end) = 1 as is_known,
        count(*) as n_records,
        min(observed_at) as first_observed_at,
        max(observed_at) as updated_at
    from ranked
    group by profile_id

),

profile_sources as (

    select distinct
        profile_id,
        source
    from record_attributes

),

source_lists as (

    select
        profile_id,
        {{ sorted_string_agg('source') }} as sources
    from profile_sources
    group by profile_id

),

activity as (

    select
        profile_id,
        min(occurred_at) as first_interaction_at,
        max(occurred_at) as last_interaction_at
    from interactions
    where profile_id is not null
    group by profile_id

),

final as (

    select
        golden.profile_id,
        golden.first_name,
        golden.last_name,
        golden.email,
        golden.phone_e164 as phone,
        golden.birth_date,
        golden.postcode,
        golden.municipality,
        golden.a_profiel_id,
        golden.is_known,
        golden.n_records,
        source_lists.sources,
        case
            when activity.first_interaction_at is null then golden.first_observed_at
            when golden.first_observed_at is null then activity.first_interaction_at
            when activity.first_interaction_at < golden.first_observed_at
                then activity.first_interaction_at
            else golden.first_observed_at
        end as first_seen_at,
        case
            when activity.last_interaction_at is null then golden.updated_at
            when golden.updated_at is null then activity.last_interaction_at
            when activity.last_interaction_at > golden.updated_at
                then activity.last_interaction_at
            else golden.updated_at
        end as last_seen_at,
        golden.updated_at
    from golden
    left join source_lists
        on golden.profile_id = source_lists.profile_id
    left join activity
        on golden.profile_id = activity.profile_id

)

select * from final
