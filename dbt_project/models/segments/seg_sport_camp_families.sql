-- Profiles that are the contact person of a child participant in a sport camp
-- (activity_type 'sportkamp') registered in the calendar year of the as-of date.
with

registrations as (

    select * from {{ ref('stg_registrations__registrations') }}

),

records as (

    select * from {{ ref('int_identity__records') }}

),

profile_records as (

    select * from {{ ref('profile_records') }}

),

sport_camps as (

    select
        source,
        registration_id
    from registrations
    where activity_type = 'sportkamp'
        and coalesce(status, '') not in ('cancelled', 'geannuleerd')
        and {{ dbt.date_trunc('year', 'registered_at') }}
        = {{ dbt.date_trunc('year', as_of_date()) }}
        and registered_at < {{ dbt.dateadd('day', 1, as_of_date()) }}

),

child_participants as (

    select
        source,
        record_key as registration_id
    from records
    where role = 'participant' and is_child_record

),

final as (

    select distinct profile_records.profile_id
    from sport_camps
    inner join child_participants
        on sport_camps.source = child_participants.source
        and sport_camps.registration_id = child_participants.registration_id
    inner join profile_records
        on profile_records.role = 'contact'
        and sport_camps.source = profile_records.source
        and sport_camps.registration_id = profile_records.record_key

)

select * from final
