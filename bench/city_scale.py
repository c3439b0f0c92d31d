"""City scale on one machine: every stage of a full and an incremental night, against the
bare engine doing the same work, at several population sizes (issue #8, "One machine").

Run by hand, never in tests. Per size, in a fresh temporary data folder:

1. ``cdp sample-data`` writes the first delivery (as of 2025-12-01);
2. ``cdp run``: the full night on an empty warehouse;
3. ``cdp sample-data --increment 0.01 --as-of 2025-12-02`` adds the next night's delivery
   (1 % new people and their records and events, beside the old files);
4. ``cdp run`` with ``CDP_AS_OF_DATE=2025-12-02``: the incremental night.

Each night's wall time and peak RSS (largest process of the run's tree, as in
``bench/run_nightly.py``) are measured from outside; every step's duration comes from the
run's Dagster step stats. After each night the bare engines do the same work on the
same data, each on a copy of the warehouse so the night's own state is left alone:

- ingest (``raw__<source>``): DuckDB ``read_csv``/``read_json`` with explicit column
  types (from the source's configuration) of the files the night loaded;
- ``dbt_identity_inputs``, ``dbt_profiles``, ``dbt_segments``: ``dbt build`` with the
  same selection (``cdp_pipeline/transform/definitions.py``) on the warehouse copy;
- ``identity_resolution``: Splink predict and connected-components clustering with the
  night's saved model (or the priors, on samples too small to train) on the same input
  records (``intermediate.int_identity__records``, prepared as identity prepares them;
  the preparation is not timed). On the incremental night the bare engine still scores
  every blocked pair: it has no notion of what changed.

The figures go to ``bench/results/city_scale.md``: the generator's yield per size, one
table per size (platform s, bare s, platform/bare), and the exponent k of
time ~ people^k per stage over the sizes run (least squares on the logs).

Small run (about 40 minutes on the shared 2-core machine)::

    nice -n 10 .venv/bin/python bench/city_scale.py --people 5000 20000

The issue's city scale (1 000 000 people, ~3.5 M person records, ~20 M web events with
``--web-visit-factor 7.5``; needs ~40 GB of free disk in ``--work-dir`` and hours; a
100 000-people night alone took 25 minutes here)::

    nice -n 10 .venv/bin/python bench/city_scale.py --people 100000 300000 1000000 \\
        --web-visit-factor 7.5 --work-dir /big/disk

``--keep`` leaves the data folders behind for inspection.
"""

import argparse
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
CDP = Path(sys.executable).parent / "cdp"
DBT = Path(sys.executable).parent / "dbt"
FIRST_DAY = date(2025, 12, 1)
NEXT_DAY = date(2025, 12, 2)
INCREMENT = 0.01

logger = logging.getLogger("bench.city_scale")

# As in run_nightly.py: a fresh interpreter per command reports the peak RSS of that
# command's process tree alone. stdout goes to a file: `cdp run` prints its run id there.
_PEAK_PROBE = (
    "import resource, subprocess, sys\n"
    "with open(sys.argv[1], 'w') as out:\n"
    "    subprocess.run(sys.argv[2:], check=True, stdout=out)\n"
    "sys.stdout.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
)


@dataclass
class Night:
    """One night: its wall time, peak RSS, step durations and the bare engines' times."""

    name: str
    seconds: float
    peak_rss_mib: float
    steps: dict[str, float] = field(default_factory=dict)
    bare: dict[str, float] = field(default_factory=dict)


@dataclass
class SizeResult:
    people: int
    person_records: int
    web_events: int
    landing_mb: float
    generate_s: float
    increment_s: float
    nights: list[Night] = field(default_factory=list)


# ---------------------------------------------------------------- measuring commands


