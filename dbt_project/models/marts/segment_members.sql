{{
    config(
        materialized='incremental',
        incremental_strategy=incremental_merge_strategy(),
        unique_key='membership_id',
        on_schema_change='append_new_columns',
        file_format=var('spark_file_format', 'delta')
    )
}}

{{ require_merge_strategy() }}

-- Published: segment membership history. One row per stay of a profile in a segment:
-- entered_at is the run that first saw it, exited_at the run that no longer saw it (null
-- while a member); a re-entry opens a new row. Each run merges on membership_id:
--   * entries (current members without an open row) are inserted;
--   * exits (open rows whose profile left, or whose segment was removed) are updated;
--   * open rows of profiles still in the segment are not touched.
-- The segments come from var('segments') (macro segment_names); the run timestamp from
-- var('run_started_at') or dbt's run_started_at (macro run_timestamp).
with

current_members as (

    {% for segment in segment_names() -%}
    select distinct
        '{{ segment }}' as segment,
        profile_id
    from {{ ref('seg_' ~ segment) }}
    where profile_id is not null
    {% if not loop.last %}union all
    {% endif %}
    {%- endfor %}

),

{% if is_incremental() %}

open_memberships as (

    select * from {{ this }}
    where exited_at is null

),

entries as (

    select
        current_members.segment,
        current_members.profile_id
    from current_members
    left join open_memberships
        on current_members.segment = open_memberships.segment
        and current_members.profile_id = open_memberships.profile_id
    where open_memberships.membership_id is null

),

exits as (

    select
        open_memberships.membership_id,
        open_memberships.segment,
        open_memberships.profile_id,
        open_memberships.entered_at,
        {{ run_timestamp() }} as exited_at
    from open_memberships
    left join current_members
        on open_memberships.segment = current_members.segment
        and open_memberships.profile_id = current_members.profile_id
    where current_members.profile_id is null

),

{% else %}

entries as (

    select * from current_members

),

{% endif %}

new_memberships as (

    select
        {{ dbt.hash(dbt.concat([
            "segment", "'|'", "profile_id", "'|'",
            "cast(" ~ run_timestamp() ~ " as " ~ dbt.type_string() ~ ")"
        ])) }} as membership_id,
        segment,
        profile_id,
        {{ run_timestamp() }} as entered_at,
        cast(null as timestamp) as exited_at
    from entries

),

final as (

    select * from new_memberships
    {% if is_incremental() -%}
    union all
    select * from exits
    {%- endif %}

)

select * from final
