"""Automatic segments: stable labels from run to run, descriptions, who is clustered."""

import duckdb
import numpy as np
import pandas as pd
import pytest

from cdp_pipeline.segments.clusters import (
    N_CLUSTERS,
    TRAITS_SQL,
    NotEnoughProfiles,
    auto_segment_names,
    cluster_profiles,
    fit_sample,
    previous_from_frames,
)

# Six kinds of people, each with the traits that set it apart.
KINDS: dict[str, dict] = {
    "families": {"has_children": True, "registrations_sportkamp": 3, "age_band": "35-44",
                 "district": "Deurne"},
    "culture": {"culture_ticket_purchases": 6, "ticket_purchases": 6, "ticket_revenue_eur": 300,
                "ticket_recency_days": 10, "favourite_category": "concert",
                "age_band": "55-64"},
    "sport": {"sport_ticket_purchases": 5, "ticket_purchases": 5, "ticket_revenue_eur": 200,
              "ticket_recency_days": 20, "favourite_category": "sport", "age_band": "25-34"},
    "readers": {"email_opens_90d": 12, "email_clicks_90d": 6, "age_band": "65+"},
    "app": {"app_sessions_90d": 15, "web_sessions_90d": 2, "age_band": "18-24"},
    "quiet": {},
}  # fmt: skip

BASE = {
    "district": "Antwerpen", "age_band": "45-54", "has_children": False,
    "ticket_recency_days": None, "ticket_purchases": 0, "ticket_revenue_eur": 0.0,
    "culture_ticket_purchases": 0, "sport_ticket_purchases": 0, "favourite_category": None,
    "registrations_sportkamp": 0, "registrations_cursus": 0, "registrations_bibliotheek": 0,
    "registrations_evenement": 0, "email_opens_90d": 0, "email_clicks_90d": 0,
    "web_sessions_90d": 0, "app_sessions_90d": 0, "wishlist_adds": 0,
}  # fmt: skip


def _traits(per_kind: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for kind, traits in KINDS.items():
        for i in range(per_kind):
            row = {"profile_id": f"{kind}-{i:03d}", **BASE, **traits}
            for name in ("ticket_purchases", "email_opens_90d", "app_sessions_90d"):
                row[name] = max(0, row[name] + int(rng.integers(-1, 2)))
            rows.append(row)
    return pd.DataFrame(rows)


def _labels(assignments: pd.DataFrame) -> dict[str, str]:
    return dict(zip(assignments["profile_id"], assignments["segment"], strict=True))


def test_labels_survive_a_rerun_with_a_few_changed_profiles() -> None:
    first_traits = _traits(40, seed=1)
    first = cluster_profiles(first_traits, previous=None)
    assert sorted(first.clusters["segment"]) == sorted(auto_segment_names())

    # Next night: five families became quiet, ten new app users, the rest as before.
    second_traits = first_traits.copy()
    changed = second_traits["profile_id"].isin([f"families-{i:03d}" for i in range(5)])
    for column, value in BASE.items():
        second_traits.loc[changed, column] = value
    newcomers = (
        _traits(10, seed=2)
        .query("profile_id.str.startswith('app')")
        .assign(profile_id=lambda f: "new-" + f["profile_id"])
    )
    second_traits = pd.concat([second_traits, newcomers], ignore_index=True)
    previous = previous_from_frames(first.assignments, first.clusters)
    second = cluster_profiles(second_traits, previous)

    before, after = _labels(first.assignments), _labels(second.assignments)
    unchanged = [p for p in before if not p.startswith("families-00") or p >= "families-005"]
    kept = sum(before[p] == after[p] for p in unchanged)
    assert kept == len(unchanged)
    assert (second.clusters["matched_overlap"] >= 0.75).all()
    # Without the previous run's memory the same data could come out in another order.
    assert set(after.values()) == set(auto_segment_names())


def test_a_fit_on_a_sample_labels_everyone_and_keeps_labels() -> None:
    traits = _traits(60, seed=1)
    full = cluster_profiles(traits, previous=None)
    sampled = cluster_profiles(traits, previous=None, fit_size=120)
    assert len(sampled.assignments) == 360
    # Same people together as with the full fit (the kinds are well apart).
    pairs = pd.crosstab(full.assignments["segment"], sampled.assignments["segment"])
    assert ((pairs > 0).sum(axis=1) == 1).all()
    # The sample is picked by id hash: the same profiles again, whatever the row order.
    shuffled = traits.sample(frac=1.0, random_state=5)["profile_id"].reset_index(drop=True)
    picked = set(traits["profile_id"].iloc[fit_sample(traits["profile_id"], 120)])
    assert picked == set(shuffled.iloc[fit_sample(shuffled, 120)])
    again = cluster_profiles(
        traits, previous_from_frames(sampled.assignments, sampled.clusters), fit_size=120
    )
    assert again.assignments["segment"].tolist() == sampled.assignments["segment"].tolist()
    assert (again.clusters["matched_overlap"] == 1.0).all()


def test_labels_follow_members_not_cluster_order() -> None:
    traits = _traits(40, seed=1)
    first = cluster_profiles(traits, previous=None)
    # A previous run that called the clusters by other names: the labels follow the members.
    renamed = {name: auto_segment_names()[(i + 1) % N_CLUSTERS]
               for i, name in enumerate(auto_segment_names())}  # fmt: skip
    previous = previous_from_frames(
        first.assignments.assign(segment=first.assignments["segment"].map(renamed)),
        first.clusters.assign(segment=first.clusters["segment"].map(renamed)),
    )
    second = cluster_profiles(traits, previous)
    before, after = _labels(first.assignments), _labels(second.assignments)
    assert all(after[p] == renamed[before[p]] for p in before)


def test_clusters_are_described_by_their_dominant_traits() -> None:
    result = cluster_profiles(_traits(40, seed=1), previous=None)
    labels = _labels(result.assignments)
    descriptions = dict(zip(result.clusters["segment"], result.clusters["description"],
                            strict=True))  # fmt: skip
    families = descriptions[labels["families-000"]]
    assert "families with children" in families and "sport camps" in families
    assert "Deurne" in families
    assert "culture lovers" in descriptions[labels["culture-000"]]
    assert "mostly concert" in descriptions[labels["culture-000"]]
    assert "app users" in descriptions[labels["app-000"]]
    assert descriptions[labels["quiet-000"]] == "quiet profiles"


def test_too_few_profiles_give_a_clear_message() -> None:
    with pytest.raises(NotEnoughProfiles, match=r"at least 60 profiles .* found 12"):
        cluster_profiles(_traits(2, seed=1), previous=None)


def test_only_known_adults_with_profiling_allowed_are_clustered() -> None:
    con = duckdb.connect()
    columns = ", ".join(f"{name} varchar" if isinstance(value, str) or value is None
                        else f"{name} double" for name, value in BASE.items())  # fmt: skip
    con.execute("create schema marts")
    con.execute(
        f"create table marts.profile_traits (profile_id varchar, is_known boolean,"
        f" consent_profiling varchar, {columns})"
    )
    con.execute(
        "insert into marts.profile_traits (profile_id, is_known, consent_profiling, age_band)"
        " values ('ok', true, 'granted', '35-44'), ('unknown', true, 'unknown', null),"
        " ('objects', true, 'withdrawn', '35-44'), ('anonymous', false, 'unknown', null),"
        " ('child', true, 'unknown', '0-17')"
    )
    assert [row[0] for row in con.execute(TRAITS_SQL).fetchall()] == ["ok", "unknown"]
