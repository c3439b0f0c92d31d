-- Fails (one row per segment) when a model in models/segments is missing from
-- var('segments'), the list unioned into marts.segment_members. The reverse mistake (a
-- name in the var without a seg_<name> model) already fails compilation of
-- segment_members, whose ref() then points nowhere.
with

definitions as (

    select * from {{ ref('segment_definitions') }}

),

final as (

    select
        segment,
        model_name
    from definitions
    where not is_in_segment_members

)

select * from final
