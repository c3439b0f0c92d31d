"""Data quality of each delivery: Great Expectations suites declared per source in config.

A suite lives in ``cdp_pipeline/config/expectations/<source>.yml``. Every expectation has
a severity: ``error`` failures fail the blocking ``quality_errors`` asset check (downstream
of the source does not run), ``warning`` failures fail ``quality_warnings`` (shown in the
UI, nothing blocked).

What runs where, and why:

- Row expectations (not null, regex formats, ranges, accepted values, date windows) run in
  an ephemeral GX context on a pandas frame of the rows loaded *in this run*. GX costs
  about 16 s per million rows for five expectations on the shared two cores (1 M ticket
  rows measured), so deliveries above ``sample_rows`` are validated on a repeatable
  reservoir sample; the check metadata says so and gives the sample size.
- Uniqueness of natural keys within a delivery (per file) runs as one DuckDB aggregate on
  *all* rows: a sample would miss most duplicates, and the aggregate costs well under a
  second per million rows.
- Volume against the previous delivery compares ``rows_read`` in ``raw._files``.
"""

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal

import duckdb
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cdp_pipeline.ingest.config import ConfigError, SourceConfig
from cdp_pipeline.ingest.kinds import FieldType
from cdp_pipeline.settings import CONFIG_DIR, get_settings

logger = logging.getLogger(__name__)

EXPECTATIONS_DIR = CONFIG_DIR / "expectations"

Severity = Literal["error", "warning"]

# Unexpected values quoted per failing expectation in the check metadata.
SAMPLE_VALUES = 5


class Expectation(BaseModel):
    """One row-level expectation on one raw column."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["not_null", "regex", "between", "in_set", "date_window"]
    column: str
    severity: Severity = "error"
    mostly: float = Field(default=1.0, ge=0.0, le=1.0, description="Share of rows that must pass.")
    pattern: str | None = None
    min: float | None = None
    max: float | None = None
    values: list[str] | None = None
    past_days: int | None = Field(default=None, ge=0)
    future_days: int | None = Field(default=None, ge=0)
    description: str = ""

    @model_validator(mode="after")
    def _arguments(self) -> "Expectation":
        needed = {
            "regex": ["pattern"],
            "between": [],
            "in_set": ["values"],
            "date_window": ["past_days", "future_days"],
            "not_null": [],
        }[self.type]
        missing = [k for k in needed if getattr(self, k) is None]
        if missing:
            raise ValueError(f"{self.type} on {self.column!r} needs {', '.join(missing)}")
        if self.type == "between" and self.min is None and self.max is None:
            raise ValueError(f"between on {self.column!r} needs min or max")
        return self

    @property
    def name(self) -> str:
        detail = {
            "not_null": "",
            "regex": f" ~ {self.pattern}",
            "between": f" in [{self.min}, {self.max}]",
            "in_set": f" in {self.values}",
            "date_window": f" within -{self.past_days}d..+{self.future_days}d",
        }[self.type]
        return f"{self.column} {self.type}{detail}"


class UniqueKey(BaseModel):
    """A natural key that must not repeat within one delivered file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: list[str] = Field(min_length=1)
    severity: Severity = "error"


class Volume(BaseModel):
    """Rows of a delivery against the previous delivery of the same source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_ratio: float = Field(default=0.5, gt=0)
    max_ratio: float = Field(default=1.5, gt=0)
    # Below this many rows in both deliveries the ratio says nothing (2 vs 4 rows is 50%).
    min_rows: int = Field(default=100, ge=0)
    severity: Severity = "warning"


class Suite(BaseModel):
    """The expectations of one source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # 20k rows: GX took 8.7 s on a 100k sample of 1M tickets (12 rules), 70% of the load
    # itself; a uniform 20k sample still sees a problem that affects 0.02% of rows with
    # probability 1 - (1 - 0.0002)^20000 = 98%.
    sample_rows: int = Field(default=20_000, gt=0)
    expectations: list[Expectation] = Field(default_factory=list)
    unique: list[UniqueKey] = Field(default_factory=list)
    volume: Volume | None = None


def load_suite(source: SourceConfig, directory: Path | None = None) -> Suite | None:
    """The suite of ``source`` (None when it has none); columns are checked against its kind."""
    path = (directory or EXPECTATIONS_DIR) / f"{source.name}.yml"
    if not path.is_file():
        return None
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigError(f"{path}: {detail}") from None
    fields = set(source.kind_def.field_names)
    used = [e.column for e in suite.expectations] + [c for u in suite.unique for c in u.columns]
    unknown = sorted({c for c in used if c not in fields})
    if unknown:
        raise ConfigError(
            f"{path}: column(s) {', '.join(unknown)} are not fields of kind "
            f"{source.kind!r}; allowed: {', '.join(source.kind_def.field_names)}"
        )
    return suite


