{#- The timestamp stamped on segment_members entries and exits: var('run_started_at')
    when set (tests, back-fills), else dbt's run_started_at (UTC). -#}
{% macro run_timestamp() -%}
    {%- set pinned = var('run_started_at', none) -%}
    {%- if pinned -%}
        cast('{{ pinned }}' as timestamp)
    {%- else -%}
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as timestamp)
    {%- endif -%}
{%- endmacro %}
