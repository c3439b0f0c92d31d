"""Propensity features and labels as of a cut-off, from marts.interactions before it only.

Every feature reads interactions with ``occurred_at < cutoff`` (a bound parameter), so
a model trained on the cut-off of 60 days ago sees exactly what was known then; labels
read only ``[cutoff, cutoff + LABEL_DAYS[model])``. ``tests/test_propensity.py`` proves
that adding events after the cut-off changes no feature.

No sensitive attribute is a feature: nothing about gender, origin, age or address; only
behaviour (tickets, registrations, e-mail, web and app).
"""

from collections.abc import Iterator
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cdp_pipeline.segments.catalog import LABEL_DAYS, PROPENSITY_MODELS

# name -> description; the model card lists them.
FEATURES: dict[str, str] = {
    "days_since_last_purchase": "days from the latest paid ticket order to the cut-off",
    "purchases_30d": "paid ticket orders in the 30 days before the cut-off",
    "purchases_90d": "paid ticket orders in the 90 days before the cut-off",
    "purchases_365d": "paid ticket orders in the 365 days before the cut-off",
    "purchases_total": "paid ticket orders before the cut-off",
    "revenue_365d": "revenue of paid orders in the 365 days before the cut-off (EUR)",
    "culture_purchases_365d": "paid orders of a culture category in 365 days",
    "sport_purchases_365d": "paid orders of category sport in 365 days",
    "registrations_365d": "registrations (not cancelled) in 365 days",
    "sends_90d": "newsletters received in 90 days",
    "opens_30d": "newsletter opens in 30 days",
    "opens_90d": "newsletter opens in 90 days",
    "clicks_30d": "newsletter clicks in 30 days",
    "clicks_90d": "newsletter clicks in 90 days",
    "days_since_last_click": "days from the latest newsletter click to the cut-off",
    "open_rate_90d": "opens / newsletters received in 90 days (missing without any)",
    "click_rate_90d": "clicks / newsletters received in 90 days (missing without any)",
    "days_since_last_open": "days from the latest newsletter open to the cut-off",
    "page_views_7d": "website page views in 7 days",
    "page_views_30d": "website page views in 30 days",
    "event_page_views_30d": "views of event pages (web or app) in 30 days",
    "wishlist_adds_30d": "wishlist adds in 30 days",
    "app_screens_30d": "app screen views in 30 days",
    "days_since_last_seen": "days from the latest interaction of any kind to the cut-off",
}

_CULTURE = ("concert", "theater", "dans", "familie", "expo", "film")

# $cutoff is bound; the table names are module constants (test warehouses use the same).
_FEATURES_SQL = f"""
with events as (
    select profile_id, interaction_type, occurred_at, category, amount_eur, status, item_name,
        event_id, date_diff('second', occurred_at, $cutoff) / 86400.0 as age_days
    from marts.interactions
    where profile_id is not null and occurred_at < $cutoff
),

features as (
    select
        profile_id,
        min(age_days) filter (where interaction_type = 'ticket_purchase')
            as days_since_last_purchase,
        count(*) filter (where interaction_type = 'ticket_purchase' and age_days < 30)
            as purchases_30d,
        count(*) filter (where interaction_type = 'ticket_purchase' and age_days < 90)
            as purchases_90d,
        count(*) filter (where interaction_type = 'ticket_purchase' and age_days < 365)
            as purchases_365d,
        count(*) filter (where interaction_type = 'ticket_purchase') as purchases_total,
        coalesce(sum(amount_eur) filter (
            where interaction_type = 'ticket_purchase' and age_days < 365), 0) as revenue_365d,
        count(*) filter (where interaction_type = 'ticket_purchase' and age_days < 365
            and lower(category) in {_CULTURE}) as culture_purchases_365d,
        count(*) filter (where interaction_type = 'ticket_purchase' and age_days < 365
            and lower(category) = 'sport') as sport_purchases_365d,
        count(*) filter (where interaction_type = 'registration' and age_days < 365
            and coalesce(status, '') <> 'cancelled') as registrations_365d,
        count(*) filter (where interaction_type = 'email_sent' and age_days < 90) as sends_90d,
        count(*) filter (where interaction_type = 'email_open' and age_days < 30) as opens_30d,
        count(*) filter (where interaction_type = 'email_open' and age_days < 90) as opens_90d,
        count(*) filter (where interaction_type = 'email_click' and age_days < 30) as clicks_30d,
        count(*) filter (where interaction_type = 'email_click' and age_days < 90) as clicks_90d,
        min(age_days) filter (where interaction_type = 'email_click') as days_since_last_click,
        min(age_days) filter (where interaction_type = 'email_open') as days_since_last_open,
        count(*) filter (where interaction_type = 'page' and age_days < 7) as page_views_7d,
        count(*) filter (where interaction_type = 'page' and age_days < 30) as page_views_30d,
        count(*) filter (where interaction_type in ('page', 'screen') and age_days < 30
            and event_id is not null) as event_page_views_30d,
        count(*) filter (where interaction_type = 'track' and item_name = 'Added to Wishlist'
            and age_days < 30) as wishlist_adds_30d,
        count(*) filter (where interaction_type = 'screen' and age_days < 30) as app_screens_30d,
        min(age_days) as days_since_last_seen,
        count(*) filter (where interaction_type = 'email_open' and age_days < 90)
            / nullif(count(*) filter (where interaction_type = 'email_sent' and age_days < 90), 0)
            as open_rate_90d,
        count(*) filter (where interaction_type = 'email_click' and age_days < 90)
            / nullif(count(*) filter (where interaction_type = 'email_sent' and age_days < 90), 0)
            as click_rate_90d
    from events
    group by profile_id
),

eligible as (
    select profile_id from marts.profiles
    where profile_id not in (
        select profile_id from marts.consent_state
        where purpose = 'profiling' and status = 'withdrawn'
    )
)

select eligible.profile_id, features.* exclude (profile_id)
from eligible
left join features on eligible.profile_id = features.profile_id
order by eligible.profile_id
"""

