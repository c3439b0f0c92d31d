"""The dbt project on Spark (dbt-spark, method session) builds the same marts as on DuckDB.

The night runs as usual on DuckDB: ingest, identity (Splink on DuckDB) and the ML assets.
The tables dbt reads from them (raw.*, identity.*, ml.*) are written to Parquet and
registered as Spark tables of the same names; then `dbt build` runs the unchanged project
with the `spark` target of dbt_project/profiles.yml on a local Spark session, and every
model (staging views, intermediate, marts and segment tables) is compared row for row with
the DuckDB night's.

Local Spark on this 2-core machine is slow (the JVM alone takes 10 s to over a minute under
load), so the test runs only when CDP_TEST_SPARK=1 and pyspark, dbt-spark and Java are
installed (`pip install 'cdp-pipeline[spark]'`).
"""

import os
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from cdp_pipeline.runner import run_nightly
from tests.conftest import NightlyWorkspace

pytestmark = [
    pytest.mark.spark,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("CDP_TEST_SPARK") != "1",
        reason="set CDP_TEST_SPARK=1 to run dbt on a local Spark session (slow)",
    ),
]

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"

# The schemas the dbt project reads as sources: written by ingest, identity and the ML assets.
SOURCE_SCHEMAS = ("raw", "identity", "ml")
# The schemas of the dbt models (views in staging, tables elsewhere): all are compared.
MODEL_SCHEMAS = ("staging", "intermediate", "marts", "segments")
# Floating-point results (scores, percent ranks) are compared to this many decimals: the two
# engines may sum in another order and differ in the last bits.
FLOAT_DECIMALS = 9


@dataclass(frozen=True)
class SparkBuild:
    """The DuckDB warehouse of the night and the Spark session that dbt built on."""

    warehouse: Path
    spark: Any  # pyspark.sql.SparkSession; pyspark is imported only when the test runs
    dbt_dir: Path
    vars_yaml: str


def export_sources(warehouse: Path, out_dir: Path) -> dict[str, Path]:
    """Write every base table of the source schemas to Parquet, one folder per table.

    JSON columns become text: Spark reads them as strings and parses them where the models
    ask (macro json_text). Returns `schema.table` -> folder.
    """
    folders: dict[str, Path] = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_schema in (select unnest(?::varchar[])) and table_type = 'BASE TABLE'"
            " order by table_schema, table_name",
            [list(SOURCE_SCHEMAS)],
        ).fetchall()
        for schema, table in tables:
            columns = con.execute(
                "select column_name, data_type from information_schema.columns"
                " where table_schema = ? and table_name = ? order by ordinal_position",
                [schema, table],
            ).fetchall()
            # Identifiers come from the catalog, not from input; they are quoted, not bound,
            # because DuckDB binds values only.
            select_list = ", ".join(
                f'cast("{name}" as varchar) as "{name}"' if data_type == "JSON" else f'"{name}"'
                for name, data_type in columns
            )
            folder = out_dir / schema / table
            folder.mkdir(parents=True)
            con.execute(
                f'copy (select {select_list} from "{schema}"."{table}")'
                f" to '{folder / 'part-0.parquet'}' (format parquet)"
            )
            folders[f"{schema}.{table}"] = folder
    return folders


def start_spark(tmp: Path) -> Any:
    """A local Spark session sized for this machine, with its warehouse folder in `tmp`.

    dbt-spark's session method takes the active session (getOrCreate), so the settings made
    here are the ones dbt runs with. The in-memory catalog keeps no Derby metastore around.
    """
    from pyspark.sql import SparkSession
    from splink.internals.spark.jar_location import similarity_jar_location

    return (
        SparkSession.builder.master("local[2]")
        .appName("cdp-spark-portability")
        # Splink's string similarity UDFs (the identity test scores on this session too).
        .config("spark.jars", similarity_jar_location())
        # Two cores: Spark's default of 200 shuffle partitions makes every join of these
        # few hundred rows schedule 200 tasks.
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.warehouse.dir", str(tmp / "spark-warehouse"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={tmp / 'derby'}")
        # Timestamps are UTC without a zone on DuckDB (docs/architecture.md); read Parquet
        # timestamps as Spark's TIMESTAMP in a UTC session so the values stay as they are.
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.inferTimestampNTZ.enabled", "false")
        .getOrCreate()
    )


def register_sources(spark: Any, folders: dict[str, Path]) -> None:
    """Make each Parquet folder a Spark table of the same schema and name."""
    for schema in sorted({name.split(".")[0] for name in folders}):
        spark.sql(f"create database if not exists {schema}")
    for name, folder in folders.items():
        spark.sql(f"create table {name} using parquet location '{folder}'")


