{#- Rank of a record's value of one golden-record attribute within its profile: records
    holding a value first, then the most trusted (trust_rank), then the most recently
    observed, then record_id so the pick is deterministic. 1 = the surviving value. -#}
{% macro survivorship_rank(attribute) -%}
    row_number() over (
        partition by profile_id
        order by
            case when {{ attribute }} is null then 1 else 0 end asc,
            trust_rank asc,
            case when observed_at is null then 1 else 0 end asc,
            observed_at desc,
            record_id asc
    )
{%- endmacro %}
