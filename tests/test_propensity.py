"""Propensity: no leakage past the cut-off, minimum-data message, training on a real signal."""

from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
import sqlglot
from sqlglot import exp

from cdp_pipeline.resources import WarehouseResource
from cdp_pipeline.segments.definitions import propensity_scores
from cdp_pipeline.segments.features import (
    _CLICK_LABEL_SQL,
    _FEATURES_SQL,
    _TICKET_LABEL_SQL,
    FEATURES,
    LABEL_DAYS,
    feature_batches,
    features_at,
    training_frame,
)
from cdp_pipeline.segments.propensity import (
    SPLITS,
    MinimumData,
    NotEnoughData,
    deciles,
    model_card,
    reference_time,
    sample_training,
    train_and_score,
)

AS_OF = date(2025, 12, 1)
SENSITIVE = ("gender", "birth", "age", "origin", "nationality", "postcode", "district", "name")


def _schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema marts")
    con.execute(
        "create table marts.interactions (interaction_id varchar, profile_id varchar,"
        " interaction_type varchar, occurred_at timestamp, category varchar,"
        " amount_eur decimal(12, 2), status varchar, item_name varchar, event_id varchar,"
        " campaign_id varchar)"
    )
    con.execute("create table marts.profiles (profile_id varchar)")
    con.execute(
        "create table marts.consent_state (profile_id varchar, purpose varchar, status varchar)"
    )


def _population(con: duckdb.DuckDBPyConnection, n: int, seed: int) -> None:
    """People with a latent interest: clicks and visits come before their purchases."""
    rng = np.random.default_rng(seed)
    start = datetime(2025, 1, 1)
    rows = []
    for i in range(n):
        profile_id = f"P{i:05d}"
        interest = rng.beta(0.6, 3.0)
        for week in range(48):
            sent = start + timedelta(days=7 * week, hours=8)
            campaign = f"c{week}"
            rows.append((profile_id, "email_sent", sent, None, None, None, campaign))
            active = rng.random() < interest
            if active and rng.random() < 0.6:
                clicked = sent + timedelta(hours=float(rng.uniform(1, 30)))
                rows.append((profile_id, "email_click", clicked, None, None, None, campaign))
            if active and rng.random() < 0.5:
                bought = sent + timedelta(days=float(rng.uniform(1, 6)))
                rows.append((profile_id, "ticket_purchase", bought, "concert", 30, "EV-1", None))
            elif rng.random() < 0.02:
                bought = sent + timedelta(days=float(rng.uniform(1, 6)))
                rows.append((profile_id, "ticket_purchase", bought, "sport", 20, "EV-2", None))
    frame = pd.DataFrame(rows, columns=[
        "profile_id", "interaction_type", "occurred_at", "category", "amount_eur", "event_id",
        "campaign_id",
    ])  # fmt: skip
    frame.insert(0, "interaction_id", [f"i{k}" for k in range(len(frame))])
    frame["status"] = "paid"
    frame["item_name"] = None
    con.register("population_frame", frame)
    con.execute(
        "insert into marts.interactions select interaction_id, profile_id, interaction_type,"
        " occurred_at, category, amount_eur, status, item_name, event_id, campaign_id"
        " from population_frame"
    )
    con.unregister("population_frame")
    con.execute("insert into marts.profiles select printf('P%05d', range) from range(?)", [n])
    con.execute(
        "insert into marts.consent_state select profile_id, 'profiling',"
        " case when profile_id like '%7' then 'withdrawn' else 'unknown' end from marts.profiles"
    )


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("propensity") / "cdp.duckdb"
    with duckdb.connect(str(path)) as con:
        _schema(con)
        _population(con, 1200, seed=3)
    return path


