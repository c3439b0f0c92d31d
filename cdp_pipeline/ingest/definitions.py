"""Dagster assets of the ingest stage: one asset per configured source, key raw/<source>.

Each asset loads the landed files of its source into the raw table of its kind
and ships its checks in the same result: every file reconciles (ERROR, blocking), the
source's Great Expectations suite passes its error rules (ERROR, blocking) and its
warning rules (WARN), the share of quarantined rows stays below a threshold (WARN), no
file was rejected (WARN) and the delivered columns match the mapping (WARN).

Blocking: Dagster 1.13 fails the asset's step after it has yielded a failed ERROR check
with ``blocking=True`` (execute_step.py raises DagsterAssetCheckFailedError once the
step's events are out), so the materialization and all check results are recorded and
every asset downstream of that source in the same run is skipped, the dbt steps and
through them the exports included. Other sources' steps still run.

Web events are also partitioned by Brussels day, as a job rather than an asset: an asset
job takes one partitions definition, and with raw/web_events partitioned the unpartitioned
nightly job would become a partitioned job whose scheduled runs carry no partition
(checked on 1.13.27: it resolves to the daily definition and runs web_events with no
partition key). So raw/web_events stays unpartitioned in the nightly graph, and the job
``web_events_days`` (``DailyPartitionsDefinition``, Europe/Brussels) rewrites one day's
rows per partition; a range of days is a backfill from the job's Partitions tab in the
UI ("Launch backfill"), each day's run reporting a materialization of raw/web_events.
The run config ``reprocess_from_day`` / ``reprocess_to_day`` of the asset still reloads
whole daily files.
"""

import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from cdp_pipeline.ingest.config import SourceConfig, load_sources_config, sources_by_kind
from cdp_pipeline.ingest.loader import (
    DAY_FIELDS,
    FileResult,
    SourceResult,
    files_with_quarantine,
    ingest_source,
    reload_day,
)
from cdp_pipeline.ingest.quality import load_suite, outcomes_markdown, run_quality
from cdp_pipeline.resources import LandingResource, WarehouseResource

__all__ = [
    "DAYS_PARTITIONS",
    "QUARANTINE_RATE_THRESHOLD",
    "build_day_jobs",
    "build_ingest_assets",
    "build_ingest_defs",
    "defs",
    "load_sources_config",
    "sources_by_kind",
]

# Above 1% of rows quarantined a delivery is more likely a changed export than
# a few typos; the check warns so someone looks before the numbers drift.
QUARANTINE_RATE_THRESHOLD = 0.01

CHECK_RECONCILES = "files_reconcile"
CHECK_QUARANTINE_RATE = "quarantine_rate_below_threshold"
CHECK_NO_REJECTED = "no_rejected_files"
CHECK_QUALITY_ERRORS = "quality_errors"
CHECK_QUALITY_WARNINGS = "quality_warnings"
CHECK_SCHEMA_DRIFT = "schema_drift"

_DAY_RE = re.compile(r"(\d{4}-\d{2}-\d{2})")

# Brussels days, the partitions of the day-partitioned sources (web events). The first
# day is the start of the website's Segment tracking export; the last partition is
# yesterday, the last day whose file (and late events) has been delivered.
DAYS_PARTITIONS = dg.DailyPartitionsDefinition(start_date="2024-01-01", timezone="Europe/Brussels")

# Run tag of every run that writes the warehouse from a day job; limit it to 1 in the
# instance's tag_concurrency_limits so backfill runs queue instead of meeting DuckDB's lock.
WAREHOUSE_WRITER_TAG = "cdp/warehouse_writer"

# DuckDB lets one process write the file: a day's run started while another run writes
# waits for the lock rather than failing. The demo's whole nightly job takes about 2 min
# on this machine (README); 30 min covers a night on a city-sized delivery.
LOCK_WAIT_SECONDS = 30 * 60
LOCK_POLL_SECONDS = 5.0


class IngestConfig(dg.Config):
    """Optional re-processing of files that are already loaded (defaults: nightly run)."""

    reprocess_quarantine: bool = Field(
        default=False,
        description="Reload the files that have rows in raw._quarantine, with the current "
        "config; rows that now convert leave the quarantine.",
    )
    reprocess_from_day: str = Field(
        default="",
        description="First day (yyyy-mm-dd) of a range of daily files to reload, e.g. "
        "web_events/2025-11-29.jsonl; the day is taken from the file name.",
    )
    reprocess_to_day: str = Field(default="", description="Last day (inclusive) of the range.")


