-- A-profiel accounts: the export is a full snapshot, so the row of the latest loaded
-- file wins per account (ties broken on file name and line for determinism).
with

source as (

    select * from {{ source('raw', 'citizen_accounts') }}

),

ranked as (

    select
        source.*,
        row_number() over (
            partition by source._source, source.account_id
            order by source._loaded_at desc, source._file desc, source._line desc
        ) as delivery_rank
    from source
    where source.account_id is not null

),

final as (

    select
        ---------- ids
        account_id,
        _source as source,

        ---------- person
        {{ empty_to_null('given_name') }} as first_name,
        {{ empty_to_null('family_name') }} as last_name,
        birth_date,
        {{ empty_to_null('gender') }} as gender,
        {{ empty_to_null('email') }} as email,
        {{ normalise_email('email') }} as email_normalised,
        {{ empty_to_null('phone') }} as phone,
        {{ empty_to_null('language') }} as language,

        ---------- address
        {{ empty_to_null('street') }} as street,
        {{ empty_to_null('house_number') }} as house_number,
        {{ empty_to_null('box') }} as box,
        {{ empty_to_null('postcode') }} as postcode,
        {{ empty_to_null('municipality') }} as municipality,
        {{ empty_to_null('country') }} as country,

        ---------- status and timestamps
        lower(status) as status,
        coalesce(lower(status) = 'deleted', false) as is_deleted,
        created_at,
        updated_at,

        ---------- lineage
        _file as loaded_from_file,
        _loaded_at as loaded_at

    from ranked
    where delivery_rank = 1

)

select * from final
