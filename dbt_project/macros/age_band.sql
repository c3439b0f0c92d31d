{#- Age band of a birth date on a reference date: '0-17' (minors share one band, their
    exact age is never exposed), '18-24', '25-34', '35-44', '45-54', '55-64', '65+'. The
    age is whole days / 365.25, which is exact enough for bands. -#}
{% macro age_band(birth_date_column, reference_date) -%}
    {%- set age = "floor(" ~ dbt.datediff(birth_date_column, reference_date, 'day') ~ " / 365.25)" -%}
    case
        when {{ birth_date_column }} is null then null
        when {{ age }} < 18 then '0-17'
        when {{ age }} < 25 then '18-24'
        when {{ age }} < 35 then '25-34'
        when {{ age }} < 45 then '35-44'
        when {{ age }} < 55 then '45-54'
        when {{ age }} < 65 then '55-64'
        else '65+'
    end
{%- endmacro %}
