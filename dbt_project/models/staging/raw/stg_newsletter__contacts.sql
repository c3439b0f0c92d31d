-- Newsletter contacts per list (LIST as delivered, trimmed): the export is a snapshot,
-- so the row of the latest loaded file wins per list and normalised e-mail.
with

source as (

    select * from {{ source('raw', 'newsletter_contacts') }}

),

keyed as (

    select
        source.*,
        {{ normalise_email('source.email') }} as email_normalised,
        {{ empty_to_null("source.list_name") }} as list_name_trimmed
    from source

),

ranked as (

    select
        keyed.*,
        row_number() over (
            partition by keyed._source, keyed.list_name_trimmed, keyed.email_normalised
            order by keyed._loaded_at desc, keyed._file desc, keyed._line desc
        ) as delivery_rank
    from keyed
    where keyed.email_normalised is not null and keyed.list_name_trimmed is not null

),

final as (

    select
        ---------- ids
        {{ dbt.concat(["list_name_trimmed", "':'", "email_normalised"]) }} as contact_key,
        _source as source,
        list_name_trimmed as list_name,

        ---------- person
        {{ empty_to_null('email') }} as email,
        email_normalised,
        {{ empty_to_null('first_name') }} as first_name,
        {{ empty_to_null('last_name') }} as last_name,
        lower(trim(language)) as language,

        ---------- subscription
        lower(trim(status)) as status,
        opt_in_at,
        unsubscribed_at,

        ---------- lineage
        _file as loaded_from_file,
        _loaded_at as loaded_at

    from ranked
    where delivery_rank = 1

)

select * from final
