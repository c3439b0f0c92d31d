"""dbt models as assets, in two steps around the identity stage.

The models that feed identity resolution (staging and ``int_identity__*``, dbt tag
``pre_identity``) run before the Python identity asset; everything that reads the
identity tables runs after it. Two ``@dbt_assets`` keep that order explicit.
"""

import os
from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from cdp_pipeline.transform.project import dbt_env, dbt_executable, dbt_project, dbt_vars
from cdp_pipeline.transform.translator import CdpDbtTranslator

PRE_IDENTITY = "tag:pre_identity"
# Segment models read the ML outputs (propensity deciles, automatic segments), which read
# the traits mart: they run in a third step, after the ML assets.
SEGMENT_MODELS = "path:models/segments segment_members segment_definitions"


def dbt_build_args() -> list[str]:
    """``dbt build`` with the run's variables; the selection comes from the asset subset."""
    return ["build", "--vars", dbt_vars()]


def _stream(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    # dbt's profile reads the warehouse path from the environment of its subprocess.
    os.environ.update(dbt_env())
    invocation = dbt.cli(dbt_build_args(), context=context)
    yield from invocation.stream()


_project = dbt_project()


@dbt_assets(
    manifest=_project.manifest_path,
    project=_project,
    select=PRE_IDENTITY,
    name="dbt_identity_inputs",
    dagster_dbt_translator=CdpDbtTranslator(),
)
def dbt_identity_inputs(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    """Staged sources and the identity inputs, built by dbt before identity resolution."""
    yield from _stream(context, dbt)


@dbt_assets(
    manifest=_project.manifest_path,
    project=_project,
    exclude=f"{PRE_IDENTITY} {SEGMENT_MODELS}",
    name="dbt_profiles",
    dagster_dbt_translator=CdpDbtTranslator(),
)
def dbt_profiles(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    """Unified profiles, interactions, consent state and traits, built by dbt."""
    yield from _stream(context, dbt)


@dbt_assets(
    manifest=_project.manifest_path,
    project=_project,
    select=SEGMENT_MODELS,
    name="dbt_segments",
    dagster_dbt_translator=CdpDbtTranslator(),
)
def dbt_segments(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    """Rule-based, marketer and automatic segments and their membership history, by dbt."""
    yield from _stream(context, dbt)


def dbt_resource() -> DbtCliResource:
    """The dbt CLI, pointed at the project and at the warehouse of the settings."""
    return DbtCliResource(
        project_dir=_project,
        profiles_dir=str(_project.profiles_dir),
        dbt_executable=dbt_executable(),
    )


defs = dg.Definitions(
    assets=[dbt_identity_inputs, dbt_profiles, dbt_segments],
    resources={"dbt": dbt_resource()},
)

__all__ = ["defs", "dbt_env"]
