"""Segment assets: sizes and fingerprints, automatic segments and propensity scores.

``segment_summary`` reads marts.segment_members after dbt (the activation sensor watches
its fingerprints). The two ML assets sit between dbt models: they read
marts.profile_traits / marts.interactions / marts.consent_state and write the schema
``ml``, which the dbt segment models read as the source ``ml`` (asset keys ["ml", ...]).
"""

from datetime import datetime
from typing import TYPE_CHECKING

import dagster as dg
import duckdb

from cdp_pipeline.resources import WarehouseResource
from cdp_pipeline.segments.catalog import PROPENSITY_MODELS
from cdp_pipeline.settings import get_settings

if TYPE_CHECKING:
    from cdp_pipeline.segments.propensity import ModelResult

# The modules behind the assets (pandas, pyarrow, scikit-learn, SciPy, matplotlib) are
# imported inside the asset functions: this module is imported at every load of the
# Dagster definitions, and `python -X importtime -c "import cdp_pipeline.definitions"`
# counted 4325 modules with them and 2842 without.

SEGMENT_SUMMARY_KEY = dg.AssetKey(["segments", "segment_summary"])
FINGERPRINTS_METADATA_KEY = "fingerprints"

AUTO_SEGMENTS_KEY = dg.AssetKey(["ml", "auto_segments"])
PROPENSITY_SCORES_KEY = dg.AssetKey(["ml", "propensity_scores"])
PROFILE_TRAITS_KEY = dg.AssetKey(["marts", "profile_traits"])
INTERACTIONS_KEY = dg.AssetKey(["marts", "interactions"])
CONSENT_STATE_KEY = dg.AssetKey(["marts", "consent_state"])

_CREATE_SCORES = """
create table if not exists ml.propensity_scores (
    profile_id varchar, model varchar, score double, decile integer, scored_at timestamp
)
"""
_CREATE_EVALUATIONS = """
create table if not exists ml.propensity_evaluations (
    model varchar, evaluated_at timestamp, as_of_date date, status varchar, message varchar,
    n_train integer, n_test integer, auc double, auc_recency_rule double,
    top_decile_lift double, top_decile_lift_recency_rule double, brier double
)
"""
_CREATE_CLUSTER_HISTORY = """
create table if not exists ml.auto_segment_history (
    run_at timestamp, segment varchar, description varchar, n_members integer,
    matched_overlap double
)
"""