@dataclass
class Outcome:
    """The result of one expectation, uniqueness or volume rule."""

    rule: str
    severity: Severity
    passed: bool
    observed: str
    unexpected: list[str] = field(default_factory=list)


@dataclass
class QualityReport:
    """Everything the quality checks of one source found in one run."""

    outcomes: list[Outcome] = field(default_factory=list)
    rows_in_run: int = 0
    rows_validated: int = 0
    seconds: float = 0.0
    note: str = ""

    @property
    def sampled(self) -> bool:
        return self.rows_validated < self.rows_in_run

    def failed(self, severity: Severity) -> list[Outcome]:
        return [o for o in self.outcomes if o.severity == severity and not o.passed]

    def of(self, severity: Severity) -> list[Outcome]:
        return [o for o in self.outcomes if o.severity == severity]


@cache
def _gx_context() -> tuple[Any, Any]:
    """GX module and one ephemeral context per process (import alone takes seconds)."""
    # No telemetry leaves the machine; GX reads this before it is imported.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # tqdm bars would fill the Dagster logs with one line per metric.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return gx, context


def _gx_expectation(e: Expectation, now: datetime) -> Any:
    import great_expectations.expectations as gxe

    common: dict[str, Any] = {"column": e.column, "meta": {"rule": e.name}}
    if e.mostly < 1.0:
        common["mostly"] = e.mostly
    if e.type == "not_null":
        return gxe.ExpectColumnValuesToNotBeNull(**common)
    if e.type == "regex":
        return gxe.ExpectColumnValuesToMatchRegex(regex=e.pattern, **common)
    if e.type == "in_set":
        return gxe.ExpectColumnValuesToBeInSet(value_set=e.values, **common)
    if e.type == "between":
        return gxe.ExpectColumnValuesToBeBetween(min_value=e.min, max_value=e.max, **common)
    assert e.past_days is not None and e.future_days is not None
    return gxe.ExpectColumnValuesToBeBetween(
        min_value=now - timedelta(days=e.past_days),
        max_value=now + timedelta(days=e.future_days),
        **common,
    )


def reference_time() -> datetime:
    """'Now' of the date windows: the end of the platform's as-of day (CDP_AS_OF_DATE).

    A replayed or test delivery is judged against the day it represents, not the clock.
    """
    as_of = get_settings().as_of_date
    return datetime.combine(as_of, datetime.max.time())


def _frame_sql(source: SourceConfig, columns: list[str], sample: int | None) -> str:
    """Rows of this run's files; dates as timestamps and decimals as doubles for pandas."""
    kind = source.kind_def
    select = []
    for c in columns:
        t = kind.field(c).type
        if t is FieldType.DATE:
            select.append(f'cast("{c}" as timestamp) as "{c}"')
        elif t is FieldType.DECIMAL:
            select.append(f'cast("{c}" as double) as "{c}"')
        elif t is FieldType.JSON:
            select.append(f'cast("{c}" as varchar) as "{c}"')
        else:
            select.append(f'"{c}"')
    inner = (
        f"select {', '.join(select)} from {kind.qualified_table} "
        "where _source = $source and _loaded_at = $loaded_at"
    )
    if sample is None:
        return inner
    # repeatable: the same delivery gives the same verdict when the run is retried.
    return f"select * from ({inner}) using sample reservoir({int(sample)} rows) repeatable (42)"


def _run_gx(
    con: duckdb.DuckDBPyConnection,
    source: SourceConfig,
    suite: Suite,
    loaded_at: datetime,
    report: QualityReport,
) -> None:
    columns = sorted({e.column for e in suite.expectations})
    sample = suite.sample_rows if report.rows_in_run > suite.sample_rows else None
    frame = con.execute(
        _frame_sql(source, columns, sample), {"source": source.name, "loaded_at": loaded_at}
    ).df()
    report.rows_validated = len(frame)
    gx, context = _gx_context()
    name = f"{source.name}_{time.monotonic_ns()}"
    batch_definition = (
        context.data_sources.add_pandas(name)
        .add_dataframe_asset(source.name)
        .add_batch_definition_whole_dataframe("run")
    )
    now = reference_time()
    by_rule = {e.name: e for e in suite.expectations}
    gx_suite = gx.ExpectationSuite(
        name=name, expectations=[_gx_expectation(e, now) for e in suite.expectations]
    )
    try:
        batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(gx_suite, result_format="SUMMARY")
    finally:
        context.data_sources.delete(name)
    for r in result.results:
        e = by_rule[r.expectation_config.meta["rule"]]
        res = r.result or {}
        if r.exception_info and r.exception_info.get("raised_exception"):
            observed = f"expectation raised: {r.exception_info.get('exception_message')}"
            report.outcomes.append(Outcome(e.name, e.severity, False, observed))
            continue
        count = res.get("unexpected_count") or 0
        pct = res.get("unexpected_percent") or 0.0
        observed = f"{count} unexpected ({pct:.2f}% of {res.get('element_count', 0)})"
        if e.mostly < 1.0:
            observed += f", at most {100 * (1 - e.mostly):.2f}% allowed"
        # Only the shape of a failing value reaches Dagster's metadata: it is often an
        # e-mail address or a phone number, and metadata must never hold a person's data.
        values = [
            value_shape(str(v)) for v in (res.get("partial_unexpected_list") or [])[:SAMPLE_VALUES]
        ]
        report.outcomes.append(Outcome(e.name, e.severity, bool(r.success), observed, values))


