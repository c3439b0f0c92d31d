-- Link evidence between two records written by the identity step (post-identity).
with

source as (

    select * from {{ source('identity', 'links') }}

),

final as (

    select
        ---------- ids
        {{ dbt.concat(["record_id_l", "'~'", "record_id_r", "'~'", "link_type"]) }} as link_id,
        record_id_l,
        record_id_r,

        ---------- evidence
        link_type,
        match_weight,
        match_probability,
        evidence,

        ---------- run
        run_id

    from source

)

select * from final
