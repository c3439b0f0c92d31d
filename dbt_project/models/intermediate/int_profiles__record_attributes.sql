-- The records of every profile with their attributes, trust rank and the identity step's
-- E.164 phone: the input of golden-record survivorship and of e-mail/consent lookups.
with

records as (

    select * from {{ ref('int_identity__records') }}

),

record_profiles as (

    select * from {{ ref('stg_identity__record_profiles') }}

),

final as (

    select
        record_profiles.record_id,
        record_profiles.profile_id,
        record_profiles.source,
        record_profiles.record_key,
        record_profiles.role,
        {{ trust_rank('record_profiles.role') }} as trust_rank,
        records.first_name,
        records.last_name,
        coalesce(records.email, record_profiles.email_normalised) as email,
        record_profiles.phone_e164,
        coalesce(records.birth_date, record_profiles.birth_date) as birth_date,
        coalesce(records.postcode, record_profiles.postcode) as postcode,
        records.municipality,
        records.a_profiel_id,
        records.device_id,
        records.anonymous_id,
        coalesce(records.is_child_record, false) as is_child_record,
        records.observed_at,
        record_profiles.assigned_at
    from record_profiles
    left join records
        on record_profiles.record_id = records.record_id

)

select * from final