def _force_predicate(config: IngestConfig, quarantined: set[str]) -> Callable[[str], bool] | None:
    """file -> reload it although unchanged; None when nothing is to be re-processed."""
    start = date.fromisoformat(config.reprocess_from_day) if config.reprocess_from_day else None
    end = date.fromisoformat(config.reprocess_to_day) if config.reprocess_to_day else start
    if start and end and end < start:
        raise dg.Failure(f"reprocess_to_day {end} is before reprocess_from_day {start}")
    if not start and not config.reprocess_quarantine:
        return None

    def force(rel: str) -> bool:
        if config.reprocess_quarantine and rel in quarantined:
            return True
        m = _DAY_RE.search(Path(rel).name)
        return bool(start and end and m and start <= date.fromisoformat(m.group(1)) <= end)

    return force


def _reconcile(con, source: SourceConfig, result: SourceResult) -> list[str]:
    """Files of this run whose counts disagree with the tables; empty when all reconcile."""
    problems: list[str] = []
    table = source.kind_def.qualified_table
    for f in result.files:
        if f.rows_read != f.rows_loaded + f.rows_quarantined:
            problems.append(f"{f.file}: rows_read != rows_loaded + rows_quarantined")
        if f.status not in ("loaded", "replaced"):
            continue
        in_raw = con.execute(
            f"select count(*) from {table} where _source = ? and _file = ? and _file_hash = ?",
            [source.name, f.file, f.file_hash],
        ).fetchall()[0][0]
        in_quarantine = con.execute(
            "select count(*) from raw._quarantine where source = ? and file = ? and file_hash = ?",
            [source.name, f.file, f.file_hash],
        ).fetchall()[0][0]
        if in_raw != f.rows_loaded or in_quarantine != f.rows_quarantined:
            problems.append(
                f"{f.file}: {in_raw} rows in {table} (expected {f.rows_loaded}), "
                f"{in_quarantine} in raw._quarantine (expected {f.rows_quarantined})"
            )
    return problems


def _drift_line(f: FileResult) -> str:
    """One markdown bullet naming a file's missing and unknown columns."""
    parts = []
    if f.missing_columns:
        parts.append(f"missing (loaded as null): {', '.join(f.missing_columns)}")
    if f.extra_columns:
        parts.append(f"new (kept in _extra): {', '.join(f.extra_columns)}")
    return f"- {f.file}: {'; '.join(parts)}"


