"""The probabilistic model: Splink 5 on DuckDB, built from ``matching.yml``.

Every comparison level carries a *prior* m and u probability. On a large enough
delivery (``training.min_records``) u is estimated by random sampling and m by
expectation maximisation on the configured blocking rules, and the trained
model is saved to ``state_dir/identity/splink_model.json`` with a fingerprint
of the configuration beside it; later runs reuse it until the configuration
changes or retraining is asked for. Smaller deliveries (tests, a first pilot)
use the priors as they are: EM on a few dozen pairs does not converge to
anything meaningful, and the priors were chosen so that agreement on two
strong attributes (name and birth date, name and e-mail) clears the default
threshold while a shared surname and postcode alone does not.
"""

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import splink
from splink import DuckDBAPI, Linker, block_on
from splink.blocking_rule_library import And, CustomRule

from cdp_pipeline.identity.config import MatchingConfig
from cdp_pipeline.identity.engine import splink_db_api

logger = logging.getLogger(__name__)

MODEL_FILE = "splink_model.json"
META_FILE = "splink_model.meta.json"
# Incremental nights: the pairs scored last night (above the lower threshold), the
# content hash of every record they were scored on, and what they were scored with.
PAIRS_FILE = "scored_pairs.parquet"
HASHES_FILE = "scored_records.parquet"
SCORED_META_FILE = "scored_pairs.meta.json"
# Rows of the model input whose content changed since the last night (or are new).
CHANGED = "is_changed"


def _q(column: str, side: str) -> str:
    return f'"{column}_{side}"'


def _eq(column: str) -> str:
    return f"{_q(column, 'l')} = {_q(column, 'r')}"


def _level(sql: str, label: str, m: float, u: float, **extra) -> dict:
    return {
        "sql_condition": sql,
        "label_for_charts": label,
        "m_probability": m,
        "u_probability": u,
        **extra,
    }


def _null(*columns: str) -> dict:
    sql = " OR ".join(f"{_q(c, 'l')} IS NULL OR {_q(c, 'r')} IS NULL" for c in columns)
    return {"sql_condition": sql, "label_for_charts": "null", "is_null_level": True}


# First and last name swapped in one system, allowing a typo in either.
_SWAPPED = (
    'jaro_winkler_similarity("swap_first_l", "swap_last_r") >= 0.92 '
    'AND jaro_winkler_similarity("swap_last_l", "swap_first_r") >= 0.92 '
    'AND "swap_first_l" <> "swap_last_l"'
)


def _jw(column: str, threshold: float) -> str:
    return f"jaro_winkler_similarity({_q(column, 'l')}, {_q(column, 'r')}) >= {threshold}"


