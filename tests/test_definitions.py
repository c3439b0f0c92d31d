"""The code location loads the way `dagster dev` loads it, with every stage's assets."""

import subprocess
import sys
from pathlib import Path

import dagster as dg

import cdp_pipeline.definitions as code_location
from cdp_pipeline.settings import PROJECT_ROOT

STAGES = {"ingest", "privacy", "identity", "profiles", "segments", "activation"}


def test_workspace_validates_as_dagster_dev_loads_it() -> None:
    dagster = Path(sys.executable).parent / "dagster"
    validation = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert validation.returncode == 0, validation.stderr[-2000:]


def test_code_location_has_every_stage_the_schedule_and_the_sensor() -> None:
    # Dagster scans the module for Definitions objects and refuses more than one.
    found = [
        name for name, value in vars(code_location).items() if isinstance(value, dg.Definitions)
    ]
    assert found == ["defs"]
    graph = code_location.defs.resolve_asset_graph()
    groups = {graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert STAGES <= groups
    schedule = code_location.defs.resolve_schedule_def("nightly_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == (
        "0 2 * * *",
        "Europe/Brussels",
    )
    assert code_location.defs.resolve_sensor_def("segment_change_sensor")


def test_models_reading_raw_tables_wait_for_erasure() -> None:
    graph = code_location.defs.resolve_asset_graph()
    staged = graph.get(dg.AssetKey(["staging", "stg_ticketing__orders"]))
    assert dg.AssetKey(["privacy", "erasure"]) in staged.parent_keys
    assert dg.AssetKey(["raw", "ticketing"]) in staged.parent_keys
