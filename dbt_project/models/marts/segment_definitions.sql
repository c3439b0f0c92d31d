-- The catalogue of segments: one row per model in models/segments with the metadata of
-- its YAML meta (owner, channels, consent purpose). Read from dbt's graph at run time,
-- so a new segment shows up here without editing this model.
{%- set segment_nodes = [] -%}
{%- if execute -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'model' and node.fqn[1] == 'segments' -%}
            {%- do segment_nodes.append(node) -%}
        {%- endif -%}
    {%- endfor -%}
{%- endif %}

with

definitions as (

    {% for node in segment_nodes | sort(attribute='name') -%}
    {%- set meta = node.config.meta or {} -%}
    select
        '{{ node.name | replace("seg_", "", 1) }}' as segment,
        '{{ node.name }}' as model_name,
        '{{ dbt.escape_single_quotes(meta.get("owner", "")) }}' as owner,
        -- escape_single_quotes: Spark reads '' as two adjacent literals, not as a quote.
        '{{ dbt.escape_single_quotes(meta.get("description") or node.description or "") }}'
            as description,
        '{{ (meta.get("channels") or []) | join(",") }}' as channels,
        '{{ meta.get("purpose", "") }}' as consent_purpose,
        {{ "true" if node.name | replace("seg_", "", 1) in segment_names() else "false" }}
            as is_in_segment_members
    {% if not loop.last %}union all
    {% endif %}
    {%- else -%}
    select
        cast(null as {{ dbt.type_string() }}) as segment,
        cast(null as {{ dbt.type_string() }}) as model_name,
        cast(null as {{ dbt.type_string() }}) as owner,
        cast(null as {{ dbt.type_string() }}) as description,
        cast(null as {{ dbt.type_string() }}) as channels,
        cast(null as {{ dbt.type_string() }}) as consent_purpose,
        false as is_in_segment_members
    where 1 = 0
    {%- endfor %}

),

final as (

    select * from definitions

)

select * from final
