"""Propensity models: time-based training, evaluation against a recency rule, scoring.

For a reference time R (the day after the as-of date, 00:00 UTC):

* the test set is the features at R - L with the labels of [R - L, R), L the model's
  label window (30 days for tickets, 14 for the next newsletter);
* the training set stacks earlier cut-offs (SPLITS: R - 60/90/120 days for tickets,
  R - 28/42/56 for newsletters) whose labels end by R - L, so no training label overlaps
  the test period. Beyond TRAIN_CAP rows per class it is a seeded sample of each class,
  weighted by the inverse of its sampling rate (probabilities stay calibrated);
* the model (HistGradientBoostingClassifier, seeded) is fitted once on the training set,
  evaluated on the test set (AUC, top-decile lift against the recency rule, Brier score,
  reliability table) and that same model scores the features at R, read from DuckDB in
  Arrow batches of SCORE_BATCH_ROWS. The figures in the metadata are those of the model
  that scored.

Before training, a minimum-data check (positives and negatives in the training and test
sets) raises NotEnoughData with a message saying what is missing.

scikit-learn is imported inside the functions that train and measure: this module is
imported when the Dagster definitions load, which must stay light.
"""

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pandas as pd

from cdp_pipeline.segments.features import (
    FEATURES,
    LABEL_DAYS,
    PROPENSITY_MODELS,
    feature_batches,
    training_frame,
)

if TYPE_CHECKING:
    from sklearn.ensemble import HistGradientBoostingClassifier

logger = logging.getLogger(__name__)

# Days before R of the training cut-offs and of the test cut-off, per model: the test
# cut-off is R minus the label window, and every training label window ends at or before
# it (train cut-off + label window <= test cut-off).
SPLITS: dict[str, tuple[tuple[int, ...], int]] = {
    "ticket_purchase_30d": ((60, 90, 120), 30),
    "newsletter_click": ((28, 42, 56), 14),
}
SEED = 20251201

# Most training rows per class, over all cut-offs; a larger class is sampled down (seeded)
# and weighted. At 1 000 000 profiles the ticket model fits on 299 997 of 2 909 790 rows in
# 20 s instead of 59 s (24 vs 93 s CPU) for a test AUC of 0.7939 instead of 0.7944; the
# newsletter model on 299 997 of 1 747 530 in 6 s instead of 28 s, AUC 0.7400 vs 0.7404
# (`bench/segments_scale.py caps`, bench/results/segments_scale.md).
TRAIN_CAP = {"positives": 100_000, "negatives": 200_000}
# Profiles scored per Arrow batch: 100 000 x 24 float64 features is about 19 MB.
SCORE_BATCH_ROWS = 100_000

# Recency rule per model: the fewer days since this event, the likelier (the baseline).
RECENCY_RULE = {
    "ticket_purchase_30d": "days_since_last_purchase",
    "newsletter_click": "days_since_last_click",
}


class NotEnoughData(ValueError):
    """A model cannot be trained: too few positives or negatives."""


@dataclass(frozen=True)
class MinimumData:
    """Least positives and negatives in the training and the test set."""

    train_positives: int = 50
    train_negatives: int = 50
    test_positives: int = 15
    test_negatives: int = 15


@dataclass
class Evaluation:
    """Held-out figures of one model."""

    model: str
    n_train: int
    n_test: int
    train_positive_rate: float
    test_positive_rate: float
    auc: float
    auc_recency_rule: float
    top_decile_lift: float
    top_decile_lift_recency_rule: float
    brier: float
    brier_base_rate: float
    reliability: pd.DataFrame
    lift_by_decile: pd.DataFrame
    n_fitted: int = 0
    feature_importance: dict[str, float] = field(default_factory=dict)


@dataclass
class ModelResult:
    """A trained model's evaluation and its scores at the reference time."""

    evaluation: Evaluation
    scores: pd.DataFrame  # profile_id, model, score, decile, scored_at
    classifier: "HistGradientBoostingClassifier | None" = None


def reference_time(as_of: date) -> datetime:
    """The first moment after the as-of date: features include the whole as-of day."""
    return datetime.combine(as_of + timedelta(days=1), time())


