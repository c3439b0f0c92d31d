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

On a shared machine pass ``--lock /tmp/bench.lock``: each timed phase then holds that lock
and releases it between phases. ``--full-night-only`` skips the incremental night,
``--append`` adds the tables to ``--out``, ``--report-from`` renders saved runs together.

The issue's city scale (1 000 000 people, ~3.5 M person records, ~20 M web events with
``--web-visit-factor 7.5``; needs ~40 GB of free disk in ``--work-dir`` and hours; on
2026-12-04 a full night took 231 s at 100 000 people and 1 208 s at 300 000, whose
identity step alone reached 22 GB of memory)::

    nice -n 10 .venv/bin/python bench/city_scale.py --people 100000 300000 1000000 \\
        --web-visit-factor 7.5 --work-dir /big/disk

``--keep`` leaves the data folders behind for inspection.
"""

import argparse
import contextlib
import fcntl
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
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
    # Peak RSS (MiB) of the whole process tree while each step ran, from the sampler.
    step_peak_mib: dict[str, float] = field(default_factory=dict)


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

# Set by --lock: the shared lock file every timed phase holds, so that other benchmarks on
# the machine do not run at the same time; released between phases, so they are not
# starved for the hours a large size takes.
_LOCK_FILE: Path | None = None


@contextlib.contextmanager
def _bench_lock(what: str) -> Iterator[None]:
    if _LOCK_FILE is None:
        yield
        return
    with _LOCK_FILE.open("a") as handle:
        waited = time.perf_counter()
        fcntl.flock(handle, fcntl.LOCK_EX)
        logger.info("%s: lock taken after %.0f s", what, time.perf_counter() - waited)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_PAGE_MIB = os.sysconf("SC_PAGE_SIZE") / 2**20


def _tree_rss_mib(root: int) -> float:
    """Summed RSS of ``root`` and all its descendants, from /proc (no psutil here)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces; the parent pid is the 2nd field after ")".
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_MIB
        except (OSError, IndexError, ValueError):
            continue
    return total


