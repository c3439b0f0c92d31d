"""Dagster assets of the ingest stage: one asset per configured source, key raw/<source>.

Each asset loads the landed files of its source into the raw table of its kind
and ships two checks in the same result: every file reconciles (ERROR) and the
share of quarantined rows stays below a threshold (WARN).
"""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from cdp_pipeline.ingest.config import SourceConfig, load_sources_config, sources_by_kind
from cdp_pipeline.ingest.loader import SourceResult, ingest_source
from cdp_pipeline.resources import LandingResource, WarehouseResource

__all__ = [
    "QUARANTINE_RATE_THRESHOLD",
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
        warehouse: WarehouseResource,
        landing: LandingResource,
    ) -> dg.MaterializeResult:
        landing_dir = Path(landing.path)
        loaded_at = datetime.now(UTC)
        with warehouse.connect() as con:
            result = ingest_source(con, source, landing_dir, context.log, loaded_at)
            problems = _reconcile(con, source, result)
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
        )
        return dg.MaterializeResult(
            metadata={
                "files_seen": dg.MetadataValue.int(len(result.files)),
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
                    else "no files landed"
                ),
                "dagster/row_count": dg.MetadataValue.int(row_count),
            },
            check_results=checks,
        )

    return _ingest


def build_ingest_assets(sources: list[SourceConfig] | None = None) -> list[dg.AssetsDefinition]:
    """One ingest asset per configured source (default: the packaged sources.yml)."""
    return [_build_asset(s) for s in (sources if sources is not None else load_sources_config())]


def build_ingest_defs(sources_path: str | Path | None = None) -> dg.Definitions:
    """The ingest assets of a sources file; resources are bound by the root definitions."""
    return dg.Definitions(assets=build_ingest_assets(load_sources_config(sources_path)))


defs = build_ingest_defs()
