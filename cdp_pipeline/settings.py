"""Where the platform reads and writes, from the environment (see shared contract).

Settings are read when asked for, never at import time, so tests can point the
platform at a temporary folder with ``monkeypatch.setenv`` and no reloads.
"""

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
CONFIG_DIR = PROJECT_ROOT / "cdp_pipeline" / "config"


@dataclass(frozen=True)
class Settings:
    """The published settings of the platform, resolved to absolute paths."""

    landing_dir: Path
    warehouse: Path
    dagster_home: Path
    engine: str
    as_of_date: date

    @property
    def data_dir(self) -> Path:
        """Folder beside the warehouse that holds state, exports and snapshots."""
        return self.warehouse.parent.parent

    @property
    def state_dir(self) -> Path:
        """Decisions and sync state that must survive a rebuild of the warehouse."""
        return self.data_dir / "state"

    @property
    def exports_dir(self) -> Path:
        """Where the file destinations drop their audiences."""
        return self.data_dir / "exports"


def _path(name: str, default: str) -> Path:
    value = os.environ.get(name) or default
    path = Path(value)
    return path if path.is_absolute() else (PROJECT_ROOT / path).resolve()


def get_settings() -> Settings:
    """Read the settings from the environment, with the contract's defaults."""
    return Settings(
        landing_dir=_path("CDP_LANDING_DIR", "data/landing"),
        warehouse=_path("CDP_WAREHOUSE", "data/warehouse/cdp.duckdb"),
        dagster_home=_path("DAGSTER_HOME", "data/dagster_home"),
        engine=os.environ.get("CDP_ENGINE", "duckdb"),
        as_of_date=_as_of_date(os.environ.get("CDP_AS_OF_DATE")),
    )


def _as_of_date(value: str | None) -> date:
    """The day segments and time windows are evaluated on: today unless pinned."""
    if not value:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise ValueError(f"CDP_AS_OF_DATE={value!r} is not a date; expected YYYY-MM-DD") from error
