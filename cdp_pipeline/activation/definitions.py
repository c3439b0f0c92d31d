"""Destinations as assets, synced by a sensor when their segment's membership changes."""

from collections.abc import Sequence

import dagster as dg

from cdp_pipeline.activation.config import Destination, load_destinations
from cdp_pipeline.activation.sync import append_history, sync_file_destination
from cdp_pipeline.resources import WarehouseResource
from cdp_pipeline.segments.definitions import FINGERPRINTS_METADATA_KEY, SEGMENT_SUMMARY_KEY
from cdp_pipeline.settings import get_settings

ACTIVATION_GROUP = "activation"
SEGMENT_FINGERPRINT_METADATA_KEY = "segment_fingerprint"


def destination_key(destination: Destination) -> dg.AssetKey:
    """The asset key of a destination."""
    return dg.AssetKey([ACTIVATION_GROUP, destination.name])


def build_destination_asset(destination: Destination) -> dg.AssetsDefinition:
    """One asset per destination: tonight's consented audience, as a change since last sync."""

    @dg.asset(
        key=destination_key(destination),
        deps=[
            SEGMENT_SUMMARY_KEY,
            dg.AssetKey(["marts", "profiles"]),
            dg.AssetKey(["marts", "consent_state"]),
        ],
        group_name=ACTIVATION_GROUP,
        description=(
            f"Segment {destination.segment} to {destination.type} destination "
            f"{destination.name}, {destination.purpose} consent only."
        ),
        kinds={destination.type},
        metadata={"segment": destination.segment, "purpose": destination.purpose},
    )
    def _sync(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        settings = get_settings()
        with warehouse.connect(read_only=True) as con:
            result = sync_file_destination(
                con, destination, settings.state_dir, settings.exports_dir
            )
        context.log.info(
            f"{destination.name}: {result.segment_members} members, {result.audience} sendable, "
            f"{result.added} added, {result.updated} updated, {result.removed} removed, "
            f"file written: {result.export_file is not None}"
        )
        append_history(settings.state_dir, result, context.run.run_id)
        return dg.MaterializeResult(
            metadata={
                "segment_members": dg.MetadataValue.int(result.segment_members),
                "audience": dg.MetadataValue.int(result.audience),
                "added": dg.MetadataValue.int(result.added),
                "updated": dg.MetadataValue.int(result.updated),
                "removed": dg.MetadataValue.int(result.removed),
                "skipped_no_consent": dg.MetadataValue.int(result.skipped_no_consent),
                "skipped_no_identifier": dg.MetadataValue.int(result.skipped_no_identifier),
                "export_file": dg.MetadataValue.path(result.export_file or ""),
                SEGMENT_FINGERPRINT_METADATA_KEY: dg.MetadataValue.text(
                    _segment_fingerprints_now(context).get(destination.segment, "")
                ),
                "dagster/row_count": dg.MetadataValue.int(result.audience),
            }
        )

    return _sync


def _latest_metadata(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, object]:
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return {}
    return {name: value.value for name, value in event.asset_materialization.metadata.items()}


def _segment_fingerprints(instance: dg.DagsterInstance) -> dict[str, str]:
    fingerprints = _latest_metadata(instance, SEGMENT_SUMMARY_KEY).get(FINGERPRINTS_METADATA_KEY)
    return dict(fingerprints) if isinstance(fingerprints, dict) else {}


def _segment_fingerprints_now(context: dg.AssetExecutionContext) -> dict[str, str]:
    return _segment_fingerprints(context.instance)


def destinations_to_sync(
    instance: dg.DagsterInstance, destinations: Sequence[Destination]
) -> list[tuple[Destination, str]]:
    """Destinations whose segment membership differs from what they last synced."""
    fingerprints = _segment_fingerprints(instance)
    stale = []
    for destination in destinations:
        current = fingerprints.get(destination.segment)
        if current is None:
            continue
        synced = _latest_metadata(instance, destination_key(destination)).get(
            SEGMENT_FINGERPRINT_METADATA_KEY
        )
        if synced != current:
            stale.append((destination, current))
    return stale


def build_activation_defs(destinations: Sequence[Destination]) -> dg.Definitions:
    """Assets, job and sensor of the declared destinations."""
    assets = [build_destination_asset(destination) for destination in destinations]
    job = dg.define_asset_job(
        "activation_job",
        selection=dg.AssetSelection.groups(ACTIVATION_GROUP),
        description="Sync the destinations whose segment changed.",
    )

    @dg.sensor(
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Starts a destination's sync when its segment's membership changed.",
    )
    def segment_change_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        stale = destinations_to_sync(context.instance, destinations)
        if not stale:
            return dg.SensorResult(skip_reason="No segment changed since its last sync.")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"{destination.name}:{fingerprint}",
                    asset_selection=[destination_key(destination)],
                    tags={"cdp/destination": destination.name},
                )
                for destination, fingerprint in stale
            ]
        )

    return dg.Definitions(assets=assets, jobs=[job], sensors=[segment_change_sensor])


defs = build_activation_defs(load_destinations())
