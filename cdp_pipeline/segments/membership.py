"""Per-segment sizes, entries, exits and a fingerprint of the current members."""

from dataclasses import dataclass

import duckdb
import pandas as pd


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


# Every run timestamp seen in the history, and per segment its size right after that run
# and the profiles that entered and exited in that run. A row entered by the run counts
# towards the size unless it exited by then; an exit at the run itself is that run's exit.
_SIZE_HISTORY_SQL = """
with history as (
    select segment, entered_at, exited_at from marts.segment_members
),

runs as (
    select entered_at as run_at from history
    union
    select exited_at from history where exited_at is not null
),

recent_runs as (
    select run_at from runs order by run_at desc limit $max_runs
),

segments as (
    select distinct segment from history
)

select
    recent_runs.run_at,
    segments.segment,
    count(history.segment) filter (
        where history.exited_at is null or history.exited_at > recent_runs.run_at
    ) as size,
    count(history.segment) filter (where history.entered_at = recent_runs.run_at) as entered,
    count(history.segment) filter (where history.exited_at = recent_runs.run_at) as exited
from recent_runs
cross join segments
left join history
    on history.segment = segments.segment
    and history.entered_at <= recent_runs.run_at
group by recent_runs.run_at, segments.segment
order by recent_runs.run_at, segments.segment
"""


def segment_size_history(con: duckdb.DuckDBPyConnection, max_runs: int = 30) -> pd.DataFrame:
    """Per segment and each of the last ``max_runs`` runs: size after it, entries, exits.

    Columns run_at, segment, size, entered, exited.
    """
    return con.execute(_SIZE_HISTORY_SQL, {"max_runs": max_runs}).df()
