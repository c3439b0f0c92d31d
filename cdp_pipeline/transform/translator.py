"""How dbt resources appear in Dagster: keys by schema, groups by stage, raw sources fanned out."""

from collections.abc import Mapping
from functools import cached_property
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtProject

from cdp_pipeline.ingest import sources_by_kind
from cdp_pipeline.ingest.kinds import KINDS

_RAW_SOURCE = "raw"
# Erasure and retention run between ingest and staging, so every model that reads the raw
# layer waits for them: an erased person's stale rows are gone before dbt sees them.
ERASURE_KEY = dg.AssetKey(["privacy", "erasure"])


def _raw_table_to_kind() -> dict[str, str]:
    return {kind.table: name for name, kind in KINDS.items()}


def _dbt_tags(manifest: Mapping[str, Any], unique_id: str) -> list[str]:
    return list(manifest["nodes"].get(unique_id, {}).get("tags", []))


class CdpDbtTranslator(DagsterDbtTranslator):
    """Maps dbt models to ``[schema, model]`` keys and the stage groups of the asset graph.

    A raw table holds every configured source of one kind (a second ticketing shop lands
    beside the first), so a model that reads a raw table depends on the ingest asset of
    each source of that kind rather than on the table.
    """

    @cached_property
    def _raw_sources_cache(self) -> tuple[dict[str, str], dict[str, list[str]]]:
        return _raw_table_to_kind(), sources_by_kind()

    def _raw_sources(self) -> tuple[dict[str, str], dict[str, list[str]]]:
        """Kind of each raw table and the configured sources of each kind, read once."""
        return self._raw_sources_cache

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        name: str = dbt_resource_props["name"]
        if name.startswith(("stg_identity__", "int_identity__")):
            return "identity"
        if name.startswith("stg_"):
            return "ingest"
        if dbt_resource_props.get("schema") == "segments" or name.startswith("segment"):
            return "segments"
        return "profiles"

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if not unique_id.startswith("model."):
            return spec
        kind_of_table, by_kind = self._raw_sources()
        deps: list[dg.AssetDep] = []
        for dep in spec.deps:
            path = dep.asset_key.path
            if len(path) == 2 and path[0] == _RAW_SOURCE and path[1] in kind_of_table:
                kind = kind_of_table[path[1]]
                deps.extend(dg.AssetDep(dg.AssetKey([_RAW_SOURCE, s])) for s in by_kind[kind])
            else:
                deps.append(dep)
        if "pre_identity" in _dbt_tags(manifest, unique_id):
            deps.append(dg.AssetDep(ERASURE_KEY))
        return spec.replace_attributes(deps=deps)
