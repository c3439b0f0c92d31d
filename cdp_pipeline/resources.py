"""Resources shared by every concern: the warehouse and the landing folder."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from cdp_pipeline.settings import get_settings


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB lakehouse file. One process writes it at a time, so connections are short."""

    database: str = ""

    @property
    def path(self) -> Path:
        return Path(self.database) if self.database else get_settings().warehouse

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open a connection for the duration of one step and close it afterwards."""
        path = self.path
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(path), read_only=read_only)
        try:
            yield con
        finally:
            con.close()


class LandingResource(dg.ConfigurableResource):
    """The landing folder the source exports arrive in, one sub-folder per source."""

    directory: str = ""

    @property
    def path(self) -> Path:
        return Path(self.directory) if self.directory else get_settings().landing_dir
