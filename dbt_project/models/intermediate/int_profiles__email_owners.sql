-- One profile per normalised e-mail, for events that carry only an e-mail (e-mail
-- engagement). When several profiles hold the address (a shared family address, an
-- unmerged duplicate) the profile of a newsletter subscriber record wins, then the most
-- trusted record, then the lowest profile_id, so the choice is deterministic.
with

record_attributes as (

    select * from {{ ref('int_profiles__record_attributes') }}

),

ranked as (

    select
        email,
        profile_id,
        row_number() over (
            partition by email
            order by
                case when role = 'subscriber' then 0 else 1 end,
                trust_rank,
                profile_id
        ) as owner_rank
    from record_attributes
    where email is not null

),

final as (

    select
        email,
        profile_id
    from ranked
    where owner_rank = 1

)

select * from final
