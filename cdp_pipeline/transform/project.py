"""The dbt project and its manifest, prepared once and only when the models changed."""

import os
import subprocess
import sys
from functools import cache
from pathlib import Path

from dagster_dbt import DbtProject
from filelock import FileLock

from cdp_pipeline.segments.compiler import compile_segments
from cdp_pipeline.settings import DBT_PROJECT_DIR, get_settings

# Files whose change makes the parsed manifest stale.
_MANIFEST_INPUTS = ("models", "macros", "tests", "dbt_project.yml", "profiles.yml")


def dbt_env() -> dict[str, str]:
    """Environment for dbt: the profile reads the warehouse path from CDP_WAREHOUSE."""
    settings = get_settings()
    return {"CDP_WAREHOUSE": str(settings.warehouse), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}


def dbt_executable() -> str:
    """The dbt of this interpreter's environment, whether or not the venv is on PATH."""
    executable = Path(sys.executable).parent / "dbt"
    return str(executable) if executable.exists() else "dbt"


def _newest_input_mtime(project_dir: Path) -> float:
    newest = 0.0
    for name in _MANIFEST_INPUTS:
        path = project_dir / name
        paths = path.rglob("*") if path.is_dir() else [path]
        for item in paths:
            if item.is_file():
                newest = max(newest, item.stat().st_mtime)
    return newest


def _parse(target_path: Path) -> None:
    # dbt parse resolves the profile, which reads CDP_WAREHOUSE from the environment.
    subprocess.run(
        [dbt_executable(), "parse", "--quiet", "--target-path", str(target_path)],
        cwd=DBT_PROJECT_DIR,
        env={**os.environ, **dbt_env(), "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR)},
        check=True,
    )


@cache
def dbt_project() -> DbtProject:
    """The dbt project, with a manifest that is parsed again only when a model changed.

    Parsing takes about 4 s here, so a code reload with unchanged models reuses the
    manifest instead of paying for it on every import.
    """
    project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
    manifest = project.manifest_path
    manifest.parent.mkdir(parents=True, exist_ok=True)
    # Several processes import the definitions at once (test workers, the webserver and the
    # daemon): one compiles and parses while the others wait, so nobody reads a half-written
    # model or manifest.
    with FileLock(str(manifest.parent / ".parse.lock")):
        # Marketer segments (YAML) become dbt models first; only changed files are
        # rewritten, so an unchanged definition leaves the manifest fresh.
        compile_segments()
        if not manifest.exists() or manifest.stat().st_mtime < _newest_input_mtime(DBT_PROJECT_DIR):
            _parse(project.target_path)
    return project