def run_dbt(tmp: Path, vars_yaml: str, *args: str) -> Any:
    """dbt in this process on the spark target (dbt-spark's session method needs that)."""
    from dbt.cli.main import dbtRunner

    command = [
        *args,
        "--project-dir", str(DBT_PROJECT_DIR),
        "--profiles-dir", str(DBT_PROJECT_DIR),
        "--target", "spark",
        "--target-path", str(tmp / "target"),
        "--log-path", str(tmp / "logs"),
        "--vars", vars_yaml,
    ]  # fmt: skip
    return dbtRunner().invoke(command)


def _failures(result: Any) -> str:
    """The exception or the messages of the failed nodes of a dbt invocation."""
    if result.exception is not None:
        return str(result.exception)
    nodes = result.result.results if result.result is not None else []
    return "\n".join(
        f"{node.node.name}: {node.message}"
        for node in nodes
        if str(node.status) in ("error", "fail")
    )


def _normalise(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, FLOAT_DECIMALS)
    return value


def duckdb_rows(warehouse: Path, table: str) -> tuple[list[str], Counter]:
    """Column names and rows (as a multiset) of a DuckDB table."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        relation = con.table(table)
        rows = relation.fetchall()
        return relation.columns, Counter(tuple(map(_normalise, row)) for row in rows)


def spark_rows(spark: Any, table: str) -> tuple[list[str], Counter]:
    """Column names and rows of a Spark table, timestamps as UTC wall-clock values.

    PySpark turns TIMESTAMP into the Python process's local time; TIMESTAMP_NTZ is taken
    as is, so timestamps are cast to it in the UTC session first.
    """
    frame = spark.table(table)
    select_list = [
        f"cast(`{field.name}` as timestamp_ntz) as `{field.name}`"
        if field.dataType.typeName() == "timestamp"
        else f"`{field.name}`"
        for field in frame.schema.fields
    ]
    rows = frame.selectExpr(*select_list).collect()
    return frame.columns, Counter(tuple(map(_normalise, row)) for row in rows)


def _run_started_at(warehouse: Path) -> datetime:
    """The run timestamp the DuckDB night stamped on segment_members (one run: one value)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        stamps = con.execute("select distinct entered_at from marts.segment_members").fetchall()
    assert len(stamps) == 1, f"expected one run in marts.segment_members, found {stamps}"
    return stamps[0][0]


@pytest.fixture(scope="module")
def spark_build(
    nightly_workspace: NightlyWorkspace,
    dagster_instance: dg.DagsterInstance,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SparkBuild]:
    pytest.importorskip("pyspark")
    pytest.importorskip("dbt.adapters.spark")
    if shutil.which("java") is None and "JAVA_HOME" not in os.environ:
        pytest.skip("Spark needs Java (17)")

    outcome = run_nightly(instance=dagster_instance)
    assert outcome.success, "the DuckDB night failed"
    warehouse = nightly_workspace.warehouse

    tmp = tmp_path_factory.mktemp("spark")
    folders = export_sources(warehouse, tmp / "parquet")
    spark = start_spark(tmp)
    try:
        register_sources(spark, folders)
        # The same reference date (CDP_AS_OF_DATE of the workspace) and the same run
        # timestamp as the DuckDB night, so segment_members and its hashed ids match; parquet
        # stands in for Delta, whose jars come from Maven, which this machine cannot reach.
        stamp = _run_started_at(warehouse).strftime("%Y-%m-%d %H:%M:%S")
        vars_yaml = f"{{run_started_at: '{stamp}', spark_file_format: parquet}}"
        result = run_dbt(tmp, vars_yaml, "build")
        assert result.success, f"dbt build on Spark failed: {_failures(result)}"
        yield SparkBuild(warehouse=warehouse, spark=spark, dbt_dir=tmp, vars_yaml=vars_yaml)
    finally:
        spark.stop()


def _spark_models(spark: Any) -> list[str]:
    return sorted(
        f"{schema}.{table.name}"
        for schema in MODEL_SCHEMAS
        for table in spark.catalog.listTables(schema)
        if not table.isTemporary
    )


def _duckdb_models(warehouse: Path) -> list[str]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "select table_schema || '.' || table_name from information_schema.tables"
            " where table_schema in (select unnest(?::varchar[]))",
            [list(MODEL_SCHEMAS)],
        ).fetchall()
    return sorted(row[0] for row in rows)


def test_spark_builds_every_model_of_the_duckdb_night(spark_build: SparkBuild) -> None:
    models = _spark_models(spark_build.spark)
    assert {"marts.profiles", "marts.profile_records", "marts.segment_members"} <= set(models)
    assert models == _duckdb_models(spark_build.warehouse)


