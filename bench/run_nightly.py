"""Wall time and peak memory of `cdp sample-data` and `cdp run` at several population sizes.

Run by hand (`make bench` or `.venv/bin/python bench/run_nightly.py --people 10000 100000`);
figures go to bench/results/nightly.md. Each size runs in a fresh temporary data folder,
twice: a first night on an empty warehouse and a second night on the same delivery, which
must add nothing.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The cdp of the interpreter running the benchmark (the project venv under make bench).
CDP = Path(sys.executable).parent / "cdp"


@dataclass
class Measurement:
    people: int
    step: str
    seconds: float
    peak_rss_mib: float


# A fresh interpreter per step reports the peak RSS of that step's process tree alone:
# RUSAGE_CHILDREN of this process would carry the largest earlier step forward.
_PEAK_PROBE = (
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
    "sys.stdout.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
)


def _run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run a command; its wall time and the peak RSS (MiB) of its largest process."""
    start = time.perf_counter()
    probe = subprocess.run(
        [sys.executable, "-c", _PEAK_PROBE, *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    return seconds, int(probe.stdout.strip()) / 1024


def measure(people: int, seed: int) -> list[Measurement]:
    with tempfile.TemporaryDirectory(prefix=f"cdp-bench-{people}-") as folder:
        data = Path(folder)
        env = {
            **os.environ,
            "CDP_LANDING_DIR": str(data / "landing"),
            "CDP_WAREHOUSE": str(data / "warehouse" / "cdp.duckdb"),
            "DAGSTER_HOME": str(data / "dagster_home"),
            "CDP_AS_OF_DATE": "2025-12-01",
        }
        results = []
        steps = [
            (
                "sample-data",
                [
                    str(CDP),
                    "sample-data",
                    "--out",
                    env["CDP_LANDING_DIR"],
                    "--people",
                    str(people),
                    "--seed",
                    str(seed),
                ],
            ),
            ("cdp run (first night)", [str(CDP), "run"]),
            ("cdp run (same delivery again)", [str(CDP), "run"]),
        ]
        for name, args in steps:
            seconds, peak = _run(args, env)
            results.append(Measurement(people, name, seconds, peak))
            sys.stderr.write(f"{people:>8} {name:<32} {seconds:8.1f} s {peak:8.0f} MiB\n")
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "nightly.md")
    args = parser.parse_args()
    rows = [m for people in args.people for m in measure(people, args.seed)]
    lines = [
        "| people | step | wall time (s) | peak RSS (MiB) |",
        "| ---: | --- | ---: | ---: |",
        *(f"| {m.people} | {m.step} | {m.seconds:.1f} | {m.peak_rss_mib:.0f} |" for m in rows),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    sys.stderr.write(f"wrote {args.out}\n")


if __name__ == "__main__":
    main()
