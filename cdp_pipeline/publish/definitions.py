"""The serving snapshot asset: tonight's profiles, published for the touchpoints."""

import dagster as dg

from cdp_pipeline.publish.snapshot import publish_snapshot, snapshots_dir_of
from cdp_pipeline.resources import WarehouseResource

SERVING_SNAPSHOT_KEY = dg.AssetKey(["publish", "serving_snapshot"])


@dg.asset(
    key=SERVING_SNAPSHOT_KEY,
    deps=[
        dg.AssetKey(["marts", "profiles"]),
        dg.AssetKey(["marts", "profile_records"]),
        dg.AssetKey(["marts", "segment_members"]),
        dg.AssetKey(["marts", "consent_state"]),
    ],
    group_name="profiles",
    kinds={"duckdb", "sqlite"},
)
def serving_snapshot(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Tonight's profiles, segments and consents as read-only files the website and app query."""
    directory = snapshots_dir_of(warehouse.path)
    with warehouse.connect(read_only=True) as con:
        summary = publish_snapshot(con, directory)
    context.log.info(
        f"Published serving snapshot {summary.name} of {summary.rows['profiles']} profiles and "
        f"{summary.rows['identifiers']} identifiers in "
        f"{', '.join(f'{step} {value:.1f} s' for step, value in summary.seconds.items())}; "
        f"removed {len(summary.removed)} old files"
    )
    metadata: dict[str, dg.RawMetadataValue] = {
        "dagster/row_count": dg.MetadataValue.int(summary.rows["profiles"]),
        "path": dg.MetadataValue.path(str(summary.path)),
        "size_bytes": dg.MetadataValue.int(summary.size_bytes),
        "lookup_store_path": dg.MetadataValue.path(str(summary.lookup_path)),
        "lookup_store_size_bytes": dg.MetadataValue.int(summary.lookup_size_bytes),
        "traits_present": dg.MetadataValue.bool(summary.traits_present),
        "scores_present": dg.MetadataValue.bool(summary.scores_present),
        "removed_snapshots": dg.MetadataValue.int(len(summary.removed)),
    }
    for table, rows in summary.rows.items():
        metadata[f"rows/{table}"] = dg.MetadataValue.int(rows)
    for step, seconds in summary.seconds.items():
        metadata[f"seconds/{step}"] = dg.MetadataValue.float(round(seconds, 2))
    return dg.MaterializeResult(metadata=metadata)


defs = dg.Definitions(assets=[serving_snapshot])