def _run_unique(
    con: duckdb.DuckDBPyConnection,
    source: SourceConfig,
    suite: Suite,
    loaded_at: datetime,
    report: QualityReport,
) -> None:
    table = source.kind_def.qualified_table
    for key in suite.unique:
        cols = ", ".join(f'"{c}"' for c in key.columns)
        not_null = " and ".join(f'"{c}" is not null' for c in key.columns)
        rows = con.execute(
            f"select _file, concat_ws('|', {cols}) as k, count(*) as n from {table} "
            f"where _source = $source and _loaded_at = $loaded_at and {not_null} "
            "group by all having count(*) > 1 order by n desc, k",
            {"source": source.name, "loaded_at": loaded_at},
        ).fetchall()
        extra_rows = sum(r[2] - 1 for r in rows)
        report.outcomes.append(
            Outcome(
                f"unique ({', '.join(key.columns)}) per file",
                key.severity,
                not rows,
                f"{len(rows)} key(s) repeated, {extra_rows} surplus row(s), all rows checked",
                [f"{r[0]}: {r[1]} x{r[2]}" for r in rows[:SAMPLE_VALUES]],
            )
        )


def _run_volume(
    con: duckdb.DuckDBPyConnection,
    source: SourceConfig,
    volume: Volume,
    loaded_at: datetime,
    report: QualityReport,
) -> None:
    # Deliveries in load order; this run's files are compared with the one before each.
    history = con.execute(
        "select file, rows_read, loaded_at = $loaded_at from raw._files "
        "where source = $source and status in ('loaded', 'replaced') and loaded_at <= $loaded_at "
        "order by loaded_at, file",
        {"source": source.name, "loaded_at": loaded_at},
    ).fetchall()
    problems, compared = [], 0
    for (_, prev_rows, _), (file, rows, this_run) in zip(history, history[1:], strict=False):
        if not this_run or max(prev_rows, rows) < volume.min_rows:
            continue
        compared += 1
        ratio = rows / prev_rows if prev_rows else float("inf")
        if not volume.min_ratio <= ratio <= volume.max_ratio:
            problems.append(f"{file}: {rows} rows vs {prev_rows} in the previous delivery")
    report.outcomes.append(
        Outcome(
            f"volume within x{volume.min_ratio}..x{volume.max_ratio} of the previous delivery",
            volume.severity,
            not problems,
            f"{compared} delivery(ies) compared (both under {volume.min_rows} rows: not judged)",
            problems[:SAMPLE_VALUES],
        )
    )


def run_quality(
    con: duckdb.DuckDBPyConnection,
    source: SourceConfig,
    loaded_at: datetime,
    suite: Suite | None,
) -> QualityReport:
    """Validate the rows ``source`` loaded at ``loaded_at`` (naive UTC) against ``suite``."""
    report = QualityReport()
    if suite is None:
        report.note = f"no suite configured (cdp_pipeline/config/expectations/{source.name}.yml)"
        return report
    start = time.perf_counter()
    report.rows_in_run = con.execute(
        f"select count(*) from {source.kind_def.qualified_table} "
        "where _source = $source and _loaded_at = $loaded_at",
        {"source": source.name, "loaded_at": loaded_at},
    ).fetchall()[0][0]
    if report.rows_in_run and suite.expectations:
        _run_gx(con, source, suite, loaded_at, report)
    if report.rows_in_run:
        _run_unique(con, source, suite, loaded_at, report)
    else:
        report.note = "no rows loaded in this run; row rules not evaluated"
    if suite.volume is not None:
        _run_volume(con, source, suite.volume, loaded_at, report)
    report.seconds = time.perf_counter() - start
    return report


def value_shape(value: str) -> str:
    """The value with letters as ``a`` and digits as ``9``: its format, not its content."""
    return "".join(
        "a" if char.isalpha() else "9" if char.isdigit() else char for char in value[:40]
    )


def outcomes_markdown(outcomes: list[Outcome]) -> str:
    """A table of outcomes for the check metadata."""
    if not outcomes:
        return "no rules of this severity"
    lines = ["| rule | passed | observed | examples |", "| --- | --- | --- | --- |"]
    for o in outcomes:
        examples = ", ".join(v.replace("|", "\\|") for v in o.unexpected) or "-"
        rule = o.rule.replace("|", "\\|")
        lines.append(f"| {rule} | {'yes' if o.passed else 'NO'} | {o.observed} | {examples} |")
    return "\n".join(lines)
