"""Destinations as assets, synced by a sensor when their segment's membership changes."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb

from cdp_pipeline.activation.config import Destination, PushDestination, load_destinations
from cdp_pipeline.activation.state import read_history
from cdp_pipeline.activation.sync import SyncResult, sync_destination
from cdp_pipeline.resources import WarehouseResource
from cdp_pipeline.segments.definitions import FINGERPRINTS_METADATA_KEY, SEGMENT_SUMMARY_KEY
from cdp_pipeline.settings import get_settings

ACTIVATION_GROUP = "activation"
SEGMENT_FINGERPRINT_METADATA_KEY = "segment_fingerprint"
# A sync that failed (vendor down) or left members failed is retried after this pause.
RETRY_AFTER = timedelta(minutes=15)


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
            *(
                [
                    dg.AssetKey(["staging", "stg_app_devices__devices"]),
                    dg.AssetKey(["marts", "profile_records"]),
                ]
                if isinstance(destination, PushDestination)
                else []
            ),
        ],
        group_name=ACTIVATION_GROUP,
        description=(
            f"Members of segment {destination.segment} with {destination.purpose} consent,"
            f" kept in step with {destination.type} destination {destination.name}."
        ),
        kinds={destination.type},
        metadata={
            "segment": destination.segment,
            "purpose": destination.purpose,
            "sync_mode": destination.sync_mode,
        },
    )
    def _sync(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        settings = get_settings()
        with warehouse.connect(read_only=True) as con:
            result = sync_destination(
                con,
                destination,
                settings.state_dir,
                settings.exports_dir,
                run_id=context.run.run_id,
            )
        # Counts only: a person's data never goes to the logs.
        context.log.info(
            f"{destination.name}: {result.segment_members} members, {result.audience} sendable,"
            f" {result.skipped_for_consent} held back for consent, suppression or age;"
            f" {result.added} added, {result.updated} updated, {result.removed} removed,"
            f" {result.failed} failed, {result.rejected} rejected in {result.batches} batches"
        )
        if result.held_below_minimum:
            context.log.warning(
                f"{destination.name}: audience {result.audience} is below the minimum"
                f" {destination.min_audience_size}; nothing added or updated"
            )
        return dg.MaterializeResult(
            metadata={
                **sync_metadata(result),
                SEGMENT_FINGERPRINT_METADATA_KEY: dg.MetadataValue.text(
                    _segment_fingerprints(context.instance).get(destination.segment, "")
                ),
            }
        )

    return _sync


def sync_metadata(result: SyncResult) -> dict[str, dg.MetadataValue]:
    """The counts of one sync as typed asset metadata."""
    counts = {
        "segment_members": result.segment_members,
        "audience": result.audience,
        "added": result.added,
        "updated": result.updated,
        "removed": result.removed,
        "sent": result.added + result.updated,
        "failed": result.failed,
        "rejected": result.rejected,
        "skipped_for_consent": result.skipped_for_consent,
        "skipped_no_consent": result.skipped_no_consent,
        "skipped_suppressed": result.skipped_suppressed,
        "skipped_minor": result.skipped_minor,
        "skipped_no_identifier": result.skipped_no_identifier,
        "pruned_tokens": result.pruned_tokens,
        "invalid_entries": result.invalid_entries,
        "batches": result.batches,
    }
    metadata: dict[str, dg.MetadataValue] = {
        name: dg.MetadataValue.int(value) for name, value in counts.items()
    }
    metadata["held_below_minimum"] = dg.MetadataValue.bool(result.held_below_minimum)
    metadata["match_rate"] = dg.MetadataValue.text(result.match_rate or "not reported")
    metadata["export_file"] = dg.MetadataValue.path(result.export_file or "")
    metadata["dagster/row_count"] = dg.MetadataValue.int(result.audience)
    return metadata


def _latest_metadata(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, object]:
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return {}
    return {name: value.value for name, value in event.asset_materialization.metadata.items()}


def _segment_fingerprints(instance: dg.DagsterInstance) -> dict[str, str]:
    fingerprints = _latest_metadata(instance, SEGMENT_SUMMARY_KEY).get(FINGERPRINTS_METADATA_KEY)
    return dict(fingerprints) if isinstance(fingerprints, dict) else {}


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


def destinations_to_retry(
    destinations: Sequence[Destination], now: datetime | None = None
) -> list[tuple[Destination, str]]:
    """Destinations whose last sync aborted or left members failed, with that sync's run id.

    Failed members are only retried by a sync; without this a vendor outage would wait for
    the segment to change before anyone was sent again.
    """
    now = now or datetime.now(UTC).replace(tzinfo=None)
    settings = get_settings()
    due = []
    for destination in destinations:
        try:
            history = read_history(settings.state_dir, destination.name)
        except duckdb.Error:
            continue  # a sync holds the state file right now: look again next tick
        if not history:
            continue
        last = history[0]
        finished = last.get("finished_at")
        needs_retry = last.get("outcome") == "aborted" or bool(last.get("failed"))
        if needs_retry and isinstance(finished, datetime) and now - finished >= RETRY_AFTER:
            due.append((destination, str(last["run_id"])))
    return due


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
        requests = [
            dg.RunRequest(
                run_key=f"{destination.name}:{fingerprint}",
                asset_selection=[destination_key(destination)],
                tags={"cdp/destination": destination.name},
            )
            for destination, fingerprint in stale
        ]
        requested = {destination.name for destination, _ in stale}
        requests += [
            dg.RunRequest(
                # One retry per failed sync: the key names the sync being retried.
                run_key=f"{destination.name}:retry:{failed_run}",
                asset_selection=[destination_key(destination)],
                tags={"cdp/destination": destination.name, "cdp/retry_of": failed_run},
            )
            for destination, failed_run in destinations_to_retry(destinations)
            if destination.name not in requested
        ]
        if not requests:
            return dg.SensorResult(skip_reason="No segment changed and no sync to retry.")
        return dg.SensorResult(run_requests=requests)

    return dg.Definitions(assets=assets, jobs=[job], sensors=[segment_change_sensor])


defs = build_activation_defs(load_destinations())
