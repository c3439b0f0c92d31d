"""Which database Splink scores on: DuckDB (default) or Spark, from ``CDP_ENGINE``.

``CDP_ENGINE=duckdb`` (the default) keeps Splink on the in-process DuckDB connection the
identity step opens. ``CDP_ENGINE=spark`` scores on the active Spark session (or a local
one, ``spark.master`` from ``SPARK_MASTER``, default ``local[*]``) with Splink's
``SparkAPI``; the model, thresholds and the rest of the identity step stay the same, and
the pair count beside the scores still runs on the DuckDB connection. Spark needs the
optional ``spark`` extra (pyspark) and Java 17.
"""

import logging
import os
from typing import Any

import duckdb
import pyarrow as pa
from splink import DuckDBAPI
from splink.internals.database_api import DatabaseAPI

from cdp_pipeline.settings import get_settings

logger = logging.getLogger(__name__)

ENGINES = ("duckdb", "spark")


def splink_db_api(con: duckdb.DuckDBPyConnection) -> DatabaseAPI[Any]:
    """Splink's database API for the configured engine (``CDP_ENGINE``)."""
    engine = get_settings().engine
    if engine == "duckdb":
        return DuckDBAPI(con)
    if engine == "spark":
        return _spark_api()
    raise ValueError(f"CDP_ENGINE={engine!r} is not an engine; expected one of {ENGINES}")


def _spark_api() -> DatabaseAPI[Any]:
    # Imported here: pyspark is an optional extra, absent from the DuckDB deployments.
    from pyspark.sql import SparkSession
    from pyspark.sql.pandas.types import from_arrow_schema
    from splink import SparkAPI
    from splink.internals.spark.jar_location import similarity_jar_location
    from splink.internals.spark.spark_helpers.version import get_spark_major_version

    class ArrowSparkAPI(SparkAPI):
        """SparkAPI that also takes the Arrow tables the identity step registers.

        Spark 3's createDataFrame has no Arrow input, and through pandas it cannot type the
        list columns (``first_name_canon``): rows go in with the schema of the Arrow table.
        """

        def _table_registration(self, input: Any, table_name: str) -> None:
            if isinstance(input, pa.Table) and get_spark_major_version() == 3:
                schema = pa.schema([field.with_type(_plain(field.type)) for field in input.schema])
                input = self.spark.createDataFrame(
                    input.cast(schema).to_pylist(), schema=from_arrow_schema(schema)
                )
            super()._table_registration(input, table_name)

    spark = SparkSession.getActiveSession()
    if spark is None:
        # Splink's string similarity functions (Jaro-Winkler, ...) are Scala UDFs in a jar
        # shipped with splink; a new session must load it at start.
        spark = (
            SparkSession.builder.master(os.environ.get("SPARK_MASTER", "local[*]"))
            .appName("cdp-identity")
            .config("spark.jars", similarity_jar_location())
            .getOrCreate()
        )
        logger.info("Splink on a new Spark session (%s)", spark.sparkContext.master)
    return ArrowSparkAPI(spark_session=spark)


def _plain(kind: pa.DataType) -> pa.DataType:
    """Polars' large and view Arrow types as the plain ones Spark 3's converter knows."""
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pa.string()
    if pa.types.is_large_list(kind) or pa.types.is_list_view(kind) or pa.types.is_list(kind):
        return pa.list_(_plain(kind.value_type))
    return kind