def _build_asset(source: SourceConfig) -> dg.AssetsDefinition:
    key = dg.AssetKey(["raw", source.name])
    kind = source.kind_def
    description = source.description or f"Raw {kind.name} records delivered by {source.name}."

    @dg.asset(
        key=key,
        group_name="ingest",
        description=description,
        kinds={"duckdb", "python"},
        tags={"kind_of_record": kind.name},
        metadata={
            "source_folder": source.folder_name,
            "file_glob": source.file_glob,
            "raw_table": f"raw.{kind.table}",
            "format": source.format,
            "encoding": source.encoding,
        },
        check_specs=[
            dg.AssetCheckSpec(
                CHECK_RECONCILES,
                asset=key,
                description="Every file: rows_read = rows_loaded + rows_quarantined, and the "
                "raw and quarantine tables hold exactly those rows.",
                blocking=True,
            ),
            dg.AssetCheckSpec(
                CHECK_QUALITY_ERRORS,
                asset=key,
                description="The error rules of the source's Great Expectations suite "
                f"(config/expectations/{source.name}.yml) hold on the rows loaded this run; "
                "a failure blocks everything downstream.",
                blocking=True,
            ),
            dg.AssetCheckSpec(
                CHECK_QUALITY_WARNINGS,
                asset=key,
                description="The warning rules of the source's suite (formats, accepted "
                "values, volume against the previous delivery) hold on this run's rows.",
            ),
            dg.AssetCheckSpec(
                CHECK_SCHEMA_DRIFT,
                asset=key,
                description="Every file loaded this run has exactly the mapped columns: "
                "missing ones load as null, unknown ones are kept in _extra.",
            ),
            dg.AssetCheckSpec(
                CHECK_QUARANTINE_RATE,
                asset=key,
                description=f"Less than {QUARANTINE_RATE_THRESHOLD:.0%} of the rows read this "
                "run went to quarantine.",
            ),
            dg.AssetCheckSpec(
                CHECK_NO_REJECTED,
                asset=key,
                description="No file was rejected as a whole (encoding, missing required column).",
            ),
        ],
    )
    def _ingest(
        context: dg.AssetExecutionContext,
        config: IngestConfig,
        warehouse: WarehouseResource,
        landing: LandingResource,
    ) -> dg.MaterializeResult:
        landing_dir = Path(landing.path)
        # Naive UTC: the value the loader writes to _loaded_at, which selects this run's rows.
        loaded_at = datetime.now(UTC).replace(tzinfo=None)
        suite = load_suite(source)
        with warehouse.connect() as con:
            quarantined = (
                files_with_quarantine(con, source.name) if config.reprocess_quarantine else set()
            )
            force = _force_predicate(config, quarantined)
            result = ingest_source(con, source, landing_dir, context.log, loaded_at, force)
            problems = _reconcile(con, source, result)
            quality = run_quality(con, source, loaded_at, suite)
            row_count = con.execute(
                f"select count(*) from {kind.qualified_table} where _source = ?", [source.name]
            ).fetchall()[0][0]
        context.log.info(
            f"{source.name}: raw.{kind.table} holds {row_count} rows of this source; "
            f"{result.total('rows_loaded')} loaded and {result.total('rows_quarantined')} "
            "quarantined this run"
        )
        rows_read = result.total("rows_read")
        quarantined = result.total("rows_quarantined")
        rate = quarantined / rows_read if rows_read else 0.0
        rejected = [f for f in result.files if f.status == "rejected"]
        if quality.seconds:
            context.log.info(
                f"{source.name}: quality rules on {quality.rows_validated} of "
                f"{quality.rows_in_run} rows in {quality.seconds:.2f}s"
            )
        quality_meta = {
            "rows_in_run": dg.MetadataValue.int(quality.rows_in_run),
            "rows_validated": dg.MetadataValue.int(quality.rows_validated),
            "sampled": dg.MetadataValue.bool(quality.sampled),
            "seconds": dg.MetadataValue.float(round(quality.seconds, 3)),
            "note": dg.MetadataValue.text(
                quality.note
                or (
                    f"row rules on a repeatable reservoir sample of {quality.rows_validated} "
                    f"of {quality.rows_in_run} rows; uniqueness and volume on all rows"
                    if quality.sampled
                    else "all rows of this run validated"
                )
            ),
        }
        drift = [_drift_line(f) for f in result.files if f.missing_columns or f.extra_columns]
        checks = [
            dg.AssetCheckResult(
                check_name=CHECK_RECONCILES,
                passed=not problems,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"problems": dg.MetadataValue.md("\n".join(problems) or "none")},
            ),
            dg.AssetCheckResult(
                check_name=CHECK_QUARANTINE_RATE,
                passed=rate < QUARANTINE_RATE_THRESHOLD,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "quarantine_rate": dg.MetadataValue.float(rate),
                    "threshold": dg.MetadataValue.float(QUARANTINE_RATE_THRESHOLD),
                },
            ),
            dg.AssetCheckResult(
                check_name=CHECK_QUALITY_ERRORS,
                passed=not quality.failed("error"),
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    **quality_meta,
                    "failed": dg.MetadataValue.int(len(quality.failed("error"))),
                    "rules": dg.MetadataValue.md(outcomes_markdown(quality.of("error"))),
                },
            ),
            dg.AssetCheckResult(
                check_name=CHECK_QUALITY_WARNINGS,
                passed=not quality.failed("warning"),
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    **quality_meta,
                    "failed": dg.MetadataValue.int(len(quality.failed("warning"))),
                    "rules": dg.MetadataValue.md(outcomes_markdown(quality.of("warning"))),
                },
            ),
            dg.AssetCheckResult(
                check_name=CHECK_SCHEMA_DRIFT,
                passed=not drift,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"drift": dg.MetadataValue.md("\n".join(drift) or "none")},
            ),
            dg.AssetCheckResult(
                check_name=CHECK_NO_REJECTED,
                passed=not rejected,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "rejected": dg.MetadataValue.md(
                        "\n".join(f"- {f.message}" for f in rejected) or "none"
                    )
                },
            ),
        ]
        files_table = "\n".join(
            f"| {f.file} | {f.status} | {f.rows_read} | {f.rows_loaded} | "
            f"{f.rows_quarantined} | {f.duplicates} |"
            for f in result.files
            if f.status != "unchanged"
        )
        return dg.MaterializeResult(
            metadata={
                "files_seen": dg.MetadataValue.int(len(result.files)),
                "files_unchanged": dg.MetadataValue.int(result.count("unchanged")),
                "files_loaded": dg.MetadataValue.int(result.count("loaded")),
                "files_skipped": dg.MetadataValue.int(result.count("skipped_duplicate")),
                "files_replaced": dg.MetadataValue.int(result.count("replaced")),
                "files_rejected": dg.MetadataValue.int(len(rejected)),
                "rows_read": dg.MetadataValue.int(rows_read),
                "rows_loaded": dg.MetadataValue.int(result.total("rows_loaded")),
                "rows_quarantined": dg.MetadataValue.int(quarantined),
                "duplicate_message_ids": dg.MetadataValue.int(result.total("duplicates")),
                "raw_table": dg.MetadataValue.text(f"raw.{kind.table}"),
                "files": dg.MetadataValue.md(
                    "| file | status | read | loaded | quarantined | duplicates |\n"
                    "| --- | --- | --- | --- | --- | --- |\n" + files_table
                    if files_table
                    else "no new or changed files"
                ),
                "dagster/row_count": dg.MetadataValue.int(row_count),
            },
            check_results=checks,
        )

    return _ingest


