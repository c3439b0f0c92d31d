"""The parsed dbt project is reused by the night's dbt steps, not parsed again."""

import os
import shutil
import subprocess
from pathlib import Path

from cdp_pipeline.settings import DBT_PROJECT_DIR
from cdp_pipeline.transform.definitions import dbt_build_args
from cdp_pipeline.transform.project import dbt_env, dbt_executable, dbt_project


def test_a_dbt_step_reuses_the_parse_of_the_definitions(tmp_path: Path) -> None:
    project = dbt_project()
    target = DBT_PROJECT_DIR / project.target_path
    # As dagster-dbt starts a step: the partial-parse file copied into a fresh target.
    step_target = tmp_path / "step"
    step_target.mkdir()
    shutil.copy(target / "partial_parse.msgpack", step_target / "partial_parse.msgpack")
    build_vars = dbt_build_args()[dbt_build_args().index("--vars") + 1]
    done = subprocess.run(
        [dbt_executable(), "--log-level", "debug", "parse", "--target-path", str(step_target)]
        + ["--vars", build_vars],
        cwd=DBT_PROJECT_DIR,
        env={**os.environ, **dbt_env(), "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR)},
        capture_output=True,
        text=True,
        check=True,
    )
    # dbt drops its partial-parse state when the vars differ from those it was made with.
    assert "Unable to do partial parsing" not in done.stdout, done.stdout[-2000:]
    assert "Nothing changed, skipping partial parsing" in done.stdout, done.stdout[-2000:]
