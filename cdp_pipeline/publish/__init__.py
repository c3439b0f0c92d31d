"""Serving snapshots: a small read-only DuckDB file per night for the touchpoints."""

from cdp_pipeline.publish.snapshot import (
    IDENTIFIER_KINDS,
    SnapshotSummary,
    current_snapshot,
    publish_snapshot,
    snapshots_dir,
)

__all__ = [
    "IDENTIFIER_KINDS",
    "SnapshotSummary",
    "current_snapshot",
    "publish_snapshot",
    "snapshots_dir",
]
