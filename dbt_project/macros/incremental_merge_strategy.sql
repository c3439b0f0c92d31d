{#- The incremental strategy of a model that updates rows it wrote before (segment_members
    closes memberships): merge. dbt-spark merges only into Delta, Iceberg or Hudi tables
    (var spark_file_format, default delta); on plain parquet the table can be created
    (a first build, a full refresh) but not merged into, so 'append' is returned there to
    pass dbt-spark's validation and the model refuses an incremental run itself. -#}
{% macro incremental_merge_strategy() -%}
    {{ return(adapter.dispatch('incremental_merge_strategy', 'cdp')()) }}
{%- endmacro %}

{% macro default__incremental_merge_strategy() -%}
    {{ return('merge') }}
{%- endmacro %}

{% macro spark__incremental_merge_strategy() -%}
    {%- if var('spark_file_format', 'delta') in ['delta', 'iceberg', 'hudi'] -%}
        {{ return('merge') }}
    {%- else -%}
        {{ return('append') }}
    {%- endif -%}
{%- endmacro %}

{#- Stops an incremental run of a model that needs a merge where none is possible, rather
    than appending the closed rows as duplicates. -#}
{% macro require_merge_strategy() -%}
    {%- if execute and is_incremental() and incremental_merge_strategy() != 'merge' -%}
        {{ exceptions.raise_compiler_error(
            model.name ~ " closes rows with a merge; on Spark set var spark_file_format to"
            ~ " delta, iceberg or hudi (it is '" ~ var('spark_file_format') ~ "')"
        ) }}
    {%- endif -%}
{%- endmacro %}
