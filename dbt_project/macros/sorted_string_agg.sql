{#- Values of a group joined into one sorted text (e.g. 'aprofiel,ticketing'). dbt's
    listagg ignores the order-by clause on Spark, so Spark sorts the collected array. -#}
{% macro sorted_string_agg(measure, delimiter_text="','") -%}
    {{ return(adapter.dispatch('sorted_string_agg', 'cdp')(measure, delimiter_text)) }}
{%- endmacro %}

{% macro default__sorted_string_agg(measure, delimiter_text) -%}
    {{ dbt.listagg(measure, delimiter_text, "order by " ~ measure) }}
{%- endmacro %}

{% macro spark__sorted_string_agg(measure, delimiter_text) -%}
    array_join(array_sort(collect_list({{ measure }})), {{ delimiter_text }})
{%- endmacro %}
