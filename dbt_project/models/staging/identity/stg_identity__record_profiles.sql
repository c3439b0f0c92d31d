-- Record -> profile assignment of the latest identity run (post-identity).
with

source as (

    select * from {{ source('identity', 'record_profiles') }}

),

final as (

    select
        ---------- ids
        record_id,
        profile_id,
        source,
        record_key,
        role,

        ---------- normalised attributes used for matching
        email_normalised,
        phone_e164,
        first_name_normalised,
        last_name_normalised,
        birth_date,
        postcode,

        ---------- run
        run_id,
        assigned_at

    from source

)

select * from final
