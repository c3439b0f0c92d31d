"""Benchmark, run by hand: traits, segments and scoring at scale; model quality on samples.

    # 1. Scale: a synthetic warehouse of N profiles (marts.profiles, marts.interactions,
    #    marts.consent_state, ...), then dbt profile_traits -> auto_segments and
    #    propensity_scores (the Dagster assets) -> dbt segment models and segment_members.
    #    Each step runs in a forked child: its wall time, CPU time and peak memory (of its
    #    largest process, the Python step or dbt) are its own.
    nice -n 10 .venv/bin/python bench/segments_scale.py scale --profiles 1000000
    #    --work DIR keeps the synthetic warehouse in DIR and reuses it when it is there.

    # 2. Quality: AUC, top-decile lift (model and recency rule) and Brier score of each
    #    propensity model on a warehouse built by the nightly job from `cdp sample-data`
    #    (e.g. `make demo DEMO_PEOPLE=20000`).
    .venv/bin/python bench/segments_scale.py quality --warehouse data/warehouse/cdp.duckdb \
        --as-of 2025-12-01

    # 3. Caps: time and quality of KMeans fitted on FIT_SAMPLE profiles vs all of them, and
    #    of each propensity model fitted on TRAIN_CAP rows vs all training rows.
    .venv/bin/python bench/segments_scale.py caps --warehouse /tmp/w1m/cdp.duckdb

The synthetic population carries the sample data's kind of signal: a latent interest per
person drives activity per fortnight (a newsletter every 15 days), and an active period
has newsletter clicks and web visits a few days before the ticket purchase.
"""

import argparse
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np

from cdp_pipeline.resources import WarehouseResource
from cdp_pipeline.segments.definitions import auto_segments, propensity_scores, segment_summary
from cdp_pipeline.segments.features import PROPENSITY_MODELS
from cdp_pipeline.segments.propensity import (
    NotEnoughData,
    deciles,
    holdout_predictions,
    train_and_score,
    training_sets,
)
from cdp_pipeline.settings import DBT_PROJECT_DIR

logger = logging.getLogger("bench.segments_scale")

AS_OF = "2025-12-01"
# Metadata keys not worth a log line: images, model cards, per-segment numbers, fingerprints.
BOOTSTRAP_SEED = 7
_UNLOGGED_METADATA = ("plot", "card", "size", "fingerprints", "entered/", "exited/")
DBT = Path(sys.executable).parent / "dbt"

