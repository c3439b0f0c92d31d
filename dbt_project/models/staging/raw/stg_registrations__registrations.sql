-- Activity registrations; the latest loaded row wins per source and registration.
with

source as (

    select * from {{ source('raw', 'registrations') }}

),

ranked as (

    select
        source.*,
        row_number() over (
            partition by source._source, source.registration_id
            order by source._loaded_at desc, source._file desc, source._line desc
        ) as delivery_rank
    from source
    where source.registration_id is not null

),

final as (

    select
        ---------- ids
        {{ dbt.concat(["_source", "'|'", "registration_id"]) }} as registration_key,
        _source as source,
        registration_id,
        {{ empty_to_null('activity_id') }} as activity_id,
        {{ empty_to_null('a_profiel_id') }} as a_profiel_id,

        ---------- activity
        {{ empty_to_null('activity_name') }} as activity_name,
        lower(trim(activity_type)) as activity_type,
        price_eur,
        lower(trim(status)) as status,

        ---------- participant
        {{ empty_to_null('participant_first_name') }} as participant_first_name,
        {{ empty_to_null('participant_last_name') }} as participant_last_name,
        participant_birth_date,

        ---------- contact
        {{ empty_to_null('contact_first_name') }} as contact_first_name,
        {{ empty_to_null('contact_last_name') }} as contact_last_name,
        {{ empty_to_null('contact_email') }} as contact_email,
        {{ normalise_email('contact_email') }} as contact_email_normalised,
        {{ empty_to_null('contact_phone') }} as contact_phone,

        ---------- address
        {{ empty_to_null('street') }} as street,
        {{ empty_to_null('house_number') }} as house_number,
        {{ empty_to_null('postcode') }} as postcode,
        {{ empty_to_null('city') }} as city,

        ---------- timestamps
        registered_at,

        ---------- lineage
        _file as loaded_from_file,
        _loaded_at as loaded_at

    from ranked
    where delivery_rank = 1

)

select * from final
