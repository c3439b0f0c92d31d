"""segment_summary: sizes per run over the membership history, as a plot and a table."""

from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb

from cdp_pipeline.resources import WarehouseResource
from cdp_pipeline.segments.definitions import FINGERPRINTS_METADATA_KEY, segment_summary
from cdp_pipeline.segments.membership import segment_size_history

NIGHT_1, NIGHT_2, NIGHT_3 = (datetime(2025, 12, d, 2) for d in (1, 2, 3))


def _warehouse(path: Path) -> Path:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        con.execute(
            "create table marts.segment_members (membership_id varchar, segment varchar,"
            " profile_id varchar, entered_at timestamp, exited_at timestamp)"
        )
        con.executemany(
            "insert into marts.segment_members values (?, ?, ?, ?, ?)",
            [("1", "a", "P1", NIGHT_1, None), ("2", "a", "P2", NIGHT_1, NIGHT_2),
             ("3", "a", "P3", NIGHT_2, None), ("4", "b", "P1", NIGHT_3, None),
             ("5", "a", "P2", NIGHT_3, None)],
        )  # fmt: skip
    return path


def test_size_history_per_run(tmp_path: Path) -> None:
    with duckdb.connect(str(_warehouse(tmp_path / "w.duckdb"))) as con:
        history = segment_size_history(con)
    figures = {
        (row.run_at, row.segment): (row.size, row.entered, row.exited)
        for row in history.itertuples()
    }
    # (size, entered, exited): P2 leaves "a" on night 2 as P3 enters, and comes back on 3.
    assert figures == {
        (NIGHT_1, "a"): (2, 2, 0), (NIGHT_1, "b"): (0, 0, 0),
        (NIGHT_2, "a"): (2, 1, 1), (NIGHT_2, "b"): (0, 0, 0),
        (NIGHT_3, "a"): (3, 1, 0), (NIGHT_3, "b"): (1, 1, 0),
    }  # fmt: skip


def test_size_history_keeps_only_the_last_runs(tmp_path: Path) -> None:
    with duckdb.connect(str(_warehouse(tmp_path / "w.duckdb"))) as con:
        history = segment_size_history(con, max_runs=2)
    assert sorted(set(history["run_at"])) == [NIGHT_2, NIGHT_3]


def test_summary_metadata_has_a_plot_and_keeps_fingerprints(tmp_path: Path) -> None:
    path = _warehouse(tmp_path / "w.duckdb")
    result = dg.materialize(
        [segment_summary], resources={"warehouse": WarehouseResource(database=str(path))}
    )
    (materialization,) = result.asset_materializations_for_node("segments__segment_summary")
    metadata = materialization.metadata
    plot = metadata["size_over_time"].value
    assert plot.startswith("![segment size, entries and exits per run](data:image/png;base64,")
    assert "| 2025-12-02 02:00 | 2 (+1 −1) | 0 (+0 −0) |" in plot
    assert "| 2025-12-03 02:00 | 3 (+1 −0) | 1 (+1 −0) |" in plot
    assert set(metadata[FINGERPRINTS_METADATA_KEY].value) == {"a", "b"}
    assert metadata["size/a"].value == 3
    # The latest run's entries and exits as numbers, which the UI plots run after run.
    assert (metadata["entered/a"].value, metadata["exited/a"].value) == (1, 0)
    assert (metadata["entered/b"].value, metadata["exited/b"].value) == (1, 0)
    assert "| a | 3 | 1 | 0 |" in metadata["sizes"].value