_SYNTHETIC_SQL = """
create schema marts;
create schema staging;
create schema intermediate;

create table marts.profiles as
select
    'P' || lpad(cast(i as varchar), 8, '0') as profile_id,
    random() < 0.85 as is_known,
    (['2000', '2018', '2060', '2100', '2140', '2170', '2180', '2600', '2610', '2660',
      '2900'])[1 + cast(floor(random() * 11) as integer)] as postcode,
    date '1940-01-01' + cast(floor(random() * 29000) as integer) as birth_date
from range($n) as t(i);

create table latent as
select profile_id, pow(random(), 2.5) as interest, random() as sportiness,
    random() as engagement, random() < 0.6 as subscribed
from marts.profiles;

-- A newsletter every 15 days, the last on 2025-11-26: the click model's 14-day label
-- windows (test cut-off R-14, training R-28/42/56) each hold one send. With a monthly
-- newsletter most of those windows held none and the model could not be trained.
-- Per-period chances are half the monthly ones, so a year's activity stays about the same.
create table months as
select latent.*, m as month_index,
    timestamp '2024-12-01 08:00:00' + to_days(15 * m) as sent_at,
    random() < 0.5 * latent.interest as active,
    random() as r1, random() as r2, random() as r3, random() as r4
from latent cross join range(25) as months(m);

create table interactions_raw as
select * from (
    select profile_id, 'email_sent' as interaction_type, sent_at as occurred_at,
        null as category, null as event_id, 'c' || month_index as campaign_id,
        null::decimal(12, 2) as amount_eur, null as item_name
    from months where subscribed
    union all
    select profile_id, 'email_open', sent_at + interval 3 hour, null, null, 'c' || month_index,
        null, null
    from months where subscribed and (active or r1 < 0.05 + 0.2 * engagement)
    union all
    select profile_id, 'email_click', sent_at + interval 5 hour, null, null,
        'c' || month_index, null, null
    from months where subscribed and ((active and r2 < 0.6) or r2 < 0.01)
    union all
    select profile_id, 'page', sent_at + to_days(1 + cast(r3 * 3 as integer)), null,
        'EV-' || month_index, null, null, 'Evenement'
    from months where (active and r3 < 0.8) or r3 < 0.025 * engagement
    union all
    select profile_id, 'track', sent_at + to_days(1 + cast(r3 * 3 as integer)) + interval 2 minute,
        null, 'EV-' || month_index, null, null, 'Added to Wishlist'
    from months where active and r3 < 0.2
    union all
    select profile_id, 'ticket_purchase', sent_at + to_days(4 + cast(r4 * 5 as integer)),
        case when sportiness > 0.7 then 'sport' when r4 < 0.5 then 'concert' else 'theater' end,
        'EV-' || month_index, null, cast(10 + 50 * r4 as decimal(12, 2)), null
    from months where (active and r4 < 0.5) or r4 < 0.0015
    union all
    select profile_id, 'screen', sent_at + to_days(cast(r1 * 20 as integer)), null, null, null,
        null, 'Home'
    from months where engagement > 0.8 and r1 < 0.25
    union all
    select profile_id, 'registration', sent_at + to_days(10), 'sportkamp', null, null,
        cast(85 as decimal(12, 2)), 'Sportkamp'
    from months where month_index = 12 and sportiness > 0.9
);

create table marts.interactions as
select 'i' || cast(row_number() over () as varchar) as interaction_id, interactions_raw.*,
    'ticketing' as source, 'paid' as status, null as order_id, null as contact_profile_id,
    1 as quantity, null as url
from interactions_raw;
drop table interactions_raw;

create table marts.consent_state as
select profile_id, purpose,
    case when purpose = 'profiling' and random() < 0.03 then 'withdrawn'
        when purpose = 'email_marketing' and random() < 0.5 then 'granted'
        else 'unknown' end as status,
    null::timestamp as updated_at, null as source, null as subject
from marts.profiles
cross join (values ('email_marketing'), ('push_marketing'), ('ad_targeting'), ('profiling'))
    as purposes(purpose);

create table staging.stg_ticketing__orders (source varchar, order_id varchar, venue varchar);
create table staging.stg_registrations__registrations (
    source varchar, registration_id varchar, activity_type varchar, status varchar,
    registered_at timestamp
);
create table intermediate.int_identity__records (
    source varchar, record_key varchar, role varchar, is_child_record boolean
);
create table marts.profile_records (
    record_id varchar, source varchar, record_key varchar, role varchar, profile_id varchar
);
drop table months;
drop table latent;
"""