def _measured(args: list[str], env: dict[str, str], stdout: Path) -> tuple[float, float]:
    """Run a command; its wall time and the peak RSS (MiB) of its largest process."""
    start = time.perf_counter()
    probe = subprocess.run(
        [sys.executable, "-c", _PEAK_PROBE, str(stdout), *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - start, int(probe.stdout.strip()) / 1024


def _run_id(stdout: Path) -> str:
    first = stdout.read_text(encoding="utf-8").splitlines()[0]
    # "Nightly run <run id>: succeeded"
    if not first.startswith("Nightly run ") or not first.endswith("succeeded"):
        raise RuntimeError(f"{stdout}: the night did not succeed: {first!r}")
    return first.removeprefix("Nightly run ").split(":")[0]


def _step_seconds(dagster_home: Path, run_id: str) -> dict[str, float]:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        stats = instance.get_run_step_stats(run_id)
    return {
        s.step_key: s.end_time - s.start_time
        for s in stats
        if s.start_time is not None and s.end_time is not None
    }


# ---------------------------------------------------------------- bare engines


def _duckdb_type(source, field_name: str) -> tuple[str, dict[str, str]]:
    """DuckDB type of a mapped column and the read option its format needs."""
    from cdp_pipeline.ingest.config import ISO8601
    from cdp_pipeline.ingest.kinds import FieldType

    kind_type = source.kind_def.field(field_name).type
    if kind_type is FieldType.TIMESTAMP:
        fmt = source.format_for(field_name)
        if fmt == ISO8601:
            return "timestamptz", {}
        return "timestamp", {"timestampformat": fmt}
    if kind_type is FieldType.DATE:
        return "date", {"dateformat": source.format_for(field_name)}
    return str(kind_type), {}


def _bare_read_sql(source, files: list[Path]) -> tuple[str, list[object]]:
    """``read_csv``/``read_json`` of ``files`` with every column's type spelled out."""
    options: dict[str, str] = {}
    types: dict[str, str] = {}
    if source.format == "csv":
        # DuckDB's built-in nearest encodings; it skips a UTF-8 byte order mark itself.
        encoding = {"cp1252": "latin-1", "utf-8-sig": "utf-8", "utf-8": "utf-8"}[source.encoding]
        with files[0].open(encoding=source.encoding) as fh:
            header = fh.readline().rstrip("\r\n").split(source.delimiter)
        for column in header:
            field_name = source.columns.get(column)
            column_type, option = (
                ("varchar", {}) if field_name is None else _duckdb_type(source, field_name)
            )
            types[column] = column_type
            options.update(option)
        settings = {
            "delim": source.delimiter,
            "quote": source.quote,
            "header": True,
            "encoding": encoding,
            "decimal_separator": source.decimal_separator,
            "auto_detect": False,
            "columns": types,
            **options,
        }
        function = "read_csv"
    else:
        for path, field_name in source.columns.items():
            top = path.split(".")[0]
            types[top] = "json" if "." in path else _duckdb_type(source, field_name)[0]
        settings = {"format": "newline_delimited", "columns": types}
        function = "read_json"
    # Values are bound; the option names come from this script, not from the data.
    names = list(settings)
    sql = f"{function}(?, " + ", ".join(f"{name} = ?" for name in names) + ")"
    return sql, [[str(p) for p in files], *settings.values()]


def bare_ingest(landing: Path, files: dict[str, list[Path]]) -> dict[str, float]:
    """Seconds DuckDB takes to load each source's files into a table, types explicit."""
    from cdp_pipeline.ingest.config import load_sources_config

    out: dict[str, float] = {}
    for source in load_sources_config():
        paths = files.get(source.folder_name, [])
        if not paths:
            continue
        sql, params = _bare_read_sql(source, paths)
        con = duckdb.connect()
        start = time.perf_counter()
        con.execute(f"create table bare as select * from {sql}", params)
        out[f"raw__{source.name}"] = time.perf_counter() - start
        con.close()
    return out


def bare_dbt(warehouse: Path, as_of: date, scratch: Path) -> dict[str, float]:
    """Seconds of a bare ``dbt build`` per dbt step, with the step's selection."""
    from cdp_pipeline.transform.definitions import PRE_IDENTITY, SEGMENT_MODELS
    from cdp_pipeline.transform.project import dbt_project

    project = dbt_project()
    env = {
        **os.environ,
        "CDP_WAREHOUSE": str(warehouse),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    selections = {
        "dbt_identity_inputs": ["--select", PRE_IDENTITY],
        "dbt_profiles": ["--exclude", PRE_IDENTITY, *SEGMENT_MODELS.split()],
        "dbt_segments": ["--select", *SEGMENT_MODELS.split()],
    }
    out: dict[str, float] = {}
    for step, selection in selections.items():
        args = [
            str(DBT),
            "build",
            "--project-dir",
            str(project.project_dir),
            "--profiles-dir",
            str(project.profiles_dir),
            # The project's own target/ belongs to the platform and the other engineers.
            "--target-path",
            str(scratch / "target"),
            "--log-path",
            str(scratch / "logs"),
            "--vars",
            json.dumps({"as_of_date": as_of.isoformat()}),
            *selection,
        ]
        start = time.perf_counter()
        done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
        out[step] = time.perf_counter() - start
        if done.returncode != 0:
            tail = "\n".join(done.stdout.splitlines()[-20:])
            raise RuntimeError(f"bare dbt build for {step} failed:\n{tail}")
    return out


def bare_splink(warehouse: Path, state_dir: Path) -> float:
    """Seconds of Splink predict + cluster on the night's identity input, same model."""
    from splink import DuckDBAPI, Linker

    from cdp_pipeline.identity.config import load_config
    from cdp_pipeline.identity.prepare import prepare_records, splink_frame
    from cdp_pipeline.identity.resolve import RECORDS_TABLE
    from cdp_pipeline.identity.splink_model import MODEL_FILE, prediction_rules, settings_dict

    config = load_config()
    with duckdb.connect(str(warehouse), read_only=True) as source:
        records = source.sql(f"select * from {RECORDS_TABLE}").pl()
    frame = splink_frame(prepare_records(records, config), config)
    model_path = state_dir / MODEL_FILE
    model = json.loads(model_path.read_text()) if model_path.exists() else settings_dict(config)
    model["blocking_rules_to_generate_predictions"] = prediction_rules(config)
    con = duckdb.connect()
    start = time.perf_counter()
    sdf = DuckDBAPI(con).register(frame.to_arrow(), table_name="identity_input")
    linker = Linker(sdf, model, log_level=None)
    predictions = linker.inference.predict(**config.thresholds.splink_kwargs())
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_weight=config.thresholds.auto_merge_weight()
    )
    clusters.as_pyarrow_table()
    seconds = time.perf_counter() - start
    con.close()
    return seconds


# ---------------------------------------------------------------- one size


def _files(landing: Path) -> dict[str, set[Path]]:
    return {
        folder.name: {p for p in folder.iterdir() if p.is_file()}
        for folder in landing.iterdir()
        if folder.is_dir() and not folder.name.startswith(("_", "."))
    }


def _count_lines(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        with path.open("rb") as fh:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda f=fh: f.read(1 << 20), b""))
    return total


def _night(name: str, data: Path, env: dict[str, str], as_of: date, loaded: dict) -> Night:
    stdout = data / f"{name}.out"
    seconds, peak = _measured([str(CDP), "run"], env, stdout)
    night = Night(name, seconds, peak)
    night.steps = _step_seconds(Path(env["DAGSTER_HOME"]), _run_id(stdout))
    logger.info("%s: %.0f s, %.0f MiB, %d steps", name, seconds, peak, len(night.steps))
    # The bare engines work on a copy: dbt would otherwise move the night's state on.
    scratch = data / "bare"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    copy = scratch / "cdp.duckdb"
    shutil.copyfile(env["CDP_WAREHOUSE"], copy)
    night.bare.update(bare_ingest(Path(env["CDP_LANDING_DIR"]), loaded))
    night.bare.update(bare_dbt(copy, as_of, scratch))
    state_dir = Path(env["CDP_WAREHOUSE"]).parent.parent / "state" / "identity"
    night.bare["identity_resolution"] = bare_splink(copy, state_dir)
    shutil.rmtree(scratch)
    logger.info("%s: bare engines done", name)
    return night


def measure(
    people: int, seed: int, web_visit_factor: float, work_dir: Path | None, keep: bool
) -> SizeResult:
    data = Path(tempfile.mkdtemp(prefix=f"cdp-city-{people}-", dir=work_dir))
    try:
        landing = data / "landing"
        env = {
            **os.environ,
            "CDP_LANDING_DIR": str(landing),
            "CDP_WAREHOUSE": str(data / "warehouse" / "cdp.duckdb"),
            "DAGSTER_HOME": str(data / "dagster_home"),
            "CDP_AS_OF_DATE": FIRST_DAY.isoformat(),
        }
        common = [
            "--out",
            str(landing),
            "--people",
            str(people),
            "--seed",
            str(seed),
            "--web-visit-factor",
            str(web_visit_factor),
        ]
        generate_s, _ = _measured([str(CDP), "sample-data", *common], env, data / "gen.out")
        first = _files(landing)
        records = _count_lines([landing / "_truth" / "records.csv"]) - 1
        web = _count_lines(sorted(first.get("web_events", ())))
        size_mb = sum(p.stat().st_size for ps in first.values() for p in ps) / 1e6
        logger.info(
            "%d people: %d person records, %d web events, %.0f MB", people, records, web, size_mb
        )
        result = SizeResult(people, records, web, size_mb, generate_s, 0.0)
        loaded = {k: sorted(v) for k, v in first.items()}
        result.nights.append(_night("full night", data, env, FIRST_DAY, loaded))

        result.increment_s, _ = _measured(
            [
                str(CDP),
                "sample-data",
                *common,
                "--increment",
                str(INCREMENT),
                "--as-of",
                NEXT_DAY.isoformat(),
            ],
            env,
            data / "increment.out",
        )
        added = {k: sorted(v - first.get(k, set())) for k, v in _files(landing).items()}
        env["CDP_AS_OF_DATE"] = NEXT_DAY.isoformat()
        result.nights.append(_night("incremental night", data, env, NEXT_DAY, added))
        return result
    finally:
        if keep:
            logger.info("kept %s", data)
        else:
            shutil.rmtree(data, ignore_errors=True)


# ---------------------------------------------------------------- report


def _stage_order(results: list[SizeResult]) -> list[str]:
    seen: dict[str, float] = {}
    for result in results:
        for night in result.nights:
            for step in night.steps:
                seen.setdefault(step, len(seen))
    return sorted(seen, key=seen.__getitem__)


def exponent(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope k of log(seconds) = k log(people) + c."""
    points = [(p, s) for p, s in points if s > 0]
    if len({p for p, _ in points}) < 2:
        return None
    xs = [math.log(p) for p, _ in points]
    ys = [math.log(s) for _, s in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


def _fmt(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def report(results: list[SizeResult], load: str, command: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# City scale on one machine (issue #8)",
        "",
        f"Run {stamp} with `{command}`.",
        f"Machine: {os.cpu_count()} cores; load before the run: `{load}`.",
        "Sizes: " + ", ".join(f"{r.people:,}" for r in results) + " people. "
        "Incremental night: 1 % new people (with their records and events) delivered "
        "beside the first delivery (`cdp sample-data --increment 0.01`).",
        "",
        "## What the generator yields",
        "",
        "| people | person records | web events | landing MB | generate s | increment s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {r.people:,} | {r.person_records:,} | {r.web_events:,} | {r.landing_mb:.0f} | "
            f"{r.generate_s:.0f} | {r.increment_s:.0f} |"
            for r in results
        ),
        "",
        "Platform s: the step's duration in the run's Dagster step stats. Bare s: the bare",
        "engine doing the same work after the night (DuckDB read with explicit types of the",
        "files the night loaded; `dbt build` with the step's selection; Splink predict +",
        "cluster with the same model; on the incremental night Splink scores every pair).",
        "",
    ]
    stages = _stage_order(results)
    for r in results:
        full, incremental = r.nights
        lines += [
            f"## {r.people:,} people",
            "",
            "| stage | full s | bare s | ratio | incremental s | bare s | ratio | incr/full |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for stage in stages:
            f_s, i_s = full.steps.get(stage), incremental.steps.get(stage)
            f_b, i_b = full.bare.get(stage), incremental.bare.get(stage)
            lines.append(
                f"| {stage} | {_fmt(f_s)} | {_fmt(f_b)} | "
                f"{_fmt(f_s / f_b if f_s and f_b else None, 2)} | {_fmt(i_s)} | {_fmt(i_b)} | "
                f"{_fmt(i_s / i_b if i_s and i_b else None, 2)} | "
                f"{_fmt(i_s / f_s if i_s and f_s else None, 2)} |"
            )
        lines += [
            f"| **whole night (wall, `cdp run`)** | {full.seconds:.0f} | | | "
            f"{incremental.seconds:.0f} | | | {incremental.seconds / full.seconds:.2f} |",
            f"| **peak RSS MiB** | {full.peak_rss_mib:.0f} | | | "
            f"{incremental.peak_rss_mib:.0f} | | | |",
            "",
        ]
    lines += [
        "## Scaling exponents",
        "",
        "k in time ~ people^k, least squares over the sizes run (k <= 1: the stage grows no",
        "faster than its input).",
        "",
        "| stage | k full night | k incremental night | k bare (full night) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for stage in [*stages, "whole night"]:
        cells = []
        for index, use_bare in ((0, False), (1, False), (0, True)):
            points = []
            for r in results:
                night = r.nights[index]
                if stage == "whole night":
                    value = None if use_bare else night.seconds
                else:
                    value = (night.bare if use_bare else night.steps).get(stage)
                if value is not None:
                    points.append((r.people, value))
            cells.append(_fmt(exponent(points), 2))
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    # Only this script's progress: Dagster, alembic and Splink log plenty at INFO.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    logger.setLevel(logging.INFO)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--web-visit-factor", type=float, default=1.0)
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "city_scale.md")
    args = parser.parse_args()
    load = subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    results = []
    for people in sorted(args.people):
        results.append(measure(people, args.seed, args.web_visit_factor, args.work_dir, args.keep))
        # Written after every size, so a long run that is stopped keeps what it measured.
        command = "python bench/city_scale.py " + " ".join(sys.argv[1:])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report(results, load, command), encoding="utf-8")
        logger.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
