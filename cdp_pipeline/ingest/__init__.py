"""Ingest stage: landed source exports -> raw.* tables (see docs/architecture.md).

Kinds (record types) are code in ``kinds``; sources (deliveries) are configuration
in ``cdp_pipeline/config/sources.yml``; ``loader`` does the work and
``definitions`` exposes one Dagster asset per source.
"""

from cdp_pipeline.ingest.config import SourceConfig, load_sources_config, sources_by_kind
from cdp_pipeline.ingest.kinds import KINDS, Kind

__all__ = ["KINDS", "Kind", "SourceConfig", "load_sources_config", "sources_by_kind"]