def check_minimum_data(
    model: str, train: pd.DataFrame, test: pd.DataFrame, minimum: MinimumData
) -> None:
    """Raise NotEnoughData naming the model, the set and what it lacks."""
    checks = [
        ("training", "positives", int(train["label"].sum()), minimum.train_positives),
        ("training", "negatives", int((~train["label"]).sum()), minimum.train_negatives),
        ("test", "positives", int(test["label"].sum()), minimum.test_positives),
        ("test", "negatives", int((~test["label"]).sum()), minimum.test_negatives),
    ]
    missing = [
        f"{found} {kind} in the {part} set (need at least {need})"
        for part, kind, found, need in checks
        if found < need
    ]
    if missing:
        raise NotEnoughData(
            f"model {model} cannot be trained: "
            + "; ".join(missing)
            + f". Labels: {PROPENSITY_MODELS[model]}"
        )


def sample_training(
    frame: pd.DataFrame, max_positives: int, max_negatives: int, seed: int = SEED
) -> pd.DataFrame:
    """At most ``max_positives`` / ``max_negatives`` rows of each class, with a ``weight``.

    A class larger than its cap is sampled uniformly (seeded); its rows weigh the inverse
    of the sampling rate, so the weighted class balance, and with it the calibration of
    the probabilities, is that of the full set.
    """
    rng = np.random.default_rng(seed)
    labels = frame["label"].to_numpy(dtype=bool)
    keep = np.ones(len(frame), dtype=bool)
    weight = np.ones(len(frame))
    for is_positive, cap in ((True, max_positives), (False, max_negatives)):
        rows = np.flatnonzero(labels == is_positive)
        if len(rows) > cap:
            dropped = rng.choice(rows, size=len(rows) - cap, replace=False)
            keep[dropped] = False
            weight[rows] = len(rows) / cap
    return frame.assign(weight=weight).loc[keep].reset_index(drop=True)


def _matrix(frame: pd.DataFrame) -> np.ndarray:
    """The feature matrix; a column with no value at all becomes constant (no split on it)."""
    x = frame[list(FEATURES)].to_numpy(dtype=float, copy=True)
    x[:, np.isnan(x).all(axis=0)] = -1.0
    return x


def _classifier(n_positives: int) -> "HistGradientBoostingClassifier":
    """Gradient boosting, shallower and more regularised when positives are few.

    On the 20 000-person sample the newsletter model has about 350 training positives: the
    default trees overfit them (test AUC 0.60, below the recency rule's 0.62); depth 3 with
    200 rows per leaf reaches 0.63.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    if n_positives < 1000:
        return HistGradientBoostingClassifier(
            max_iter=100, learning_rate=0.03, max_depth=3, min_samples_leaf=200,
            l2_regularization=5.0, early_stopping=False, random_state=SEED,
        )  # fmt: skip
    return HistGradientBoostingClassifier(
        max_iter=150, learning_rate=0.06, max_leaf_nodes=15, min_samples_leaf=40,
        l2_regularization=1.0, early_stopping=False, random_state=SEED,
    )  # fmt: skip


def deciles(scores: np.ndarray, keys: pd.Series | None = None) -> np.ndarray:
    """Decile 1-10 of each score (10 = highest), equal-sized; ties broken by key order."""
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=int)
    order_keys = np.arange(n) if keys is None else keys.rank(method="first").to_numpy()
    order = np.lexsort((order_keys, scores))
    ranks = np.empty(n, dtype=int)
    ranks[order] = np.arange(n)
    return 1 + (ranks * 10) // n


def _recency_score(frame: pd.DataFrame, model: str) -> np.ndarray:
    days = frame[RECENCY_RULE[model]].to_numpy(dtype=float)
    return np.where(np.isnan(days), -1e9, -days)


def _lift(labels: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    decile = deciles(scores)
    base = labels.mean()
    rows = []
    for d in range(10, 0, -1):
        mask = decile == d
        rate = labels[mask].mean() if mask.any() else float("nan")
        rows.append(
            {
                "decile": d,
                "n": int(mask.sum()),
                "positive_rate": float(rate),
                "lift": float(rate / base) if base else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def _reliability(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> pd.DataFrame:
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = index == b
        if not mask.any():
            continue
        rows.append({
            "bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "n": int(mask.sum()),
            "mean_predicted": float(probabilities[mask].mean()),
            "observed_rate": float(labels[mask].mean()),
        })  # fmt: skip
    return pd.DataFrame(rows)


def _fit(train: pd.DataFrame) -> "HistGradientBoostingClassifier":
    weight = train["weight"].to_numpy() if "weight" in train else None
    classifier = _classifier(int(train["label"].sum()))
    classifier.fit(_matrix(train), train["label"].to_numpy(), sample_weight=weight)
    return classifier


def holdout_predictions(
    model: str, test: pd.DataFrame, classifier: "HistGradientBoostingClassifier"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, model probabilities, recency-rule scores) of the rows of ``test``."""
    probabilities = classifier.predict_proba(_matrix(test))[:, 1]
    return test["label"].to_numpy(dtype=bool), probabilities, _recency_score(test, model)


