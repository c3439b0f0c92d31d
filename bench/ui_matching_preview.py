"""Wall time of the matching preview: ``.venv/bin/python bench/ui_matching_preview.py``.

Copies the identity inputs and the published assignment of an existing warehouse (opened
read-only) into a replica-like file, then times ``matching_editor.run_preview`` with the
project's settings against a candidate whose auto-merge threshold is ``--match-probability``
(two identity runs, the saved model of ``--state-dir``); writes the counts and seconds as
JSON. ``--limit`` sets the record count above which the preview samples.
"""

import argparse
import json
import logging
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import duckdb
import yaml

from cdp_pipeline.identity.config import DEFAULT_CONFIG_PATH, parse_config
from cdp_pipeline.ui import matching_editor

logger = logging.getLogger(__name__)

_TABLES = (
    "intermediate.int_identity__records",
    "intermediate.int_identity__web_identities",
    "identity.record_profiles",
    "identity.profile_history",
)


def run(
    warehouse: Path,
    state_dir: Path,
    match_probability: float,
    review_probability: float | None,
    limit: int,
) -> dict:
    current_data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    candidate_data = json.loads(json.dumps(current_data))
    candidate_data["thresholds"]["match_probability"] = match_probability
    if review_probability is not None:
        candidate_data["thresholds"]["review_match_probability"] = review_probability
    current = parse_config(current_data, str(DEFAULT_CONFIG_PATH))
    candidate = parse_config(candidate_data, "(bench)")
    with tempfile.TemporaryDirectory(prefix="cdp-bench-preview-") as folder:
        replica = Path(folder) / "replica.duckdb"
        quoted = "'" + str(warehouse).replace("'", "''") + "'"
        with duckdb.connect(str(replica)) as con:
            con.execute(f"attach {quoted} as warehouse (read_only)")
            for table in _TABLES:
                schema = table.split(".")[0]
                con.execute(f"create schema if not exists {schema}")
                con.execute(f"create table {table} as select * from warehouse.{table}")
            (records,) = con.execute(
                "select count(*) from intermediate.int_identity__records"
            ).fetchone()
            con.execute("detach warehouse")
        started = time.perf_counter()
        preview = matching_editor.run_preview(replica, current, candidate, state_dir, limit)
        seconds = time.perf_counter() - started
    result = asdict(preview)
    result.pop("merge_sample")
    result.pop("split_sample")
    return {"warehouse_records": records, "wall_seconds": round(seconds, 1), **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True, help="holds identity/")
    parser.add_argument("--match-probability", type=float, default=0.95)
    parser.add_argument("--review-probability", type=float, default=None)
    parser.add_argument("--limit", type=int, default=matching_editor.MAX_PREVIEW_RECORDS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = run(
        args.warehouse, args.state_dir, args.match_probability, args.review_probability, args.limit
    )
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
