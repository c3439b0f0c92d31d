"""Shared fixtures: a generated delivery and one nightly run of it, in temporary folders."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

SAMPLE_PEOPLE = 400
SAMPLE_SEED = 11
SAMPLE_AS_OF = "2025-12-01"


@dataclass(frozen=True)
class NightlyWorkspace:
    """Folders of one isolated platform: landing, warehouse, Dagster home."""

    root: Path
    landing: Path
    warehouse: Path
    dagster_home: Path


def platform_env(root: Path) -> dict[str, str]:
    """The settings of a platform that lives entirely below ``root``."""
    return {
        "CDP_LANDING_DIR": str(root / "landing"),
        "CDP_WAREHOUSE": str(root / "warehouse" / "cdp.duckdb"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "CDP_AS_OF_DATE": SAMPLE_AS_OF,
    }


@pytest.fixture(scope="module")
def nightly_workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NightlyWorkspace]:
    """A generated delivery in a fresh workspace, with the settings pointing at it."""
    from cdp_pipeline.sample_data import generate

    root = tmp_path_factory.mktemp("platform")
    env = platform_env(root)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        generate(Path(env["CDP_LANDING_DIR"]), people=SAMPLE_PEOPLE, seed=SAMPLE_SEED)
        yield NightlyWorkspace(
            root=root,
            landing=Path(env["CDP_LANDING_DIR"]),
            warehouse=Path(env["CDP_WAREHOUSE"]),
            dagster_home=Path(env["DAGSTER_HOME"]),
        )


@pytest.fixture(scope="module")
def dagster_instance(nightly_workspace: NightlyWorkspace) -> Iterator[dg.DagsterInstance]:
    """A persistent Dagster instance in the workspace (sensors need one)."""
    nightly_workspace.dagster_home.mkdir(parents=True, exist_ok=True)
    with dg.instance_for_test(temp_dir=str(nightly_workspace.dagster_home)) as instance:
        yield instance