def test_features_ignore_events_after_the_cutoff(population: Path, tmp_path: Path) -> None:
    cutoff = reference_time(AS_OF) - timedelta(days=60)
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(population.read_bytes())
    with duckdb.connect(str(copy)) as con:
        before = features_at(con, cutoff)
        labels_before = training_frame(con, "ticket_purchase_30d", cutoff)["label"].sum()
        # The future: every profile buys, clicks, browses and registers after the cut-off.
        for offset, kind in enumerate(
            ["ticket_purchase", "email_click", "email_open", "page", "screen", "registration",
             "email_sent", "track"]
        ):  # fmt: skip
            con.execute(
                "insert into marts.interactions select uuid()::varchar, profile_id, ?, ?,"
                " 'concert', 99, 'paid', 'Added to Wishlist', 'EV-9', 'c-future'"
                " from marts.profiles",
                [kind, cutoff + timedelta(minutes=offset)],
            )
        after = features_at(con, cutoff)
        labels_after = training_frame(con, "ticket_purchase_30d", cutoff)["label"].sum()
    assert before.equals(after)
    # The labels do look ahead (that is what they are for).
    assert labels_after > labels_before


def test_profiles_with_profiling_withdrawn_are_left_out(population: Path) -> None:
    with duckdb.connect(str(population), read_only=True) as con:
        frame = features_at(con, reference_time(AS_OF))
    assert len(frame) == 1200 - 120
    assert not frame["profile_id"].str.endswith("7").any()


def test_no_sensitive_attribute_is_a_feature() -> None:
    for name in FEATURES:
        assert not set(name.split("_")) & set(SENSITIVE), name


@pytest.mark.parametrize("sql", [_FEATURES_SQL, _TICKET_LABEL_SQL, _CLICK_LABEL_SQL])
def test_features_and_labels_read_only_behaviour_columns(sql: str) -> None:
    """Every column the SQL reads is behaviour or a key: no profile attribute can slip in."""
    tree = sqlglot.parse_one(sql.replace("$cutoff", "now()").replace("$label_end", "now()"),
                             read="duckdb")  # fmt: skip
    tables = {f"{t.db}.{t.name}" for t in tree.find_all(exp.Table) if t.db}
    assert tables <= {"marts.interactions", "marts.profiles", "marts.consent_state"}
    columns = {column.name for column in tree.find_all(exp.Column)} - {"*"}
    behaviour = {
        "profile_id", "interaction_type", "occurred_at", "category", "amount_eur", "status",
        "item_name", "event_id", "campaign_id", "purpose", "age_days", "n", "clicked",
    }  # fmt: skip
    assert columns <= behaviour, columns - behaviour


@pytest.mark.parametrize("model", sorted(SPLITS))
def test_time_split_keeps_training_labels_before_the_test_period(model: str) -> None:
    train_days, test_days = SPLITS[model]
    # Days before R: a training label window [cut-off, cut-off + L) ends by the test cut-off,
    # and the test label window ends by R, the moment scores are made.
    assert all(days - LABEL_DAYS[model] >= test_days for days in train_days)
    assert test_days >= LABEL_DAYS[model]


def test_model_finds_the_signal_and_scores_in_deciles(population: Path) -> None:
    with duckdb.connect(str(population), read_only=True) as con:
        result = train_and_score(con, "ticket_purchase_30d", AS_OF, scored_at=datetime(2025, 12, 2))
        clicks = train_and_score(con, "newsletter_click", AS_OF)
    evaluation = result.evaluation
    assert evaluation.auc > 0.7
    assert evaluation.top_decile_lift > 1.5
    assert 0 < evaluation.brier < evaluation.brier_base_rate
    assert clicks.evaluation.auc > 0.7
    scores = result.scores
    assert set(scores["decile"]) == set(range(1, 11))
    assert scores.groupby("decile")["score"].mean().is_monotonic_increasing
    assert len(scores) == 1080 and not scores["profile_id"].str.endswith("7").any()
    card = model_card(evaluation, "ticket_purchase_30d", AS_OF)
    assert "| `days_since_last_purchase` |" in card and "| AUC |" in card


def test_minimum_data_check_names_model_and_what_is_missing(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "small.duckdb")) as con:
        _schema(con)
        _population(con, 40, seed=1)
        with pytest.raises(NotEnoughData) as raised:
            train_and_score(con, "ticket_purchase_30d", AS_OF, MinimumData(train_positives=500))
    message = str(raised.value)
    assert message.startswith("model ticket_purchase_30d cannot be trained:")
    assert "positives in the training set (need at least 500)" in message


