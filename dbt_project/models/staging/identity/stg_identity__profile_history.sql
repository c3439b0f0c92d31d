-- Profile lifecycle events per identity run (post-identity).
with

source as (

    select * from {{ source('identity', 'profile_history') }}

),

final as (

    select
        run_id,
        profile_id,
        change as change_type,
        other_profile_id,
        n_records,
        changed_at

    from source

)

select * from final