@dg.asset(
    key=SEGMENT_SUMMARY_KEY,
    deps=[dg.AssetKey(["marts", "segment_members"])],
    group_name="segments",
    kinds={"duckdb"},
)
def segment_summary(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Size, entries and exits of every segment after tonight's run, and over past runs.

    Metadata: a table of tonight's figures, ``size_over_time`` (a plot of sizes, entries
    and exits per run over the last 30 runs, and its table) and per-segment numbers.
    """
    from cdp_pipeline.segments.membership import segment_size_history, segment_states
    from cdp_pipeline.segments.plots import size_history_markdown

    with warehouse.connect(read_only=True) as con:
        states = segment_states(con)
        history = segment_size_history(con)
    context.log.info(f"Read membership of {len(states)} segments from marts.segment_members")
    table = "\n".join(
        f"| {state.segment} | {state.size} | {state.entered} | {state.exited} |" for state in states
    )
    metadata: dict[str, dg.RawMetadataValue] = {
        "segments": dg.MetadataValue.int(len(states)),
        "members": dg.MetadataValue.int(sum(state.size for state in states)),
        "sizes": dg.MetadataValue.md(
            "| segment | size | entered | exited |\n| --- | --- | --- | --- |\n" + table
        ),
        "size_over_time": dg.MetadataValue.md(size_history_markdown(history)),
        FINGERPRINTS_METADATA_KEY: dg.MetadataValue.json(
            {state.segment: state.fingerprint for state in states}
        ),
    }
    # Numeric metadata: the Dagster UI plots each key over the asset's materializations.
    for state in states:
        metadata[f"size/{state.segment}"] = dg.MetadataValue.int(state.size)
        metadata[f"entered/{state.segment}"] = dg.MetadataValue.int(state.entered)
        metadata[f"exited/{state.segment}"] = dg.MetadataValue.int(state.exited)
    return dg.MaterializeResult(metadata=metadata)


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    found = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(found and found[0])


@dg.asset(
    key=AUTO_SEGMENTS_KEY,
    deps=[PROFILE_TRAITS_KEY, CONSENT_STATE_KEY],
    group_name="segments",
    kinds={"duckdb", "scikitlearn"},
)
def auto_segments(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Automatic segments: KMeans clusters of profile traits with stable labels auto_<n>."""
    from cdp_pipeline.segments.clusters import (
        TRAITS_SQL,
        NotEnoughProfiles,
        cluster_profiles,
        previous_from_frames,
    )

    with warehouse.connect(read_only=True) as con:
        traits = con.execute(TRAITS_SQL).df()
        previous = None
        if _table_exists(con, "ml", "auto_segments") and _table_exists(
            con, "ml", "auto_segment_clusters"
        ):
            previous = previous_from_frames(
                con.execute("select profile_id, segment from ml.auto_segments").df(),
                con.execute("select segment, centroid from ml.auto_segment_clusters").df(),
            )
    context.log.info(f"Read {len(traits)} profiles to cluster from marts.profile_traits")
    try:
        result = cluster_profiles(traits, previous)
    except NotEnoughProfiles as error:
        context.log.warning(f"Automatic segments not updated: {error}")
        return dg.MaterializeResult(
            metadata={"status": "not clustered, previous segments kept", "reason": str(error)}
        )
    run_at = datetime.now().replace(microsecond=0)
    descriptions = dict(
        zip(result.clusters["segment"], result.clusters["description"], strict=True)
    )
    assignments = result.assignments.assign(
        description=result.assignments["segment"].map(descriptions), assigned_at=run_at
    )
    clusters = result.clusters.assign(run_at=run_at)
    with warehouse.connect() as con:
        con.execute("create schema if not exists ml")
        con.register("assignments_frame", assignments)
        con.register("clusters_frame", clusters)
        con.execute(
            "create or replace table ml.auto_segments as select profile_id, segment,"
            " description, assigned_at from assignments_frame"
        )
        con.execute(
            "create or replace table ml.auto_segment_clusters as select * from clusters_frame"
        )
        con.execute(_CREATE_CLUSTER_HISTORY)
        con.execute(
            "insert into ml.auto_segment_history select run_at, segment, description,"
            " n_members, matched_overlap from clusters_frame"
        )
    context.log.info(f"Wrote {len(assignments)} rows to ml.auto_segments")
    table = "\n".join(
        f"| {row.segment} | {row.n_members} | {row.description} | {row.matched_overlap:.2f} |"
        for row in result.clusters.itertuples()
    )
    return dg.MaterializeResult(
        metadata={
            "status": "clustered",
            "dagster/row_count": dg.MetadataValue.int(len(assignments)),
            "previous_run_found": previous is not None,
            "clusters": dg.MetadataValue.md(
                "| segment | members | description | overlap with previous |\n"
                "| --- | --- | --- | --- |\n" + table
            ),
        }
    )


