"""The bare-Splink yardstick of the identity benches: predict + cluster, nothing else.

Shared by `identity_incremental.py` and `city_scale.py`, so that both compare the
platform's identity step with the same bare work: the night's identity input prepared
as the platform prepares it, the saved model (or the configured priors when none was
trained), the configured prediction rules and thresholds, then Splink's own
`predict` and `cluster_pairwise_predictions_at_threshold`.
"""

import json
import time
from pathlib import Path

import duckdb
import polars as pl
from splink import DuckDBAPI, Linker

from cdp_pipeline.identity.config import load_config
from cdp_pipeline.identity.prepare import prepare_records, splink_frame
from cdp_pipeline.identity.splink_model import MODEL_FILE, prediction_rules, settings_dict


def predict_and_cluster(records: pl.DataFrame, state_dir: Path) -> tuple[float, int]:
    """Seconds of bare Splink predict + cluster on ``records``, and the pairs it scored."""
    config = load_config()
    frame = splink_frame(prepare_records(records, config), config)
    model_path = state_dir / MODEL_FILE
    model = json.loads(model_path.read_text()) if model_path.exists() else settings_dict(config)
    model["blocking_rules_to_generate_predictions"] = prediction_rules(config)
    con = duckdb.connect()
    try:
        started = time.perf_counter()
        sdf = DuckDBAPI(con).register(frame.to_arrow(), table_name="identity_input")
        linker = Linker(sdf, model, log_level=None)
        predictions = linker.inference.predict(**config.thresholds.splink_kwargs())
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold_match_weight=config.thresholds.auto_merge_weight()
        )
        clusters.as_pyarrow_table()
        seconds = time.perf_counter() - started
        (pairs,) = con.execute(f"select count(*) from {predictions.physical_name}").fetchone()
    finally:
        con.close()
    return seconds, pairs
