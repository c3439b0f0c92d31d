"""The Dagster code location: every concern's definitions, the nightly job and its schedule."""

import dagster as dg

from cdp_pipeline.activation.definitions import ACTIVATION_GROUP
from cdp_pipeline.activation.definitions import defs as activation_defs
from cdp_pipeline.identity.definitions import defs as identity_defs
from cdp_pipeline.ingest.definitions import defs as ingest_defs
from cdp_pipeline.privacy.definitions import defs as privacy_defs
from cdp_pipeline.publish.definitions import defs as publish_defs
from cdp_pipeline.resources import LandingResource, WarehouseResource
from cdp_pipeline.segments.definitions import defs as segments_defs
from cdp_pipeline.transform.definitions import defs as transform_defs

NIGHTLY_JOB_NAME = "nightly_job"

nightly_job = dg.define_asset_job(
    NIGHTLY_JOB_NAME,
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups(ACTIVATION_GROUP),
    description="Ingest every source, unify profiles and rebuild segments; syncs follow by sensor.",
)

nightly_schedule = dg.ScheduleDefinition(
    name="nightly_schedule",
    job=nightly_job,
    cron_schedule="0 2 * * *",
    execution_timezone="Europe/Brussels",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="The nightly run at 02:00 Brussels time, after the sources' evening exports.",
)

platform_defs = dg.Definitions(
    jobs=[nightly_job],
    schedules=[nightly_schedule],
    resources={"warehouse": WarehouseResource(), "landing": LandingResource()},
    # DuckDB allows one writing process per file: steps run one after another in the run's
    # process instead of in parallel subprocesses.
    executor=dg.in_process_executor,
)

defs = dg.Definitions.merge(
    ingest_defs,
    privacy_defs,
    transform_defs,
    identity_defs,
    segments_defs,
    publish_defs,
    activation_defs,
    platform_defs,
)
