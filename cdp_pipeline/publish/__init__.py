"""Serving snapshots: per night a read-only DuckDB file and a SQLite look-up store beside it."""

from cdp_pipeline.publish.lookup_store import lookup_store_of
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
    "lookup_store_of",
    "publish_snapshot",
    "snapshots_dir",
]