def evaluate(
    model: str,
    train: pd.DataFrame,
    test: pd.DataFrame,
    classifier: "HistGradientBoostingClassifier | None" = None,
) -> Evaluation:
    """Measure on ``test`` the classifier fitted on ``train`` (fitted here when not given).

    Both frames hold FEATURES and a boolean label; ``train`` may carry a sampling weight.
    """
    from sklearn.metrics import brier_score_loss, roc_auc_score

    if classifier is None:
        classifier = _fit(train)
    y_train = train["label"].to_numpy()
    weight = train["weight"].to_numpy() if "weight" in train else np.ones(len(train))
    y_test, probabilities, rule = holdout_predictions(model, test, classifier)
    lift = _lift(y_test, probabilities)
    rule_lift = _lift(y_test, rule)
    base = float(y_test.mean())
    return Evaluation(
        model=model,
        n_train=int(round(weight.sum())),
        n_test=len(test),
        train_positive_rate=float(np.average(y_train, weights=weight)),
        test_positive_rate=base,
        auc=float(roc_auc_score(y_test, probabilities)),
        auc_recency_rule=float(roc_auc_score(y_test, rule)),
        top_decile_lift=float(lift.iloc[0]["lift"]),
        top_decile_lift_recency_rule=float(rule_lift.iloc[0]["lift"]),
        brier=float(brier_score_loss(y_test, probabilities)),
        brier_base_rate=float(brier_score_loss(y_test, np.full(len(y_test), base))),
        reliability=_reliability(y_test.astype(float), probabilities),
        lift_by_decile=lift.assign(lift_recency_rule=rule_lift["lift"].to_numpy()),
        n_fitted=len(train),
    )


def score_profiles(
    con: duckdb.DuckDBPyConnection,
    classifier: "HistGradientBoostingClassifier",
    cutoff: datetime,
    batch_rows: int = SCORE_BATCH_ROWS,
) -> tuple[np.ndarray, np.ndarray]:
    """(profile_ids, scores) of every eligible profile at ``cutoff``, in profile_id order."""
    ids: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for profile_ids, matrix in feature_batches(con, cutoff, batch_rows):
        ids.append(profile_ids)
        scores.append(classifier.predict_proba(matrix)[:, 1])
    if not ids:
        return np.array([], dtype=object), np.array([], dtype=float)
    return np.concatenate(ids), np.concatenate(scores)


