{#- Text value at a JSON path ('$.a.b') of a JSON column; portable across adapters. -#}
{% macro json_text(column_name, json_path) -%}
    {{ return(adapter.dispatch('json_text', 'cdp')(column_name, json_path)) }}
{%- endmacro %}

{% macro default__json_text(column_name, json_path) -%}
    json_extract_string({{ column_name }}, '{{ json_path }}')
{%- endmacro %}

{% macro spark__json_text(column_name, json_path) -%}
    get_json_object({{ column_name }}, '{{ json_path }}')
{%- endmacro %}
