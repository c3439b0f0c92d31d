{#- At most one row per key has a null end column (one open membership per segment and
    profile). -#}
{% test at_most_one_open_row(model, key_columns, end_column) %}

with

open_rows as (

    select
        {{ key_columns | join(', ') }},
        count(*) as n_open
    from {{ model }}
    where {{ end_column }} is null
    group by {{ key_columns | join(', ') }}

)

select * from open_rows where n_open > 1

{% endtest %}
