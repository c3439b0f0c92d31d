"""Incremental nights: only pairs with a new or changed record are scored, same result.

Generated records of a few hundred people (accounts, ticket orders, newsletter
sign-ups with typos and namesakes) are resolved once; a second night adds 1 % new
records and changes one. The incremental night must give the same partition of
records into profiles as a full run on the same input, while scoring far fewer
pairs (the count comes from the run's statistics, not from time).
"""

import random
from pathlib import Path

import duckdb
import pytest
from test_identity import profiles, rec, write_inputs

from cdp_pipeline.identity.config import load_config, parse_config
from cdp_pipeline.identity.resolve import ResolutionStats, resolve

FIRST = [
    "an",
    "jan",
    "els",
    "tom",
    "sara",
    "noor",
    "pieter",
    "fatima",
    "youssef",
    "emma",
    "lucas",
    "lotte",
    "mohamed",
    "ines",
    "wout",
    "hanne",
    "kobe",
    "lina",
    "arne",
    "zoe",
]
LAST = [
    "peeters",
    "janssens",
    "maes",
    "jacobs",
    "mertens",
    "willems",
    "claes",
    "goossens",
    "wouters",
    "de smet",
    "el amrani",
    "yilmaz",
    "kowalski",
    "van den broeck",
    "dubois",
]
STREETS = ["lange nieuwstraat", "meir", "kammenstraat", "turnhoutsebaan", "kiel", "de keyserlei"]
POSTCODES = ["2000", "2018", "2060", "2100", "2140"]


def _typo(rng: random.Random, text: str) -> str:
    i = rng.randrange(1, len(text))
    return text[:i] + text[i + 1 :] if rng.random() < 0.5 else text[:i] + text[i - 1] + text[i:]


def _person(rng: random.Random, n: int) -> dict:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return {
        "first_name": first,
        "last_name": last,
        "birth_date": f"{rng.randint(1950, 2005)}-{rng.randint(1, 12):02d}-"
        f"{rng.randint(1, 28):02d}",
        "email": f"{first}.{last.replace(' ', '')}{n}@mail.be",
        "phone": f"04{rng.randint(70, 99)}{rng.randint(100000, 999999)}",
        "street": rng.choice(STREETS),
        "house_number": str(rng.randint(1, 200)),
        "postcode": rng.choice(POSTCODES),
    }


def _records_of(rng: random.Random, n: int, person: dict) -> list[dict]:
    """An account, one to three ticket orders and sometimes a newsletter sign-up."""
    out = [rec("aprofiel", f"ap-{n}", **person)]
    for k in range(rng.randint(1, 3)):
        first = _typo(rng, person["first_name"]) if rng.random() < 0.2 else person["first_name"]
        out.append(
            rec(
                "ticketing",
                f"T-{n}-{k}",
                first_name=first,
                last_name=person["last_name"],
                email=person["email"] if rng.random() < 0.5 else None,
                phone=person["phone"] if rng.random() < 0.3 else None,
                postcode=person["postcode"],
            )
        )
    if rng.random() < 0.4:
        out.append(
            rec(
                "newsletter",
                f"cultuur:{person['email']}",
                email=person["email"],
                first_name=person["first_name"],
                last_name=person["last_name"],
            )
        )
    return out


def _delivery(people: int, seed: int = 11) -> list[dict]:
    rng = random.Random(seed)
    records: list[dict] = []
    for n in range(people):
        records += _records_of(rng, n, _person(rng, n))
    return records


def _partition(ids: dict[str, str]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for record_id, profile_id in ids.items():
        groups.setdefault(profile_id, set()).add(record_id)
    return {frozenset(group) for group in groups.values()}


def _run(folder: Path, records: list[dict], run_id: str, **kwargs) -> tuple[ResolutionStats, dict]:
    con = duckdb.connect(str(folder / "cdp.duckdb"))
    try:
        write_inputs(con, records)
        stats = resolve(con, run_id, state_dir=folder / "state", **kwargs)
        return stats, profiles(con)
    finally:
        con.close()


@pytest.fixture(scope="module")
def nights() -> tuple[list[dict], list[dict]]:
    first = _delivery(150)
    rng = random.Random(99)
    second = [dict(r) for r in first]
    # One record changed (a new phone on an account) and 1 % new records: orders of
    # people already known and records of a few new people.
    account = next(r for r in second if r["source"] == "aprofiel")
    account["phone"] = "0499123456"
    extra = max(1, len(first) // 100)
    known = [r for r in first if r["source"] == "aprofiel"]
    for k in range(extra // 2):
        person = rng.choice(known)
        second.append(
            rec(
                "ticketing",
                f"T-new-{k}",
                first_name=person["first_name"],
                last_name=person["last_name"],
                email=person["email"],
                postcode=person["postcode"],
            )
        )
    for n in range(1000, 1000 + extra - extra // 2):
        second.append(
            rec(
                "ticketing",
                f"T-{n}-0",
                **{k: v for k, v in _person(rng, n).items() if k != "birth_date"},
            )
        )
    assert len(second) - len(first) == extra
    return first, second


def test_incremental_night_equals_a_full_night(tmp_path: Path, nights) -> None:
    first, second = nights
    steady, fresh = tmp_path / "steady", tmp_path / "fresh"
    steady.mkdir()
    fresh.mkdir()

    night_1, _ = _run(steady, first, "night-1")
    assert not night_1.incremental
    assert night_1.records_rescored == night_1.records
    night_2, incremental_ids = _run(steady, second, "night-2")
    full, full_ids = _run(fresh, second, "full")

    assert night_2.incremental and not full.incremental
    new_records = len(second) - len(first)
    assert night_2.records_rescored == new_records + 1  # the new ones and the changed account
    assert _partition(incremental_ids) == _partition(full_ids)
    assert len(_partition(full_ids)) < len(second) * 0.6  # the data does link: not all single
    assert 0 < night_2.pairs_scored < full.pairs_scored * 0.1


def test_config_change_or_retrain_scores_every_pair(tmp_path: Path, nights) -> None:
    first, _ = nights
    full, _ = _run(tmp_path, first, "night-1")
    again, _ = _run(tmp_path, first, "night-2")
    assert again.incremental and again.pairs_scored == 0 and again.records_rescored == 0

    retrained, _ = _run(tmp_path, first, "night-3", retrain=True)
    assert not retrained.incremental and retrained.pairs_scored == full.pairs_scored

    data = load_config().model_dump()
    data["thresholds"] = {"match_probability": 0.995, "review_match_probability": 0.9}
    changed, _ = _run(tmp_path, first, "night-4", config=parse_config(data))
    assert not changed.incremental and changed.pairs_scored == full.pairs_scored
