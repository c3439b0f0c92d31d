{#- The segments unioned into marts.segment_members (var 'segments'). A var rather than
    walking `graph` keeps the refs visible at parse time, so the DAG (and dagster-dbt
    lineage) is right without `-- depends_on` hints; the singular test
    assert_segments_var_matches_folder guards against forgetting a segment. -#}
{% macro segment_names() -%}
    {{ return(var('segments')) }}
{%- endmacro %}