def training_sets(
    con: duckdb.DuckDBPyConnection, model: str, as_of: date, cap: dict[str, int] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) of ``model``: the training cut-offs sampled to ``cap``, the test whole.

    ``cap`` (rows per class over all training cut-offs) defaults to TRAIN_CAP.
    """
    cap = cap or TRAIN_CAP
    reference = reference_time(as_of)
    train_days, test_days = SPLITS[model]
    test = training_frame(con, model, reference - timedelta(days=test_days))
    # Sampled per cut-off (each its share of the cap) so that at most one cut-off's full
    # frame is in memory at a time.
    parts = [
        sample_training(
            training_frame(con, model, reference - timedelta(days=days)),
            cap["positives"] // len(train_days),
            cap["negatives"] // len(train_days),
            seed=SEED + days,
        )
        for days in train_days
    ]
    return pd.concat(parts, ignore_index=True), test


def train_and_score(
    con: duckdb.DuckDBPyConnection,
    model: str,
    as_of: date,
    minimum: MinimumData | None = None,
    scored_at: datetime | None = None,
) -> ModelResult:
    """Build the time-split sets, check them, fit once, evaluate and score at R."""
    train, test = training_sets(con, model, as_of)
    check_minimum_data(model, train, test, minimum or MinimumData())
    classifier = _fit(train)
    evaluation = evaluate(model, train, test, classifier)
    logger.info(
        "%s: fitted on %d rows, AUC %.3f on %d test rows",
        model, len(train), evaluation.auc, evaluation.n_test,
    )  # fmt: skip
    del train, test
    profile_ids, score = score_profiles(con, classifier, reference_time(as_of))
    scores = pd.DataFrame({
        "profile_id": profile_ids,
        "model": model,
        "score": score,
        # Rows come in profile_id order, so ties are broken by profile_id.
        "decile": deciles(score),
        "scored_at": scored_at or datetime.now().replace(microsecond=0),
    })  # fmt: skip
    return ModelResult(evaluation=evaluation, scores=scores, classifier=classifier)


def model_card(
    evaluation: Evaluation | None, model: str, as_of: date, problem: str | None = None
) -> str:
    """Markdown model card: purpose, data, features, excluded attributes, figures."""
    reference = reference_time(as_of)
    lines = [
        f"### Model card: `{model}`",
        "",
        f"**Predicts:** {PROPENSITY_MODELS[model]}",
        "",
        "**Algorithm:** scikit-learn HistGradientBoostingClassifier "
        f"(seed {SEED}), scores are its probabilities; decile 10 = the most likely tenth. "
        "Fitted once on the training cut-offs (beyond "
        f"{TRAIN_CAP['positives']:,} positives / {TRAIN_CAP['negatives']:,} negatives a "
        "seeded sample per class, weighted back to the full class sizes); the model measured "
        "below is the model that scored.",
        "",
        f"**Time split:** training cut-offs {', '.join(f'R-{d}d' for d in SPLITS[model][0])}, "
        f"test cut-off R-{SPLITS[model][1]}d, scored at R = {reference:%Y-%m-%d %H:%M} UTC; "
        f"labels look {LABEL_DAYS[model]} days ahead; features use events before the cut-off "
        "only.",
        "",
        "**Population:** every profile of marts.profiles except those whose `profiling` "
        "consent is withdrawn (they are neither used for training nor scored).",
        "",
        "**Not used (by design):** gender, origin, name, address, birth date or age "
        "(and so no exact age of minors), consent statuses.",
        "",
        f"**Baseline:** recency rule on `{RECENCY_RULE[model]}` (most recent first).",
        "",
        "| feature | meaning |",
        "| --- | --- |",
        *(f"| `{name}` | {text} |" for name, text in FEATURES.items()),
    ]
    if problem:
        lines += ["", f"**Not trained tonight:** {problem}"]
    if evaluation is not None:
        e = evaluation
        lines += [
            "",
            "| metric | model | recency rule |",
            "| --- | --- | --- |",
            f"| AUC | {e.auc:.3f} | {e.auc_recency_rule:.3f} |",
            f"| top-decile lift | {e.top_decile_lift:.2f} | {e.top_decile_lift_recency_rule:.2f} |",
            f"| Brier score | {e.brier:.4f} | (base rate only: {e.brier_base_rate:.4f}) |",
            "",
            f"Training rows {e.n_train} (positive rate {e.train_positive_rate:.3f}; fitted on a "
            f"weighted sample of {e.n_fitted}); "
            f"test rows {e.n_test} (positive rate {e.test_positive_rate:.3f}).",
            "",
            "Reliability (test set):",
            "",
            "| predicted bin | n | mean predicted | observed rate |",
            "| --- | --- | --- | --- |",
            *(
                f"| {r.bin} | {r.n} | {r.mean_predicted:.3f} | {r.observed_rate:.3f} |"
                for r in e.reliability.itertuples()
            ),
        ]
    return "\n".join(lines)