def _comparison(name: str, kind: str, tf: bool) -> dict:
    """A comparison dict with labelled levels and prior m/u values."""
    tf_args = {"tf_adjustment_column": name, "tf_adjustment_weight": 1.0} if tf else {}
    if kind == "first_name":
        levels = [
            _null(name),
            _level(_eq(name), "exact", 0.82, 0.008, **tf_args),
            _level(
                f"list_has_any({_q(name + '_canon', 'l')}, {_q(name + '_canon', 'r')})",
                "nickname",
                0.06,
                0.001,
            ),
            _level(_SWAPPED, "swapped with last name", 0.02, 0.0002),
            _level(_jw(name, 0.92), "jaro-winkler >= 0.92", 0.05, 0.003),
            # Short names: one letter wrong, added or swapped stays under 0.92 (hedi /
            # heidi, merve / morve) but is a typo, which the first-name guard lets pass.
            _level(
                f"damerau_levenshtein({_q(name, 'l')}, {_q(name, 'r')}) <= 1",
                "one typo",
                0.02,
                0.002,
            ),
            _level(_jw(name, 0.8), "jaro-winkler >= 0.8", 0.02, 0.018),
            _level("ELSE", "different", 0.03, 0.9678),
        ]
    elif kind == "last_name":
        contains = (
            f"(contains({_q(name, 'l')}, {_q(name, 'r')}) OR contains({_q(name, 'r')}, "
            f"{_q(name, 'l')})) AND least(length({_q(name, 'l')}), length({_q(name, 'r')})) >= 4"
        )
        levels = [
            _null(name),
            _level(_eq(name), "exact", 0.84, 0.004, **tf_args),
            _level(_SWAPPED, "swapped with first name", 0.02, 0.0002),
            _level(_jw(name, 0.92), "jaro-winkler >= 0.92", 0.06, 0.003),
            _level(contains, "one contains the other", 0.03, 0.001),
            _level("ELSE", "different", 0.05, 0.9918),
        ]
    elif kind == "date":
        left, right = _q(name, "l"), _q(name, "r")
        swap = (
            f"substr({left}, 1, 4) = substr({right}, 1, 4) AND "
            f"substr({left}, 6, 2) = substr({right}, 9, 2) AND "
            f"substr({left}, 9, 2) = substr({right}, 6, 2)"
        )
        levels = [
            _null(name),
            _level(_eq(name), "exact", 0.9, 0.0003),
            _level(swap, "day and month swapped", 0.02, 0.00002),
            _level(f"damerau_levenshtein({left}, {right}) <= 1", "one digit typo", 0.04, 0.004),
            # A day or month mistyped beyond one digit, or replaced: within a year a
            # parent or a sibling of the same name is not possible, so the birth-date
            # guard vetoes only "different" (FEBRL4: 4 of 8 vetoed true pairs).
            _level(f"substr({left}, 1, 4) = substr({right}, 1, 4)", "same year", 0.02, 0.012),
            _level("ELSE", "different", 0.02, 0.98368),
        ]
    elif kind == "email":
        # No fuzzy level on the user part: it is usually made of the person's name,
        # so its similarity would count the name evidence a second time.
        levels = [
            _null(name),
            _level(_eq(name), "exact", 0.8, 0.0002),
            _level("ELSE", "different", 0.2, 0.9998),
        ]
    elif kind == "phone":
        levels = [
            _null(name),
            _level(_eq(name), "exact", 0.7, 0.0005),
            _level("ELSE", "different", 0.3, 0.9995),
        ]
    elif kind == "address":
        street, number, postcode = f"{name}_street", f"{name}_number", f"{name}_postcode"
        levels = [
            _null(postcode),
            _level(
                f"{_eq(street)} AND {_eq(number)} AND {_eq(postcode)}", "same address", 0.55, 0.0008
            ),
            _level(f"{_eq(street)} AND {_eq(postcode)}", "same street", 0.08, 0.004),
            # A typed street name (a letter swapped or dropped, words run together) and
            # a mistyped postcode are the errors a clerk makes; neither is a move.
            _level(f"{_jw(street, 0.9)} AND {_eq(postcode)}", "similar street", 0.04, 0.002),
            _level(
                f"{_eq(street)} AND {_eq(number)}",
                "same street and number, other postcode",
                0.03,
                0.0001,
            ),
            _level(_eq(postcode), "same postcode", 0.17, 0.06),
            _level("ELSE", "different postcode", 0.2, 0.9352),
        ]
    elif kind == "person_id":
        left, right = _q(name, "l"), _q(name, "r")
        levels = [
            _null(name),
            _level(_eq(name), "exact", 0.9, 0.0001, **tf_args),
            _level(f"damerau_levenshtein({left}, {right}) <= 1", "one typo", 0.07, 0.001),
            _level("ELSE", "different", 0.03, 0.9989),
        ]
    elif kind in ("postcode", "exact"):
        levels = [
            _null(name),
            _level(_eq(name), "exact", 0.85, 0.01 if kind == "postcode" else 0.0005, **tf_args),
            _level("ELSE", "different", 0.15, 0.99 if kind == "postcode" else 0.9995),
        ]
    else:  # pragma: no cover - the config's Literal forbids it
        raise ValueError(f"unknown comparison type {kind!r}")
    return {"output_column_name": name, "comparison_levels": levels}


