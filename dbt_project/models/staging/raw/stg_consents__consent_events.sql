-- Preference-centre consent events; a re-delivered event is kept once. Subjects of type
-- e-mail are normalised like every other e-mail.
with

source as (

    select * from {{ source('raw', 'consent_events') }}

),

normalised as (

    select
        source.*,
        lower(trim(source.subject_type)) as subject_type_normalised,
        lower(trim(source.purpose)) as purpose_normalised,
        lower(trim(source.status)) as status_normalised,
        case
            when lower(trim(source.subject_type)) = 'email'
                then {{ normalise_email('source.subject_id') }}
            else {{ empty_to_null('source.subject_id') }}
        end as subject_id_normalised
    from source

),

keyed as (

    select
        normalised.*,
        {{ dbt.hash(dbt.concat([
            "coalesce(normalised.subject_type_normalised, '')", "'|'",
            "coalesce(normalised.subject_id_normalised, '')", "'|'",
            "coalesce(normalised.purpose_normalised, '')", "'|'",
            "coalesce(normalised.status_normalised, '')", "'|'",
            "coalesce(cast(normalised.occurred_at as " ~ dbt.type_string() ~ "), '')"
        ])) }} as consent_event_id
    from normalised

),

ranked as (

    select
        keyed.*,
        row_number() over (
            partition by keyed.consent_event_id
            order by keyed._loaded_at, keyed._file, keyed._line
        ) as delivery_rank
    from keyed

),

final as (

    select
        ---------- ids
        consent_event_id,
        _source as source,
        subject_type_normalised as subject_type,
        subject_id_normalised as subject_id,

        ---------- consent
        purpose_normalised as purpose,
        status_normalised as status,
        case
            when status_normalised in ('granted', 'given', 'opt_in', 'yes') then 'granted'
            when status_normalised in ('withdrawn', 'revoked', 'denied', 'opt_out', 'no')
                then 'withdrawn'
            else 'unknown'
        end as consent_status,
        {{ empty_to_null('consent_source') }} as consent_source,
        occurred_at,

        ---------- lineage
        _file as loaded_from_file,
        _loaded_at as loaded_at

    from ranked
    where delivery_rank = 1

)

select * from final