def _peak_mb() -> tuple[float, float]:
    """Peak resident memory so far of this process and of its largest child (dbt), in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def _cpu_seconds() -> float:
    """User + system CPU time so far of this process and its finished children (dbt).

    On a shared machine the wall time depends on the others' load; CPU time much less.
    """
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


Timing = tuple[str, float, float, float]


def _in_child(run: Callable[[], None]) -> resource.struct_rusage:
    """Run ``run`` in a forked child and return that child's resource usage.

    The usage of one child (with the dbt process it waits for) is the step's own: CPU time
    and the peak resident memory of its largest process, not a peak carried over from an
    earlier step as getrusage of this process would give.
    """
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            run()
            code = 0
        except BaseException:
            logger.exception("step failed")
        finally:
            logging.shutdown()
            os._exit(code)
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"step failed with exit status {os.waitstatus_to_exitcode(status)}")
    return usage


def _step(name: str, timings: list[Timing], run: Callable[[], None]) -> None:
    start = time.perf_counter()
    usage = _in_child(run)
    elapsed = time.perf_counter() - start
    cpu = usage.ru_utime + usage.ru_stime
    peak = usage.ru_maxrss / 1024
    timings.append((name, elapsed, cpu, peak))
    logger.info("%-28s %7.1f s wall %7.1f s CPU  peak %6.0f MB", name, elapsed, cpu, peak)


def _dbt(work: Path, *select: str) -> None:
    subprocess.run(
        [str(DBT), "run", "--select", *select,
         "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
         "--target-path", str(work / "target"), "--log-path", str(work / "logs"),
         "--vars", f'{{as_of_date: "{AS_OF}"}}', "--quiet"],
        check=True,
    )  # fmt: skip


def scale(profiles: int, work: Path | None = None) -> None:
    """Time traits, ML assets and segments on a synthetic warehouse of ``profiles``."""
    work = work or Path(tempfile.mkdtemp(prefix="cdp_segments_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    warehouse = work / "cdp.duckdb"
    reuse = warehouse.exists()
    os.environ.update({
        "CDP_WAREHOUSE": str(warehouse), "CDP_AS_OF_DATE": AS_OF,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    })  # fmt: skip
    timings: list[Timing] = []

    def synthesise() -> None:
        with duckdb.connect(str(warehouse)) as con:
            for statement in _SYNTHETIC_SQL.split(";"):
                if statement.strip():
                    con.execute(statement.replace("$n", str(int(profiles))))
            (rows,) = con.execute("select count(*) from marts.interactions").fetchone()
        logger.info("synthetic warehouse: %d profiles, %d interactions", profiles, rows)

    def ml_asset(asset: dg.AssetsDefinition) -> Callable[[], None]:
        def run() -> None:
            result = dg.materialize(
                [asset], resources={"warehouse": WarehouseResource(database=str(warehouse))}
            )
            (node,) = [node.name for node in asset.node_def.iterate_node_defs()]
            (event,) = result.asset_materializations_for_node(node)
            for key, value in event.metadata.items():
                if not any(word in key for word in _UNLOGGED_METADATA):
                    logger.info("  %s %s: %s", node, key, str(value.value)[:400])

        return run

    if reuse:
        logger.info("reusing the synthetic warehouse %s", warehouse)
    else:
        _step("synthesise warehouse", timings, synthesise)
    _step("dbt profile_traits", timings, lambda: _dbt(work, "profile_traits"))
    _step("auto segments (KMeans)", timings, ml_asset(auto_segments))
    _step("propensity (2 models)", timings, ml_asset(propensity_scores))
    _step("dbt segments + members", timings,
          lambda: _dbt(work, "path:models/segments", "segment_members"))  # fmt: skip
    _step("segment summary + plot", timings, ml_asset(segment_summary))
    with duckdb.connect(str(warehouse), read_only=True) as con:
        sizes = con.execute(
            "select segment, count(*) from marts.segment_members group by segment order by 1"
        ).fetchall()
    logger.info("segment sizes: %s", sizes)
    logger.info("| step | wall s | CPU s | peak MB |")
    logger.info("| --- | --- | --- | --- |")
    for name, elapsed, cpu, peak in timings:
        logger.info("| %s | %.1f | %.1f | %.0f |", name, elapsed, cpu, peak)
    logger.info("work folder (delete by hand): %s", work)


def _top_decile_lift(labels: np.ndarray, scores: np.ndarray) -> float:
    top = deciles(scores) == 10
    return float(labels[top].mean() / labels.mean())


def _bootstrap_lift(
    labels: np.ndarray, model: np.ndarray, rule: np.ndarray, rounds: int = 1000
) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
    """95 % intervals of the top-decile lift of model and rule and of their difference.

    Paired: each round resamples the test rows with replacement and measures both.
    """
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    found = np.empty((rounds, 2))
    for index in range(rounds):
        rows = rng.integers(0, len(labels), len(labels))
        sample = labels[rows]
        found[index] = _top_decile_lift(sample, model[rows]), _top_decile_lift(sample, rule[rows])

    def interval(values: np.ndarray) -> tuple[float, float]:
        low, high = np.percentile(values, [2.5, 97.5])
        return float(low), float(high)

    return interval(found[:, 0]), interval(found[:, 1]), interval(found[:, 0] - found[:, 1])


def quality(warehouse: Path, as_of: date) -> None:
    """AUC, lift and Brier of each model on an existing warehouse (read only).

    With a bootstrap 95 % interval of the top-decile lifts (model, recency rule, and the
    model's lead over the rule) on the test set.
    """
    logger.info("| model | AUC | AUC recency rule | top-decile lift | lift recency rule | Brier |"
                " test rows | positive rate |")  # fmt: skip
    logger.info("| --- | --- | --- | --- | --- | --- | --- | --- |")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for model in PROPENSITY_MODELS:
            start, cpu_start = time.perf_counter(), _cpu_seconds()
            try:
                result = train_and_score(con, model, as_of)
            except NotEnoughData as error:
                logger.info("| %s | not trained: %s |", model, error)
                continue
            e = result.evaluation
            logger.info(
                "| %s | %.3f | %.3f | %.2f | %.2f | %.4f | %d | %.3f |", model, e.auc,
                e.auc_recency_rule, e.top_decile_lift, e.top_decile_lift_recency_rule, e.brier,
                e.n_test, e.test_positive_rate,
            )  # fmt: skip
            logger.info("  %s: train, evaluate and score in %.1f s wall, %.1f s CPU, peak"
                        " %.0f MB", model, time.perf_counter() - start,
                        _cpu_seconds() - cpu_start, _peak_mb()[0])  # fmt: skip
            if result.classifier is not None:
                _, test = training_sets(con, model, as_of)
                labels, scores, rule = holdout_predictions(model, test, result.classifier)
                lift, lift_rule, lead = _bootstrap_lift(labels, scores, rule)
                logger.info("  %s: bootstrap 95 %% intervals of the top-decile lift: model"
                            " %.2f-%.2f, recency rule %.2f-%.2f, model minus rule %+.2f to"
                            " %+.2f", model, *lift, *lift_rule, *lead)  # fmt: skip


def caps(warehouse: Path, as_of: date) -> None:
    """What the scale caps cost and save: KMeans on FIT_SAMPLE vs all, TRAIN_CAP vs all rows.

    On an existing warehouse (read only), e.g. the one ``scale --work DIR`` keeps.
    """
    from sklearn.metrics import adjusted_rand_score

    from cdp_pipeline.segments.clusters import FIT_SAMPLE, TRAITS_SQL, cluster_profiles
    from cdp_pipeline.segments.propensity import TRAIN_CAP, evaluate

    with duckdb.connect(str(warehouse), read_only=True) as con:
        traits = con.execute(TRAITS_SQL).df()
        logger.info("| clustering | profiles | fitted on | wall s | CPU s |")
        logger.info("| --- | --- | --- | --- | --- |")
        labels = {}
        for name, size in (("FIT_SAMPLE", FIT_SAMPLE), ("all", len(traits))):
            start, cpu_start = time.perf_counter(), _cpu_seconds()
            labels[name] = cluster_profiles(traits, None, fit_size=size).assignments["segment"]
            logger.info("| %s | %d | %d | %.1f | %.1f |", name, len(traits), min(size, len(traits)),
                        time.perf_counter() - start, _cpu_seconds() - cpu_start)  # fmt: skip
        logger.info("adjusted Rand index, sample fit vs full fit: %.3f",
                    adjusted_rand_score(labels["FIT_SAMPLE"], labels["all"]))  # fmt: skip
        del traits, labels
        logger.info("| model | training cap | rows fitted | fit wall s | fit CPU s | AUC |")
        logger.info("| --- | --- | --- | --- | --- | --- |")
        uncapped = {"positives": 10**9, "negatives": 10**9}
        for model in PROPENSITY_MODELS:
            for name, cap in (("TRAIN_CAP", TRAIN_CAP), ("none", uncapped)):
                train, test = training_sets(con, model, as_of, cap)
                start, cpu_start = time.perf_counter(), _cpu_seconds()
                e = evaluate(model, train, test)
                logger.info("| %s | %s | %d | %.1f | %.1f | %.4f |", model, name, len(train),
                            time.perf_counter() - start, _cpu_seconds() - cpu_start,
                            e.auc)  # fmt: skip
                del train, test


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    scale_parser = commands.add_parser("scale")
    scale_parser.add_argument("--profiles", type=int, default=1_000_000)
    scale_parser.add_argument("--work", type=Path, default=None)
    quality_parser = commands.add_parser("quality")
    quality_parser.add_argument("--warehouse", type=Path, required=True)
    quality_parser.add_argument("--as-of", type=date.fromisoformat, default=date(2025, 12, 1))
    caps_parser = commands.add_parser("caps")
    caps_parser.add_argument("--warehouse", type=Path, required=True)
    caps_parser.add_argument("--as-of", type=date.fromisoformat, default=date(2025, 12, 1))
    args = parser.parse_args()
    if args.command == "scale":
        scale(args.profiles, args.work)
    elif args.command == "caps":
        caps(args.warehouse, args.as_of)
    else:
        quality(args.warehouse, args.as_of)


if __name__ == "__main__":
    main()