def block_columns(config: MatchingConfig, rule: list[str], predict: bool = False) -> list[str]:
    """Model columns of one blocking rule (an address blocks on its postcode).

    For predictions, a rule holding both the first and the last name blocks on the
    unordered pair of the two (``name_set``), so records whose names were swapped in
    one system meet. Training keeps the plain columns: Splink leaves the compared
    columns of an EM rule untrained, which it can only see by name.
    """
    columns = [
        f"{attr}_postcode" if config.attributes[attr].comparison == "address" else attr
        for attr in rule
    ]
    names = {config.attribute_of("first_name"), config.attribute_of("last_name")}
    if predict and None not in names and names <= set(rule):
        columns = [column for column in columns if column not in names] + ["name_set"]
    return columns


def prediction_rules(config: MatchingConfig, changed_only: bool = False) -> list:
    """The blocking rules of ``linker.inference.predict``.

    ``changed_only``: only pairs in which at least one record is new or changed.
    """
    rules = [block_on(*block_columns(config, rule, predict=True)) for rule in config.blocking_rules]
    if changed_only:
        # Two rules a side, so DuckDB filters one side before joining it to all records:
        # with `l OR r` changed it joined every pair first (predict with 1 % changed on
        # 100 000 people: 4.2 s, now 1.6 s). Splink scores a pair once, for its first rule.
        sides = [
            CustomRule(f'l."{CHANGED}"'),
            CustomRule(f'r."{CHANGED}" AND NOT l."{CHANGED}"'),
        ]
        rules = [And(rule, side) for rule in rules for side in sides]
    return rules


def count_blocked_pairs(
    con: duckdb.DuckDBPyConnection, table: str, config: MatchingConfig, changed_only: bool
) -> int:
    """How many pairs the prediction rules hand to the model (what predict scores).

    Like Splink, a pair is counted once, for the first rule that blocks it.
    """
    earlier: list[str] = []
    total = 0

    def count(condition: str, where: list[str]) -> int:
        sql = (
            f"select count(*) from {table} as l inner join {table} as r on {condition} "
            f"where {' AND '.join(where)}"
        )
        return con.execute(sql).fetchall()[0][0]

    for rule in config.blocking_rules:
        columns = block_columns(config, rule, predict=True)
        condition = " AND ".join(f'l."{c}" = r."{c}"' for c in columns)
        not_earlier = [f"NOT coalesce({e}, false)" for e in earlier]
        if changed_only:
            # Joining the changed records to all (instead of enumerating every pair and
            # keeping those with a changed record: 2.8 s of a 20 s incremental night on
            # 100 000 people); the ordered pairs count a pair of two changed ones twice.
            changed = f'l."{CHANGED}"'
            total += count(condition, ["l.unique_id <> r.unique_id", changed, *not_earlier])
            total -= count(
                condition,
                ["l.unique_id < r.unique_id", changed, f'r."{CHANGED}"', *not_earlier],
            )
        else:
            total += count(condition, ["l.unique_id < r.unique_id", *not_earlier])
        earlier.append(f"({condition})")
    return total


def settings_dict(config: MatchingConfig) -> dict:
    """The Splink settings of this configuration, with prior parameters."""
    return {
        "link_type": "dedupe_only",
        "unique_id_column_name": "unique_id",
        "probability_two_random_records_match": (
            config.training.probability_two_random_records_match
        ),
        "comparisons": [
            _comparison(name, attr.comparison, attr.tf_adjustment)
            for name, attr in config.attributes.items()
        ],
        "blocking_rules_to_generate_predictions": prediction_rules(config),
        "retain_matching_columns": True,  # needed for the gamma (level) columns
        "retain_intermediate_calculation_columns": True,
        "additional_columns_to_retain": [],
    }