class _RssSampler(threading.Thread):
    """Samples the process tree's summed RSS twice a second: (epoch seconds, MiB)."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            self.samples.append((time.time(), _tree_rss_mib(self.root)))

    def peak_between(self, start: float, end: float) -> float | None:
        inside = [mib for at, mib in self.samples if start <= at <= end]
        return max(inside) if inside else None


def _measured(
    args: list[str], env: dict[str, str], stdout: Path
) -> tuple[float, float, _RssSampler]:
    """Run a command; its wall time, the peak RSS (MiB) of its largest process, the sampler."""
    start = time.perf_counter()
    probe = subprocess.Popen(
        [sys.executable, "-c", _PEAK_PROBE, str(stdout), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sampler = _RssSampler(probe.pid)
    sampler.start()
    out, err = probe.communicate()
    sampler.stop.set()
    sampler.join()
    if probe.returncode != 0:
        raise subprocess.CalledProcessError(probe.returncode, args, out, err)
    return time.perf_counter() - start, int(out.strip()) / 1024, sampler


def _run_id(stdout: Path) -> str:
    first = stdout.read_text(encoding="utf-8").splitlines()[0]
    # "Nightly run <run id>: succeeded"
    if not first.startswith("Nightly run ") or not first.endswith("succeeded"):
        raise RuntimeError(f"{stdout}: the night did not succeed: {first!r}")
    return first.removeprefix("Nightly run ").split(":")[0]


def _step_times(dagster_home: Path, run_id: str) -> dict[str, tuple[float, float]]:
    """Each step's (start, end) in epoch seconds, from the run's Dagster step stats."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        stats = instance.get_run_step_stats(run_id)
    return {
        s.step_key: (s.start_time, s.end_time)
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
    from splink_yardstick import predict_and_cluster

    from cdp_pipeline.identity.resolve import RECORDS_TABLE

    with duckdb.connect(str(warehouse), read_only=True) as source:
        records = source.sql(f"select * from {RECORDS_TABLE}").pl()
    seconds, _pairs = predict_and_cluster(records, state_dir)
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
    with _bench_lock(name):
        seconds, peak, sampler = _measured([str(CDP), "run"], env, stdout)
    night = Night(name, seconds, peak)
    for step, (start, end) in _step_times(Path(env["DAGSTER_HOME"]), _run_id(stdout)).items():
        night.steps[step] = end - start
        step_peak = sampler.peak_between(start, end)
        if step_peak is not None:
            night.step_peak_mib[step] = step_peak
    logger.info("%s: %.0f s, %.0f MiB, %d steps", name, seconds, peak, len(night.steps))
    # The bare engines work on a copy: dbt would otherwise move the night's state on.
    scratch = data / "bare"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    copy = scratch / "cdp.duckdb"
    shutil.copyfile(env["CDP_WAREHOUSE"], copy)
    with _bench_lock(f"{name}, bare engines"):
        night.bare.update(bare_ingest(Path(env["CDP_LANDING_DIR"]), loaded))
        night.bare.update(bare_dbt(copy, as_of, scratch))
        state_dir = Path(env["CDP_WAREHOUSE"]).parent.parent / "state" / "identity"
        night.bare["identity_resolution"] = bare_splink(copy, state_dir)
    shutil.rmtree(scratch)
    logger.info("%s: bare engines done", name)
    return night


def measure(
    people: int,
    seed: int,
    web_visit_factor: float,
    work_dir: Path | None,
    keep: bool,
    incremental: bool = True,
    on_night: Callable[[SizeResult], None] | None = None,
) -> SizeResult:
    """Generate, run and time the nights of one size; ``on_night`` sees it after each."""
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
        with _bench_lock(f"{people} people, generate"):
            generate_s, _, _ = _measured([str(CDP), "sample-data", *common], env, data / "gen.out")
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
        if on_night is not None:
            on_night(result)
        if not incremental:
            return result

        with _bench_lock(f"{people} people, increment"):
            result.increment_s, _, _ = _measured(
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
        if on_night is not None:
            on_night(result)
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


# The city: the size the figures are extrapolated to, and its limits.
CITY_PEOPLE = 1_000_000
CITY_LIMIT_S = 15 * 60
CITY_LIMIT_MIB = 8 * 1024


def _points(results: list[SizeResult], index: int, stage: str, kind: str) -> list[tuple]:
    """(people, value) of one stage over the sizes; kind is steps, bare or step_peak_mib."""
    points = []
    for r in results:
        if index >= len(r.nights):
            continue
        night = r.nights[index]
        if stage == "whole night":
            value = {"steps": night.seconds, "step_peak_mib": night.peak_rss_mib}.get(kind)
        else:
            value = getattr(night, kind).get(stage)
        if value is not None:
            points.append((r.people, value))
    return points


def extrapolate(points: list[tuple[int, float]], people: int) -> float | None:
    """The value at ``people``: the largest size's, scaled by people^k (k from the fit)."""
    k = exponent(points)
    if k is None:
        return None
    largest, value = max(points)
    return value * (people / largest) ** max(k, 0.0)


def _h(level: int, text: str) -> str:
    return "#" * level + " " + text


def report(results: list[SizeResult], load: str, command: str, level: int = 1) -> str:
    """The figures as markdown; ``level`` is the depth of the top heading (2 when appended)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        _h(
            level,
            "City scale on one machine (issue #8): "
            + ", ".join(f"{r.people:,}" for r in results)
            + " people",
        ),
        "",
        f"Run {stamp} with `{command}`.",
        f"Machine: {os.cpu_count()} cores; load before the run: `{load}`.",
        "Incremental night: 1 % new people (with their records and events) delivered "
        "beside the first delivery (`cdp sample-data --increment 0.01`).",
        "",
        _h(level + 1, "What the generator yields"),
        "",
        "| people | person records | web events | landing MB | generate s | increment s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {r.people:,} | {r.person_records:,} | {r.web_events:,} | {r.landing_mb:.0f} | "
            f"{r.generate_s:.0f} | {_fmt(r.increment_s or None, 0)} |"
            for r in results
        ),
        "",
        "Platform s: the step's duration in the run's Dagster step stats. Bare s: the bare",
        "engine doing the same work after the night (DuckDB read with explicit types of the",
        "files the night loaded; `dbt build` with the step's selection; Splink predict +",
        "cluster with the same model; on the incremental night Splink scores every pair).",
        "Peak MiB: the largest summed RSS of the night's process tree (Dagster and its dbt",
        "subprocess) sampled every 0.5 s while the step ran.",
        "",
    ]
    stages = _stage_order(results)
    for r in results:
        full = r.nights[0]
        # A size measured with --full-night-only has no incremental night: empty cells.
        incremental = r.nights[1] if len(r.nights) > 1 else Night("not run", 0.0, 0.0)
        lines += [
            _h(level + 1, f"{r.people:,} people"),
            "",
            "| stage | full s | bare s | ratio | peak MiB | incremental s | bare s | ratio "
            "| peak MiB | incr/full |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for stage in stages:
            f_s, i_s = full.steps.get(stage), incremental.steps.get(stage)
            f_b, i_b = full.bare.get(stage), incremental.bare.get(stage)
            lines.append(
                f"| {stage} | {_fmt(f_s)} | {_fmt(f_b)} | "
                f"{_fmt(f_s / f_b if f_s and f_b else None, 2)} | "
                f"{_fmt(full.step_peak_mib.get(stage), 0)} | {_fmt(i_s)} | {_fmt(i_b)} | "
                f"{_fmt(i_s / i_b if i_s and i_b else None, 2)} | "
                f"{_fmt(incremental.step_peak_mib.get(stage), 0)} | "
                f"{_fmt(i_s / f_s if i_s and f_s else None, 2)} |"
            )
        lines += [
            f"| **whole night (wall, `cdp run`)** | {full.seconds:.0f} | | | "
            f"{full.peak_rss_mib:.0f} | {_fmt(incremental.seconds or None, 0)} | | | "
            f"{_fmt(incremental.peak_rss_mib or None, 0)} | "
            f"{_fmt(incremental.seconds / full.seconds or None, 2)} |",
            "",
        ]
    city = f"{CITY_PEOPLE:,}"
    lines += [
        _h(level + 1, "Scaling exponents and the city-scale night"),
        "",
        "k in time ~ people^k, least squares on the logs over the sizes run (with two sizes:",
        "log(t2/t1) / log(n2/n1); k <= 1: the stage grows no faster than its input). The",
        f"{city}-people column scales the largest size's figure by ({city}/n)^k (k < 0 read",
        "as 0): an extrapolation, not a measurement.",
        "",
        "| stage | k full | k incremental | k bare (full) | k peak MiB (full) "
        f"| full s at {city} | incremental s at {city} | peak MiB at {city} |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    total_full = total_incremental = 0.0
    for stage in [*stages, "whole night"]:
        full_pts = _points(results, 0, stage, "steps")
        incr_pts = _points(results, 1, stage, "steps")
        peak_pts = _points(results, 0, stage, "step_peak_mib")
        at_city = extrapolate(full_pts, CITY_PEOPLE)
        incr_at_city = extrapolate(incr_pts, CITY_PEOPLE)
        if stage != "whole night":
            total_full += at_city or 0.0
            total_incremental += incr_at_city or 0.0
        cells = [
            _fmt(exponent(full_pts), 2),
            _fmt(exponent(incr_pts), 2),
            _fmt(exponent(_points(results, 0, stage, "bare")), 2),
            _fmt(exponent(peak_pts), 2),
            _fmt(at_city, 0),
            _fmt(incr_at_city, 0),
            _fmt(extrapolate(peak_pts, CITY_PEOPLE), 0),
        ]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    peak_city = extrapolate(_points(results, 0, "whole night", "step_peak_mib"), CITY_PEOPLE)
    wall_city = extrapolate(_points(results, 0, "whole night", "steps"), CITY_PEOPLE) or 0.0
    # The verdict takes the worse of the two estimates: the whole night's own k hides a
    # stage that grows fast but is still small at the sizes run; the sum of the stages
    # leaves out the time between steps and the syncs.
    full_city = max(total_full, wall_city)
    lines += [
        f"| sum of the stages | | | | | {total_full:.0f} | {total_incremental:.0f} | |",
        "",
        f"At {city} people, extrapolated: a full night of about {full_city / 60:.0f} min "
        f"(the whole night's k: {wall_city / 60:.0f} min; the sum of the stages: "
        f"{total_full / 60:.0f} min; limit {CITY_LIMIT_S // 60} min: "
        f"{'fits' if full_city <= CITY_LIMIT_S else 'does not fit'}), "
        + (
            f"an incremental night of about {total_incremental / 60:.0f} min "
            f"({100 * total_incremental / full_city:.0f} % of the full night; target < 10 %), "
            if total_incremental
            else "no incremental figure (incremental nights at fewer than two sizes), "
        )
        + f"peak memory about {_fmt(peak_city, 0)} MiB (limit {CITY_LIMIT_MIB} MiB: "
        f"{'fits' if peak_city is not None and peak_city <= CITY_LIMIT_MIB else 'does not fit'})"
        ".",
        "",
    ]
    return "\n".join(lines) + "\n"


def _load_results(paths: list[Path]) -> tuple[list[SizeResult], str, str]:
    """Results saved next to earlier reports (``<out>.json``), merged and sorted by size."""
    results, loads, commands = [], [], []
    for path in paths:
        saved = json.loads(path.read_text(encoding="utf-8"))
        loads.append(saved["load"])
        commands.append(saved["command"])
        for r in saved["results"]:
            nights = [Night(**n) for n in r.pop("nights")]
            results.append(SizeResult(**r, nights=nights))
    return sorted(results, key=lambda r: r.people), "`; `".join(loads), "`; `".join(commands)


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
    parser.add_argument(
        "--lock",
        type=Path,
        default=None,
        help="lock file (e.g. /tmp/bench.lock) held by each timed phase, released between",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "city_scale.md")
    parser.add_argument(
        "--full-night-only",
        action="store_true",
        help="skip the increment and the incremental night (the largest sizes take hours)",
    )
    parser.add_argument(
        "--append", action="store_true", help="add the tables to --out instead of replacing it"
    )
    parser.add_argument(
        "--report-from",
        type=Path,
        nargs="+",
        default=None,
        help="measure nothing: render the figures saved by earlier runs (their .json files)",
    )
    args = parser.parse_args()
    global _LOCK_FILE
    _LOCK_FILE = args.lock
    before = args.out.read_text(encoding="utf-8") if args.append and args.out.exists() else ""
    level = 2 if before else 1

    def write(results: list[SizeResult], load: str, command: str) -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        text = report(results, load, command, level)
        args.out.write_text(before + ("\n" if before else "") + text, encoding="utf-8")
        logger.info("wrote %s", args.out)

    if args.report_from:
        write(*_load_results(args.report_from))
        return
    load = subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    command = "python bench/city_scale.py " + " ".join(sys.argv[1:])
    results: list[SizeResult] = []

    def save(current: SizeResult) -> None:
        # Written after every night, so a long run that is stopped keeps what it measured;
        # the raw figures too, so that runs can be rendered together again (--report-from).
        done = [*results, current]
        write(done, load, command)
        args.out.with_suffix(".json").write_text(
            json.dumps(
                {"load": load, "command": command, "results": [asdict(r) for r in done]},
                indent=1,
            ),
            encoding="utf-8",
        )

    for people in sorted(args.people):
        results.append(
            measure(
                people,
                args.seed,
                args.web_visit_factor,
                args.work_dir,
                args.keep,
                incremental=not args.full_night_only,
                on_night=save,
            )
        )


if __name__ == "__main__":
    main()
