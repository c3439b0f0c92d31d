"""Run the nightly job in this process, as the schedule and the sensor would in a deployment."""

import os
from dataclasses import dataclass, field

import dagster as dg

from cdp_pipeline.settings import Settings, get_settings


@dataclass
class NightlyOutcome:
    """What one in-process night did."""

    success: bool
    run_id: str
    sync_runs: list[str] = field(default_factory=list)
    synced: dict[str, dict[str, int]] = field(default_factory=dict)


# A local instance: no telemetry, and no warning that the file is missing on every run.
_DAGSTER_YAML = "telemetry:\n  enabled: false\n"


def ensure_dagster_home(settings: Settings) -> None:
    """Create Dagster's instance folder with the platform's instance settings if missing."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    config = settings.dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(_DAGSTER_YAML, encoding="utf-8")


def _instance(settings: Settings) -> dg.DagsterInstance:
    ensure_dagster_home(settings)
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    return dg.DagsterInstance.get()


def _console(log_level: str) -> dict[str, object]:
    return {"console": {"config": {"log_level": log_level}}}


def run_nightly(
    retrain: bool = False,
    instance: dg.DagsterInstance | None = None,
    log_level: str = "WARNING",
) -> NightlyOutcome:
    """Run the nightly job, then evaluate the activation sensor and run the syncs it asks for."""
    from cdp_pipeline.definitions import NIGHTLY_JOB_NAME, defs
    from cdp_pipeline.identity.definitions import identity_run_config

    settings = get_settings()
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    instance = instance or _instance(settings)
    job = defs.resolve_job_def(NIGHTLY_JOB_NAME)
    run_config = identity_run_config(retrain=retrain).to_config_dict()
    result = job.execute_in_process(
        instance=instance,
        run_config={**run_config, "loggers": _console(log_level)},
        raise_on_error=False,
    )
    outcome = NightlyOutcome(success=result.success, run_id=result.run_id)
    if not result.success:
        return outcome

    sensor = defs.resolve_sensor_def("segment_change_sensor")
    with dg.build_sensor_context(instance=instance, definitions=defs) as context:
        evaluation = sensor.evaluate_tick(context)
    activation_job = defs.resolve_job_def("activation_job")
    for request in evaluation.run_requests or []:
        sync = activation_job.execute_in_process(
            instance=instance,
            asset_selection=list(request.asset_selection or []),
            tags=dict(request.tags),
            run_config={"loggers": _console(log_level)},
            raise_on_error=False,
        )
        outcome.sync_runs.append(sync.run_id)
        outcome.success = outcome.success and sync.success
        for event in sync.get_asset_materialization_events():
            materialization = event.step_materialization_data.materialization
            counts = {
                name: int(value.value)
                for name, value in materialization.metadata.items()
                if name in {"audience", "added", "updated", "removed"}
            }
            outcome.synced[materialization.asset_key.to_user_string()] = counts
    return outcome


def summary_lines(settings: Settings, outcome: NightlyOutcome) -> list[str]:
    """A short report of the night: records read, profiles, segment sizes, rows exported."""
    from cdp_pipeline.resources import WarehouseResource

    lines = [f"Nightly run {outcome.run_id}: {'succeeded' if outcome.success else 'FAILED'}"]
    if not settings.warehouse.exists():
        return lines
    with WarehouseResource(database=str(settings.warehouse)).connect(read_only=True) as con:
        lines.append("Records read per source (this delivery):")
        for source, read, loaded, quarantined in con.execute(
            "select source, sum(rows_read), sum(rows_loaded), sum(rows_quarantined)"
            " from raw._files group by source order by source"
        ).fetchall():
            lines.append(
                f"  {source:<18} {read:>9} read {loaded:>9} loaded {quarantined:>6} quarantined"
            )
        (profiles,) = con.execute("select count(*) from marts.profiles").fetchone()
        (known,) = con.execute("select count(*) from marts.profiles where is_known").fetchone()
        (records,) = con.execute("select count(*) from marts.profile_records").fetchone()
        lines.append(f"Profiles: {profiles} ({known} known) from {records} records")
        lines.append("Segment sizes:")
        for segment, size in con.execute(
            "select segment, count(*) filter (where exited_at is null)"
            " from marts.segment_members group by segment order by segment"
        ).fetchall():
            lines.append(f"  {segment:<34} {size:>8}")
    lines.append("Exports:")
    if not outcome.synced:
        lines.append("  no segment changed since the last sync: nothing sent")
    for destination, counts in sorted(outcome.synced.items()):
        lines.append(
            f"  {destination:<44} {counts.get('audience', 0):>7} rows"
            f" (+{counts.get('added', 0)} ~{counts.get('updated', 0)} -{counts.get('removed', 0)})"
        )
    return lines
