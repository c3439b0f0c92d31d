{#- SQL list literal of the culture ticket categories (var culture_categories). -#}
{% macro culture_categories() -%}
    ({%- for category in var('culture_categories') -%}
        '{{ category | lower }}'{{ ", " if not loop.last }}
    {%- endfor -%})
{%- endmacro %}
