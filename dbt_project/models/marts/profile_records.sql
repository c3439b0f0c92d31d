-- Published: one row per person-bearing source record with the profile it belongs to.
with

record_profiles as (

    select * from {{ ref('stg_identity__record_profiles') }}

),

final as (

    select
        record_id,
        source,
        record_key,
        role,
        profile_id
    from record_profiles

)

select * from final