def fingerprint(config: MatchingConfig) -> str:
    """Hash of what the trained parameters depend on."""
    relevant = {
        "attributes": {k: v.model_dump() for k, v in config.attributes.items()},
        "em": config.training.em_blocking_rules,
        "version": 6,  # bumped when comparison levels change: saved models are retrained
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


PAIR_SCHEMA = {
    "unique_id_l": pl.Utf8,
    "unique_id_r": pl.Utf8,
    "match_weight": pl.Float64,
    "match_probability": pl.Float64,
    "evidence": pl.Utf8,
}


@dataclass
class ModelRun:
    """Scored pairs above the threshold, with how the model came to be."""

    pairs: pl.DataFrame  # unique_id_l, unique_id_r, match_weight, match_probability, evidence
    model: str  # "reused", "trained" or "priors"
    n_compared: int  # candidate pairs the model scored this run
    incremental: bool = False  # only pairs with a new or changed record were scored
    n_changed: int = 0  # records new or changed since the scored state (all on a full run)


def record_hashes(frame: pl.DataFrame) -> pl.DataFrame:
    """unique_id and a hash of everything the model compares of that record.

    Polars' row hash (stable within a Polars version, which is part of the scoring
    key): a blake2 digest per row in Python took 0.37 s on 100 000 people.
    """
    digest = frame.select(pl.struct(pl.exclude("unique_id")).hash().cast(pl.Utf8)).to_series()
    return pl.DataFrame({"unique_id": frame["unique_id"], "content_hash": digest})


def _scoring_key(config: MatchingConfig, model_identity: str) -> str:
    """What last night's scores depend on besides the records: model, config, versions."""
    relevant = {
        "model": model_identity,
        "config": config.model_dump(mode="json", exclude={"training": {"retrain"}}),
        "splink": splink.__version__,
        "polars": pl.__version__,  # record_hashes
        "version": 2,
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def _read_scored_state(state_dir: Path) -> tuple[str, pl.DataFrame, pl.DataFrame] | None:
    paths = [state_dir / SCORED_META_FILE, state_dir / HASHES_FILE, state_dir / PAIRS_FILE]
    if not all(path.exists() for path in paths):
        return None
    key = json.loads(paths[0].read_text()).get("key", "")
    return key, pl.read_parquet(paths[1]), pl.read_parquet(paths[2])


def _write_scored_state(
    state_dir: Path, key: str, hashes: pl.DataFrame, pairs: pl.DataFrame
) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    # The meta file goes last and is removed first: a crash in between leaves no
    # state that claims to match, so the next night re-scores everything.
    (state_dir / SCORED_META_FILE).unlink(missing_ok=True)
    hashes.write_parquet(state_dir / HASHES_FILE)
    pairs.write_parquet(state_dir / PAIRS_FILE)
    (state_dir / SCORED_META_FILE).write_text(json.dumps({"key": key}))


def _evidence(linker: Linker, frame: pl.DataFrame) -> pl.Series:
    """Per attribute: the comparison level's label and its match weight (with tf), as JSON.

    Splink 5 returns the level (``gamma_<name>``, kept because matching columns
    are retained), the weight of the comparison (``mw_<name>``) and its term
    frequency adjustment (``mw_tf_adj_<name>``). Built as one Polars expression: the
    earlier row-by-row loop in Python held a dict per pair and reached 22 GB on the
    300 000-people city-scale night (bench/results/city_scale.md).
    """
    fields = []
    # Attributes in name order, so the JSON reads the same whatever the config's order.
    comparisons = sorted(
        linker._settings_obj.comparisons, key=lambda comparison: comparison.output_column_name
    )
    for comparison in comparisons:
        name = comparison.output_column_name
        labels = {
            level.comparison_vector_value: level.label_for_charts
            for level in comparison.comparison_levels
        }
        gamma = f"gamma_{name}"
        level = (
            pl.col(gamma).replace_strict(labels, default="unknown", return_dtype=pl.Utf8)
            if gamma in frame.columns
            else pl.lit("unknown", dtype=pl.Utf8)
        )
        weight = pl.lit(None, dtype=pl.Float64)
        if f"mw_{name}" in frame.columns:
            adjustment = (
                pl.col(f"mw_tf_adj_{name}").cast(pl.Float64).fill_null(0.0)
                if f"mw_tf_adj_{name}" in frame.columns
                else pl.lit(0.0)
            )
            weight = (pl.col(f"mw_{name}").cast(pl.Float64) + adjustment).round(3)
        fields.append(pl.struct(level.alias("level"), weight.alias("weight")).alias(name))
    if not fields:
        return pl.Series("evidence", ["{}"] * len(frame), dtype=pl.Utf8)
    return frame.select(pl.struct(fields).struct.json_encode().alias("evidence")).to_series()


def score_pairs(
    frame: pl.DataFrame,
    config: MatchingConfig,
    state_dir: Path,
    retrain: bool | None = None,
    incremental: bool = True,
) -> ModelRun:
    """Train or load the model, then score the blocked candidate pairs above the threshold.

    Incremental (the default when possible): when the model and the configuration are
    those of the last run's scored state, only pairs in which at least one record is
    new or changed (by content hash of its model input) are scored; the stored scores
    of the other pairs are kept, those of removed or changed records dropped. A
    retrained model, a changed configuration or a missing state scores every pair.
    """
    retrain = config.training.retrain if retrain is None else retrain
    model_path = state_dir / MODEL_FILE
    meta_path = state_dir / META_FILE
    print_ = fingerprint(config)
    hashes = record_hashes(frame)
    previous = _read_scored_state(state_dir) if incremental else None
    if previous is None:
        changed = pl.Series(CHANGED, [True] * len(frame), dtype=pl.Boolean)
    else:
        known = hashes.join(previous[1], on=["unique_id", "content_hash"], how="semi")
        changed = ~hashes["unique_id"].is_in(known["unique_id"].implode()).alias(CHANGED)
    con = duckdb.connect(":memory:")
    try:
        db_api = splink_db_api(con)  # CDP_ENGINE: DuckDB or Spark
        model_input = frame.with_columns(changed.alias(CHANGED)).to_arrow()
        sdf = db_api.register(model_input, table_name="identity_input")
        reusable = (
            not retrain
            and model_path.exists()
            and meta_path.exists()
            and json.loads(meta_path.read_text()).get("fingerprint") == print_
        )
        if reusable or len(frame) < config.training.min_records:
            identity = hashlib.sha256(model_path.read_bytes()).hexdigest() if reusable else "priors"
            key = _scoring_key(config, identity)
            only_changed = previous is not None and previous[0] == key and not retrain
            if reusable:
                model = json.loads(model_path.read_text())
                # The saved model carries the parameters; the rules follow today's config.
                model["blocking_rules_to_generate_predictions"] = prediction_rules(
                    config, only_changed
                )
                mode = "reused"
            else:
                model = settings_dict(config)
                model["blocking_rules_to_generate_predictions"] = prediction_rules(
                    config, only_changed
                )
                mode = "priors"
            linker = Linker(sdf, model, log_level=None)
        else:
            only_changed = False
            linker = Linker(sdf, settings_dict(config), log_level=None)
            mode, linker = _train(linker, sdf, len(frame), config, model_path, meta_path, print_)
            identity = (
                hashlib.sha256(model_path.read_bytes()).hexdigest()
                if mode == "trained"
                else "priors"
            )
            key = _scoring_key(config, identity)
        con.register("_identity_count_input", model_input)
        n_compared = count_blocked_pairs(con, "_identity_count_input", config, only_changed)
        predictions = linker.inference.predict(**config.thresholds.splink_kwargs())
        scored = pl.from_arrow(predictions.as_pyarrow_table())
        if len(scored):
            scored = scored.with_columns(_evidence(linker, scored))
            pairs = scored.select(
                pl.col("unique_id_l").cast(pl.Utf8),
                pl.col("unique_id_r").cast(pl.Utf8),
                pl.col("match_weight").cast(pl.Float64),
                pl.col("match_probability").cast(pl.Float64),
                "evidence",
            )
        else:
            pairs = pl.DataFrame(schema=PAIR_SCHEMA)
        if only_changed:
            assert previous is not None
            kept_ids = hashes.filter(~changed)["unique_id"].implode()
            kept = previous[2].filter(
                pl.col("unique_id_l").is_in(kept_ids) & pl.col("unique_id_r").is_in(kept_ids)
            )
            pairs = pl.concat([kept.select(list(PAIR_SCHEMA)), pairs])
        pairs = pairs.sort("unique_id_l", "unique_id_r")
        _write_scored_state(state_dir, key, hashes, pairs)
        return ModelRun(pairs, mode, n_compared, only_changed, int(changed.sum()))
    finally:
        con.close()


def _train(
    linker: Linker,
    sdf,
    n_records: int,
    config: MatchingConfig,
    model_path: Path,
    meta_path: Path,
    print_: str,
) -> tuple[str, Linker]:
    """u by random sampling, m by EM per rule; fall back to the priors if training fails.

    Returns the mode and the linker to predict with (the trained one, u corrected).
    """
    try:
        linker.training.estimate_u_using_random_sampling(
            max_pairs=config.training.u_max_pairs, seed=config.training.seed
        )
        for rule in config.training.em_blocking_rules:
            linker.training.estimate_parameters_using_expectation_maximisation(
                block_on(*block_columns(config, rule)), estimate_without_term_frequencies=True
            )
        model = _without_sampled_matches(linker, n_records, config)
    except Exception as exc:  # EM failures depend on the data; the priors still work
        logger.warning("Splink training failed (%s); using the priors", type(exc).__name__)
        return "priors", linker
    model_path.parent.mkdir(parents=True, exist_ok=True)
    model_path.write_text(json.dumps(model, indent=4))
    meta_path.write_text(json.dumps({"fingerprint": print_}))
    return "trained", Linker(sdf, model, log_level=None)


def _without_sampled_matches(linker: Linker, n_records: int, config: MatchingConfig) -> dict:
    """The trained model with the true matches taken out of its u probabilities.

    Random sampling assumes that two random records are almost never the same
    person. In a delivery with many duplicates per person that is not so: a
    share ``rate`` of the sampled pairs are matches, and they inflate u of every
    agreeing level by ``rate × m``. An identifier of one person (a national
    number, a personal e-mail) then looks as common among strangers as it is
    among duplicates, and its agreement is worth a fraction of its real weight
    (FEBRL3: u of an equal social security number 4.4e-4, of which 4.4e-4 are
    matches). ``rate`` is estimated from the data: pairs the trained model puts
    above the auto-merge threshold over all pairs of records. u is then
    ``(u_sampled - rate × m) / (1 - rate)``, never below one sampled pair.
    Negligible on a large delivery (1 000 000 records: rate about 1e-6).
    """
    model = linker.misc.save_model_to_json()
    total = n_records * (n_records - 1) / 2
    if total <= 0:
        return model
    found = linker.inference.predict(threshold_match_weight=config.thresholds.auto_merge_weight())
    try:
        links = found.as_pyarrow_table().num_rows  # any engine (CDP_ENGINE)
    finally:
        found.drop_table_from_database_and_remove_from_cache()
    rate = min(links / total, 0.5)
    remove_matches_from_u(model, rate, floor=1 / min(config.training.u_max_pairs, total))
    logger.info("u without sampled matches: %d links over %.0f pairs", links, total)
    return model


def remove_matches_from_u(model: dict, rate: float, floor: float) -> dict:
    """In place: u of each level as ``(u - rate × m) / (1 - rate)``, at least ``floor``.

    ``rate``: the share of random pairs that are matches; null levels are left alone.
    """
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            m, u = level.get("m_probability"), level.get("u_probability")
            if level.get("is_null_level") or m is None or u is None:
                continue
            level["u_probability"] = max((u - rate * m) / (1 - rate), floor)
    return model


def write_prior_model(config: MatchingConfig, state_dir: Path) -> Path:
    """Save the model with its prior (fixed) parameters as if it had been trained.

    For tests and for pilots too small to train on: later runs reuse it exactly
    like a trained model until the configuration changes.
    """
    from cdp_pipeline.identity.prepare import prepare_records, splink_frame

    empty = splink_frame(prepare_records(pl.DataFrame({"record_id": ["x"]}), config), config)
    con = duckdb.connect(":memory:")
    try:
        sdf = DuckDBAPI(con).register(empty.to_arrow(), table_name="identity_input")
        linker = Linker(sdf, settings_dict(config), log_level=None)
        state_dir.mkdir(parents=True, exist_ok=True)
        linker.misc.save_model_to_json(str(state_dir / MODEL_FILE), overwrite=True)
        (state_dir / META_FILE).write_text(json.dumps({"fingerprint": fingerprint(config)}))
    finally:
        con.close()
    return state_dir / MODEL_FILE