def _difference(build: SparkBuild, table: str) -> str | None:
    """How a table differs between the two engines, or None when it is identical."""
    duck_columns, duck = duckdb_rows(build.warehouse, table)
    spark_columns, spark = spark_rows(build.spark, table)
    if spark_columns != duck_columns:
        return f"columns {spark_columns} on Spark, {duck_columns} on DuckDB"
    if spark != duck:
        only_spark, only_duck = spark - duck, duck - spark
        return (
            f"{sum(only_spark.values())} rows only on Spark (e.g. {list(only_spark)[:2]}),"
            f" {sum(only_duck.values())} only on DuckDB (e.g. {list(only_duck)[:2]})"
        )
    return None


@pytest.mark.parametrize("table", ["marts.profile_records", "marts.segment_members"])
def test_published_tables_are_identical(spark_build: SparkBuild, table: str) -> None:
    assert spark_build.spark.table(table).count() > 0, f"{table} is empty: nothing compared"
    difference = _difference(spark_build, table)
    assert difference is None, f"{table}: {difference}"


def test_every_model_is_identical(spark_build: SparkBuild) -> None:
    differences = {
        table: _difference(spark_build, table) for table in _spark_models(spark_build.spark)
    }
    assert {table: text for table, text in differences.items() if text} == {}


def test_segment_members_refuses_to_merge_into_parquet(spark_build: SparkBuild) -> None:
    # A second night would have to close memberships: without Delta (or Iceberg, Hudi) it
    # stops before any SQL runs instead of appending the closed rows as duplicates.
    before = spark_rows(spark_build.spark, "marts.segment_members")
    result = run_dbt(
        spark_build.dbt_dir, spark_build.vars_yaml, "run", "--select", "segment_members"
    )
    assert not result.success
    nodes = result.result.results if result.result is not None else []
    messages = " ".join([str(result.exception)] + [str(node.message) for node in nodes])
    assert "spark_file_format" in messages and "'parquet'" in messages, messages
    assert spark_rows(spark_build.spark, "marts.segment_members") == before


def _unify(
    warehouse: Path, copy: Path, state_dir: Path, engine: str
) -> tuple[Any, set[frozenset[str]], Counter]:
    """Resolve the night's records again with Splink on ``engine``, on a copy of the warehouse.

    A fresh state folder per engine: the night's scored state would let an incremental run
    score no pair at all. Returns the stats and the profiles as sets of record ids.
    """
    from cdp_pipeline.identity.resolve import resolve

    shutil.copyfile(warehouse, copy)
    with pytest.MonkeyPatch.context() as patch, duckdb.connect(str(copy)) as con:
        patch.setenv("CDP_ENGINE", engine)
        stats = resolve(con, f"engine-{engine}", state_dir=state_dir)
        rows = con.execute("select profile_id, record_id from identity.record_profiles").fetchall()
        links = con.execute(
            "select record_id_l, record_id_r, round(match_probability, 9) from identity.links"
            " where link_type = 'splink'"
        ).fetchall()
    profiles: dict[str, set[str]] = {}
    for profile_id, record_id in rows:
        profiles.setdefault(profile_id, set()).add(record_id)
    return stats, {frozenset(members) for members in profiles.values()}, Counter(links)


# TODO(issue 8): splink 5.0.0's Spark dialect subclasses sqlglot's Spark generator, which
# sqlglot 30.30 (requirements.lock) ships compiled with mypyc: every Splink SQL on Spark
# fails with "TypeError: interpreted classes cannot inherit from compiled" (seen on pyspark
# 3.5.9). Strict: remove this mark when the pair of versions works (the test then passes).
@pytest.mark.xfail(
    raises=TypeError, strict=True, reason="splink 5.0 SparkAPI vs compiled sqlglot 30.30"
)
def test_splink_on_spark_unifies_the_sample_like_duckdb(
    spark_build: SparkBuild, tmp_path: Path
) -> None:
    duck_stats, duck_profiles, duck_links = _unify(
        spark_build.warehouse, tmp_path / "duck.duckdb", tmp_path / "duck-state", "duckdb"
    )
    spark_stats, spark_profiles, spark_links = _unify(
        spark_build.warehouse, tmp_path / "spark.duckdb", tmp_path / "spark-state", "spark"
    )
    assert spark_stats.pairs_scored > 0 and spark_stats.pairs_scored == duck_stats.pairs_scored
    assert sum(duck_links.values()) > 0, "no Splink link on DuckDB: nothing compared"
    assert spark_links == duck_links
    assert len(duck_profiles) < duck_stats.records, "no record was unified: nothing compared"
    assert spark_profiles == duck_profiles
