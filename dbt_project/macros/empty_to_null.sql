{#- Trimmed text, null when empty. -#}
{% macro empty_to_null(column_name) -%}
    nullif(trim({{ column_name }}), '')
{%- endmacro %}
