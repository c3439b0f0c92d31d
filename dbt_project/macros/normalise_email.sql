{#- E-mail as the identity step and the e-mail joins compare it: trimmed, lower-cased,
    null when empty. -#}
{% macro normalise_email(column_name) -%}
    nullif(lower(trim({{ column_name }})), '')
{%- endmacro %}
