{#- A table the Python ML assets write (dbt source `ml`), aliased ml_<table>, or an empty
    relation of the same shape while the table does not exist yet (a fresh warehouse, a dbt
    build before the first ML run, the dbt tests' hand-made warehouse). source() is always
    called, so the lineage (and the Dagster asset dependency) is the same either way. -#}
{% macro ml_source(table_name) -%}
    {%- set relation = source('ml', table_name) -%}
    {%- set existing = none -%}
    {%- if execute -%}
        {%- set existing = adapter.get_relation(
            database=relation.database, schema=relation.schema, identifier=relation.identifier
        ) -%}
    {%- endif -%}
    {%- if execute and existing is none -%}
        {%- set columns = {
            'propensity_scores': [
                ('profile_id', dbt.type_string()), ('model', dbt.type_string()),
                ('score', dbt.type_float()), ('decile', dbt.type_int()),
                ('scored_at', dbt.type_timestamp())],
            'auto_segments': [
                ('profile_id', dbt.type_string()), ('segment', dbt.type_string()),
                ('description', dbt.type_string()), ('assigned_at', dbt.type_timestamp())],
        }[table_name] -%}
        (select
        {%- for name, type in columns %}
            cast(null as {{ type }}) as {{ name }}{{ "," if not loop.last }}
        {%- endfor %}
        where 1 = 0) as ml_{{ table_name }}
    {%- else -%}
        {{ relation }} as ml_{{ table_name }}
    {%- endif -%}
{%- endmacro %}