def test_asset_reports_an_untrainable_model_instead_of_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDP_AS_OF_DATE", AS_OF.isoformat())
    path = tmp_path / "small.duckdb"
    with duckdb.connect(str(path)) as con:
        _schema(con)
        _population(con, 30, seed=1)
    result = dg.materialize(
        [propensity_scores], resources={"warehouse": WarehouseResource(database=str(path))}
    )
    assert result.success
    (materialization,) = result.asset_materializations_for_node("ml__propensity_scores")
    not_trained = materialization.metadata["not_trained"].value
    assert set(not_trained) == {"ticket_purchase_30d", "newsletter_click"}
    assert "cannot be trained" in not_trained["ticket_purchase_30d"]
    assert "Not trained tonight" in materialization.metadata["newsletter_click/model_card"].value
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("select count(*) from ml.propensity_scores").fetchone() == (0,)
        statuses = con.execute("select status from ml.propensity_evaluations").fetchall()
    assert statuses == [("not trained",), ("not trained",)]


def test_deciles_are_equal_sized_and_ordered() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.5, 0.2, 0.3, 0.8, 0.7, 0.6, 0.4] * 3)
    result = deciles(scores)
    assert np.bincount(result)[1:].tolist() == [3] * 10
    assert result[scores.argmax()] == 10 and result[scores.argmin()] == 1


def test_feature_batches_hold_the_rows_of_features_at(population: Path) -> None:
    cutoff = reference_time(AS_OF) - timedelta(days=30)
    with duckdb.connect(str(population), read_only=True) as con:
        frame = features_at(con, cutoff)
        batches = list(feature_batches(con, cutoff, batch_rows=250))
    assert [len(ids) for ids, _ in batches] == [250, 250, 250, 250, 80]
    ids = np.concatenate([ids for ids, _ in batches])
    matrix = np.vstack([matrix for _, matrix in batches])
    assert ids.tolist() == frame["profile_id"].tolist()
    np.testing.assert_array_equal(matrix, frame[list(FEATURES)].to_numpy(dtype=float))


def test_training_sample_keeps_the_class_balance_in_its_weights() -> None:
    frame = pd.DataFrame({"label": [True] * 30 + [False] * 970, "x": range(1000)})
    sample = sample_training(frame, max_positives=100, max_negatives=200)
    assert int(sample["label"].sum()) == 30 and int((~sample["label"]).sum()) == 200
    assert (sample.loc[sample["label"], "weight"] == 1.0).all()
    assert np.isclose(sample.loc[~sample["label"], "weight"].sum(), 970)
    assert sample.equals(sample_training(frame, max_positives=100, max_negatives=200))
    assert sample_training(frame, 1000, 1000)["weight"].eq(1.0).all()


def test_asset_writes_scores_and_reports_figures_with_a_plot(
    population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDP_AS_OF_DATE", AS_OF.isoformat())
    path = tmp_path / "copy.duckdb"
    path.write_bytes(population.read_bytes())
    result = dg.materialize(
        [propensity_scores], resources={"warehouse": WarehouseResource(database=str(path))}
    )
    (materialization,) = result.asset_materializations_for_node("ml__propensity_scores")
    metadata = materialization.metadata
    assert metadata["trained"].value == ["newsletter_click", "ticket_purchase_30d"]
    for model in ("ticket_purchase_30d", "newsletter_click"):
        assert metadata[f"{model}/auc"].value > metadata[f"{model}/auc_recency_rule"].value - 0.05
        assert metadata[f"{model}/plot"].value.startswith(f"![{model} calibration and lift](")
        card = metadata[f"{model}/model_card"].value
        assert "Reliability (test set)" in card and "| `clicks_90d` |" in card
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "select model, count(*), min(decile), max(decile) from ml.propensity_scores"
            " group by model order by model"
        ).fetchall()
        statuses = con.execute("select status from ml.propensity_evaluations").fetchall()
    assert rows == [("newsletter_click", 1080, 1, 10), ("ticket_purchase_30d", 1080, 1, 10)]
    assert statuses == [("trained",), ("trained",)]