def _write_scores(
    con: duckdb.DuckDBPyConnection,
    results: dict[str, "ModelResult"],
    problems: dict[str, str],
    as_of: datetime,
) -> None:
    con.execute("create schema if not exists ml")
    con.execute(_CREATE_SCORES)
    con.execute(_CREATE_EVALUATIONS)
    evaluated_at = datetime.now().replace(microsecond=0)
    for model in PROPENSITY_MODELS:
        # A model that could not be trained tonight leaves no stale scores behind.
        con.execute("delete from ml.propensity_scores where model = ?", [model])
        if model in results:
            con.register("scores_frame", results[model].scores)
            con.execute(
                "insert into ml.propensity_scores select profile_id, model, score, decile,"
                " scored_at from scores_frame"
            )
            con.unregister("scores_frame")
            e = results[model].evaluation
            con.execute(
                "insert into ml.propensity_evaluations values"
                " (?, ?, ?, 'trained', null, ?, ?, ?, ?, ?, ?, ?)",
                [model, evaluated_at, as_of, e.n_train, e.n_test, e.auc, e.auc_recency_rule,
                 e.top_decile_lift, e.top_decile_lift_recency_rule, e.brier],
            )  # fmt: skip
        else:
            con.execute(
                "insert into ml.propensity_evaluations (model, evaluated_at, as_of_date, status,"
                " message) values (?, ?, ?, 'not trained', ?)",
                [model, evaluated_at, as_of, problems.get(model)],
            )


@dg.asset(
    key=PROPENSITY_SCORES_KEY,
    deps=[INTERACTIONS_KEY, CONSENT_STATE_KEY, PROFILE_TRAITS_KEY],
    group_name="segments",
    kinds={"duckdb", "scikitlearn"},
)
def propensity_scores(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Propensity to buy a ticket in 30 days and to click the next newsletter, per profile."""
    from cdp_pipeline.segments.plots import propensity_markdown
    from cdp_pipeline.segments.propensity import NotEnoughData, model_card, train_and_score

    as_of = get_settings().as_of_date
    results: dict[str, ModelResult] = {}
    problems: dict[str, str] = {}
    with warehouse.connect(read_only=True) as con:
        for model in PROPENSITY_MODELS:
            try:
                results[model] = train_and_score(con, model, as_of)
            except NotEnoughData as error:
                problems[model] = str(error)
                context.log.warning(str(error))
    with warehouse.connect() as con:
        _write_scores(con, results, problems, datetime.combine(as_of, datetime.min.time()))
    metadata: dict[str, dg.RawMetadataValue] = {
        "dagster/row_count": dg.MetadataValue.int(sum(len(r.scores) for r in results.values())),
        "trained": dg.MetadataValue.json(sorted(results)),
        "not_trained": dg.MetadataValue.json(problems),
    }
    for model in PROPENSITY_MODELS:
        result = results.get(model)
        evaluation = result.evaluation if result else None
        card = model_card(evaluation, model, as_of, problems.get(model))
        if evaluation is not None:
            metadata[f"{model}/auc"] = dg.MetadataValue.float(round(evaluation.auc, 4))
            metadata[f"{model}/auc_recency_rule"] = dg.MetadataValue.float(
                round(evaluation.auc_recency_rule, 4)
            )
            metadata[f"{model}/top_decile_lift"] = dg.MetadataValue.float(
                round(evaluation.top_decile_lift, 3)
            )
            metadata[f"{model}/top_decile_lift_recency_rule"] = dg.MetadataValue.float(
                round(evaluation.top_decile_lift_recency_rule, 3)
            )
            metadata[f"{model}/brier"] = dg.MetadataValue.float(round(evaluation.brier, 5))
            metadata[f"{model}/plot"] = dg.MetadataValue.md(propensity_markdown(evaluation))
        metadata[f"{model}/model_card"] = dg.MetadataValue.md(card)
    context.log.info(f"Propensity: trained {sorted(results)}, not trained {sorted(problems)}")
    return dg.MaterializeResult(metadata=metadata)


defs = dg.Definitions(assets=[segment_summary, auto_segments, propensity_scores])

__all__ = [
    "AUTO_SEGMENTS_KEY",
    "FINGERPRINTS_METADATA_KEY",
    "PROPENSITY_SCORES_KEY",
    "SEGMENT_SUMMARY_KEY",
    "defs",
]