@contextmanager
def _connect_when_free(
    warehouse: WarehouseResource, log: dg.DagsterLogManager
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A write connection, waiting while another process holds DuckDB's file lock."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    with ExitStack() as stack:
        while True:
            try:
                con = stack.enter_context(warehouse.connect())
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                log.info(f"warehouse written by another run; retrying in {LOCK_POLL_SECONDS}s")
                time.sleep(LOCK_POLL_SECONDS)
                continue
            break
        yield con


def _build_day_job(source: SourceConfig) -> dg.JobDefinition:
    """The partitioned job rewriting one Brussels day of ``source`` per partition."""
    key = dg.AssetKey(["raw", source.name])
    day_field = DAY_FIELDS[source.kind_def.name]

    @dg.op(
        name=f"reload_{source.name}_day",
        description=f"Rewrite the rows of raw.{source.kind_def.table} of this source whose "
        f"{day_field} is the partition's Brussels day, from the files that hold them.",
    )
    def reload(
        context: dg.OpExecutionContext, warehouse: WarehouseResource, landing: LandingResource
    ) -> None:
        day = date.fromisoformat(context.partition_key)
        loaded_at = datetime.now(UTC).replace(tzinfo=None)
        with _connect_when_free(warehouse, context.log) as con:
            out = reload_day(con, source, Path(landing.path), day, context.log, loaded_at)
            problems = _reconcile(con, source, SourceResult(source.name, out.files))
        if problems:
            raise dg.Failure(
                f"{source.name} {day}: files do not reconcile after the reload",
                metadata={"problems": dg.MetadataValue.md("\n".join(problems))},
            )
        context.log.info(
            f"{source.name} {day}: {out.rows} row(s) of the day in "
            f"raw.{source.kind_def.table} from {len(out.files)} file(s)"
        )
        context.log_event(
            dg.AssetMaterialization(
                asset_key=key,
                description=f"rows of {day} rewritten",
                metadata={
                    "brussels_day": dg.MetadataValue.text(day.isoformat()),
                    "day_rows": dg.MetadataValue.int(out.rows),
                    "files": dg.MetadataValue.md(
                        "\n".join(
                            f"- {f.file}: {f.status}, {out.day_rows[f.file]} row(s) of the day"
                            for f in out.files
                        )
                        or "no file holds rows of this day"
                    ),
                },
            )
        )

    @dg.job(
        name=f"{source.name}_days",
        partitions_def=DAYS_PARTITIONS,
        tags={WAREHOUSE_WRITER_TAG: "true"},
        description=f"Re-process {source.name} by Brussels day: one partition rewrites that "
        "day's rows (late events in the next day's file included); select a range of days "
        "under Partitions and launch a backfill.",
    )
    def day_job() -> None:
        reload()

    return day_job


def build_day_jobs(sources: list[SourceConfig] | None = None) -> list[dg.JobDefinition]:
    """One day-partitioned re-processing job per source of a day-partitioned kind."""
    configs = sources if sources is not None else load_sources_config()
    return [_build_day_job(s) for s in configs if s.kind_def.name in DAY_FIELDS]


def build_ingest_assets(sources: list[SourceConfig] | None = None) -> list[dg.AssetsDefinition]:
    """One ingest asset per configured source (default: the packaged sources.yml)."""
    return [_build_asset(s) for s in (sources if sources is not None else load_sources_config())]


def build_ingest_defs(sources_path: str | Path | None = None) -> dg.Definitions:
    """The ingest assets of a sources file; resources are bound by the root definitions."""
    sources = load_sources_config(sources_path)
    return dg.Definitions(assets=build_ingest_assets(sources), jobs=build_day_jobs(sources))


defs = build_ingest_defs()