_TICKET_LABEL_SQL = """
select distinct profile_id
from marts.interactions
where interaction_type = 'ticket_purchase' and profile_id is not null
    and occurred_at >= $cutoff and occurred_at < $label_end
"""

# The first newsletter sent in the window, and whether it was clicked in the window.
_CLICK_LABEL_SQL = """
with sends as (
    select profile_id, campaign_id, occurred_at,
        row_number() over (partition by profile_id order by occurred_at, campaign_id) as n
    from marts.interactions
    where interaction_type = 'email_sent' and profile_id is not null
        and occurred_at >= $cutoff and occurred_at < $label_end
),

clicks as (
    select distinct profile_id, campaign_id
    from marts.interactions
    where interaction_type = 'email_click' and profile_id is not null
        and occurred_at >= $cutoff and occurred_at < $label_end
)

select sends.profile_id, clicks.profile_id is not null as clicked
from sends
left join clicks on sends.profile_id = clicks.profile_id and sends.campaign_id = clicks.campaign_id
where sends.n = 1
"""


def features_at(con: duckdb.DuckDBPyConnection, cutoff: datetime) -> pd.DataFrame:
    """One row per profile that may be profiled, with the features as of ``cutoff``.

    Counts without events are 0; "days since" without an event stays NaN (the gradient
    boosting model treats missing values as their own branch).
    """
    frame = con.execute(_FEATURES_SQL, {"cutoff": cutoff}).df()
    counts = [c for c in FEATURES if _is_count(c)]
    frame[counts] = frame[counts].fillna(0)
    frame[list(FEATURES)] = frame[list(FEATURES)].astype("float64")
    return frame


def _is_count(name: str) -> bool:
    return not name.startswith("days_since") and "_rate_" not in name


def feature_batches(
    con: duckdb.DuckDBPyConnection, cutoff: datetime, batch_rows: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The rows of ``features_at`` as (profile_ids, float matrix) per Arrow batch.

    For scoring a million profiles: DuckDB streams Arrow record batches and each column
    goes to numpy directly, with no data frame of the whole population in memory.
    """
    relation = con.sql(_FEATURES_SQL, params={"cutoff": cutoff})
    reader = relation.to_arrow_reader(batch_rows)
    for batch in reader:
        matrix = np.empty((batch.num_rows, len(FEATURES)))
        for index, name in enumerate(FEATURES):
            column = pc.cast(batch.column(name), pa.float64())
            if _is_count(name):
                column = pc.fill_null(column, 0.0)
            matrix[:, index] = column.to_numpy(zero_copy_only=False)
        profile_ids = batch.column("profile_id").to_numpy(zero_copy_only=False)
        yield profile_ids, matrix


def labels_at(con: duckdb.DuckDBPyConnection, model: str, cutoff: datetime) -> pd.Series:
    """Label per profile_id for ``model`` at ``cutoff`` (missing = not labelled)."""
    params = {"cutoff": cutoff, "label_end": cutoff + timedelta(days=LABEL_DAYS[model])}
    if model == "ticket_purchase_30d":
        buyers = {row[0] for row in con.execute(_TICKET_LABEL_SQL, params).fetchall()}
        return pd.Series({profile_id: True for profile_id in buyers}, dtype=bool)
    if model == "newsletter_click":
        rows = con.execute(_CLICK_LABEL_SQL, params).fetchall()
        return pd.Series(dict(rows), dtype=bool)
    raise ValueError(f"unknown propensity model {model!r}")


def training_frame(con: duckdb.DuckDBPyConnection, model: str, cutoff: datetime) -> pd.DataFrame:
    """Features at ``cutoff`` joined with the labels of the LABEL_DAYS after it.

    ticket_purchase_30d labels every eligible profile (no purchase = False);
    newsletter_click only profiles that were sent a newsletter in the window.
    """
    frame = features_at(con, cutoff)
    labels = labels_at(con, model, cutoff)
    if model == "ticket_purchase_30d":
        frame["label"] = frame["profile_id"].isin(labels.index)
    else:
        frame = frame[frame["profile_id"].isin(labels.index)].copy()
        frame["label"] = frame["profile_id"].map(labels).astype(bool)
    frame["cutoff"] = cutoff
    return frame


__all__ = ["FEATURES", "LABEL_DAYS", "PROPENSITY_MODELS", "features_at", "training_frame"]
