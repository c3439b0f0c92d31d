"""Per-segment sizes, entries, exits and a fingerprint of the current members."""

from dataclasses import dataclass

import duckdb


@dataclass(frozen=True)
class SegmentState:
    """What one run left a segment with."""

    segment: str
    size: int
    entered: int
    exited: int
    fingerprint: str


# Entries and exits of the latest run carry that run's timestamp, the latest one in the table.
_SEGMENT_STATES_SQL = """
with history as (
    select segment, profile_id, entered_at, exited_at from marts.segment_members
),

latest_run as (
    select max(greatest(entered_at, coalesce(exited_at, entered_at))) as run_at from history
),

final as (
    select
        history.segment,
        count(*) filter (where history.exited_at is null) as size,
        count(*) filter (where history.entered_at = latest_run.run_at) as entered,
        count(*) filter (where history.exited_at = latest_run.run_at) as exited,
        md5(coalesce(
            string_agg(history.profile_id, ',' order by history.profile_id)
                filter (where history.exited_at is null),
            ''
        )) as fingerprint
    from history
    cross join latest_run
    group by history.segment
)

select * from final order by segment
"""


def segment_states(con: duckdb.DuckDBPyConnection) -> list[SegmentState]:
    """The state of every segment that has ever had a member."""
    rows = con.execute(_SEGMENT_STATES_SQL).fetchall()
    return [SegmentState(*row) for row in rows]
