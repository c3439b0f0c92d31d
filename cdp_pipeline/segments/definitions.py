"""Segment sizes and membership fingerprints, the signal the activation sensor watches."""

import dagster as dg

from cdp_pipeline.resources import WarehouseResource
from cdp_pipeline.segments.membership import segment_states

SEGMENT_SUMMARY_KEY = dg.AssetKey(["segments", "segment_summary"])
FINGERPRINTS_METADATA_KEY = "fingerprints"


@dg.asset(
    key=SEGMENT_SUMMARY_KEY,
    deps=[dg.AssetKey(["marts", "segment_members"])],
    group_name="segments",
    kinds={"duckdb"},
)
def segment_summary(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Size, entries and exits of every segment after tonight's run."""
    with warehouse.connect(read_only=True) as con:
        states = segment_states(con)
    context.log.info(f"Read membership of {len(states)} segments from marts.segment_members")
    table = "\n".join(
        f"| {state.segment} | {state.size} | {state.entered} | {state.exited} |" for state in states
    )
    metadata: dict[str, dg.RawMetadataValue] = {
        "segments": dg.MetadataValue.int(len(states)),
        "members": dg.MetadataValue.int(sum(state.size for state in states)),
        "sizes": dg.MetadataValue.md(
            "| segment | size | entered | exited |\n| --- | --- | --- | --- |\n" + table
        ),
        FINGERPRINTS_METADATA_KEY: dg.MetadataValue.json(
            {state.segment: state.fingerprint for state in states}
        ),
    }
    for state in states:
        metadata[f"size/{state.segment}"] = dg.MetadataValue.int(state.size)
    return dg.MaterializeResult(metadata=metadata)


defs = dg.Definitions(assets=[segment_summary])
