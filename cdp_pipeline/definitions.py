"""The Dagster code location: every concern's definitions, the nightly job and its schedule.

Each concern's module is imported as a module, not its ``defs`` object: Dagster loads
this module by scanning it for a ``Definitions`` and refuses more than one at module scope.
"""

import dagster as dg

from cdp_pipeline.activation import definitions as activation
from cdp_pipeline.identity import definitions as identity
from cdp_pipeline.ingest import definitions as ingest
from cdp_pipeline.privacy import definitions as privacy
from cdp_pipeline.publish import definitions as publish
from cdp_pipeline.resources import LandingResource, WarehouseResource
from cdp_pipeline.segments import definitions as segments
from cdp_pipeline.transform import definitions as transform

NIGHTLY_JOB_NAME = "nightly_job"

nightly_job = dg.define_asset_job(
    NIGHTLY_JOB_NAME,
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups(activation.ACTIVATION_GROUP),
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

defs = dg.Definitions.merge(
    ingest.defs,
    privacy.defs,
    transform.defs,
    identity.defs,
    segments.defs,
    publish.defs,
    activation.defs,
    dg.Definitions(
        jobs=[nightly_job],
        schedules=[nightly_schedule],
        resources={"warehouse": WarehouseResource(), "landing": LandingResource()},
        # DuckDB allows one writing process per file: steps run one after another in the
        # run's process instead of in parallel subprocesses.
        executor=dg.in_process_executor,
    ),
)
