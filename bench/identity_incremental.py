"""Full versus incremental identity nights on `cdp sample-data` output.

Night 1 resolves the delivery without 1 % of its records (drawn at random, seed
fixed) and trains the model; night 2 adds them back and runs incrementally
(only pairs with a new record are scored). A full night on the complete
delivery, with the same saved model but no scored state, is the reference:
the bench reports both times, the pairs each scored and whether the two give
the same partition of records into profiles. Each night runs in its own process,
so its peak resident memory is its own. ``--bare`` also times bare Splink (predict
+ cluster at the auto-merge threshold, the saved model, the same records, input
prepared before the clock starts) for the issue's "at most 1.5x bare Splink".
Not a test: ``flock /tmp/bench.lock nice -n 5 .venv/bin/python bench/identity_incremental.py DIR``.
"""

import argparse
import logging
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd
from identity_sample import load_landing
from splink_yardstick import predict_and_cluster

from cdp_pipeline.identity.config import load_config
from cdp_pipeline.identity.resolve import ResolutionStats, resolve
from cdp_pipeline.identity.splink_model import HASHES_FILE, PAIRS_FILE, SCORED_META_FILE

logger = logging.getLogger("identity_incremental")


def _night(
    folder: Path, records: pd.DataFrame, web: pd.DataFrame, run_id: str, state: Path
) -> tuple[ResolutionStats, float, dict[str, str], float]:
    """One identity step in a fresh process: stats, seconds, assignment, peak RSS in MiB."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_night_here, (folder, records, web, run_id, state))


def _night_here(
    folder: Path, records: pd.DataFrame, web: pd.DataFrame, run_id: str, state: Path
) -> tuple[ResolutionStats, float, dict[str, str], float]:
    logging.getLogger("splink").setLevel(logging.ERROR)
    con = duckdb.connect(str(folder / "w.duckdb"))
    try:
        con.execute("create schema if not exists intermediate")
        con.register("r", records)
        con.register("w", web)
        con.execute("create or replace table intermediate.int_identity__records as select * from r")
        con.execute(
            "create or replace table intermediate.int_identity__web_identities as select * from w"
        )
        started = time.perf_counter()
        stats = resolve(con, run_id, load_config(), state_dir=state)
        seconds = time.perf_counter() - started
        ids = dict(
            con.execute("select record_id, profile_id from identity.record_profiles").fetchall()
        )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        return stats, seconds, ids, peak
    finally:
        con.close()


def _bare(records: pd.DataFrame, state: Path) -> tuple[float, float, int]:
    """Bare Splink predict + cluster in a fresh process: seconds, peak RSS MiB, pairs."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_bare_here, (records, state))


def _bare_here(records: pd.DataFrame, state: Path) -> tuple[float, float, int]:
    with duckdb.connect() as con:
        frame = con.from_df(records).pl()
    seconds, pairs = predict_and_cluster(frame, state)
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, pairs


def _partition(ids: dict[str, str]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for record_id, profile_id in ids.items():
        groups.setdefault(profile_id, set()).add(record_id)
    return {frozenset(group) for group in groups.values()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("landing", type=Path)
    parser.add_argument("--new-share", type=float, default=0.01)
    parser.add_argument("--bare", action="store_true", help="also time bare Splink")
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    logging.getLogger("splink").setLevel(logging.ERROR)
    logging.getLogger("cdp_pipeline").setLevel(logging.WARNING)
    records, web = load_landing(args.landing)
    held_out = records.sample(frac=args.new_share, random_state=3).index
    with tempfile.TemporaryDirectory() as tmp:
        steady, fresh = Path(tmp) / "steady", Path(tmp) / "fresh"
        steady.mkdir()
        fresh.mkdir()
        state = steady / "state"
        first, first_s, _, first_mb = _night(steady, records.drop(held_out), web, "night-1", state)
        second, second_s, incremental_ids, second_mb = _night(
            steady, records, web, "night-2", state
        )
        # The reference: the same saved model, no scored state, every pair scored.
        shutil.copytree(state, fresh / "state")
        for name in (PAIRS_FILE, HASHES_FILE, SCORED_META_FILE):
            (fresh / "state" / name).unlink()
        full, full_s, full_ids, full_mb = _night(fresh, records, web, "full", fresh / "state")
        bare = _bare(records, fresh / "state") if args.bare else None
    logger.info("records %d, new in night 2: %d", len(records), len(held_out))
    logger.info(
        "night 1 (model %s): %.1fs, %d pairs scored, peak %.0f MiB",
        first.model,
        first_s,
        first.pairs_scored,
        first_mb,
    )
    for name, stats, seconds, peak in (
        ("incremental", second, second_s, second_mb),
        ("full", full, full_s, full_mb),
    ):
        logger.info(
            "%s night: identity step %.2fs, peak %.0f MiB, %d pairs scored, %d records "
            "re-scored, %d re-resolved, incremental=%s",
            name,
            seconds,
            peak,
            stats.pairs_scored,
            stats.records_rescored,
            stats.records_reclustered,
            stats.incremental,
        )
        logger.info("  phases: %s", stats.timings)
    logger.info(
        "incremental/full time %.3f, pairs %.4f, same partition: %s",
        second_s / full_s,
        second.pairs_scored / max(full.pairs_scored, 1),
        _partition(incremental_ids) == _partition(full_ids),
    )
    if bare is not None:
        logger.info(
            "bare Splink predict + cluster: %.2fs, peak %.0f MiB, %d pairs above the review "
            "threshold; full identity step / bare %.2f",
            bare[0],
            bare[1],
            bare[2],
            full_s / bare[0],
        )


if __name__ == "__main__":
    main()
