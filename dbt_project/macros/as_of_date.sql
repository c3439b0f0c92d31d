{#- The reference date of segment rules: var('as_of_date') when set, else the platform
    setting CDP_AS_OF_DATE when set, else today. -#}
{% macro as_of_date() -%}
    {%- set pinned = var('as_of_date', none) or env_var('CDP_AS_OF_DATE', '') -%}
    {%- if pinned -%}
        cast('{{ pinned }}' as date)
    {%- else -%}
        cast({{ dbt.current_timestamp() }} as date)
    {%- endif -%}
{%- endmacro %}
