"""Incremental nights: only new or changed records are scored and re-resolved, same result.

Generated records of a few hundred people (accounts, ticket orders, newsletter
sign-ups with typos and namesakes) are resolved once; a second night adds 1 % new
records and changes one. The incremental night must give the same partition of
records into profiles as a full run on the same input, while scoring far fewer
pairs and re-resolving far fewer records (counts from the run's statistics, not
from time). A *twin* warehouse, copied after night 1 and made to forget its
incremental state, runs night 2 in full from the same previous ids: every identity
table must then be equal row for row (but for when a row was written), for new
records, a changed record that bridges two profiles, an erased record and a new
manual decision.
"""

import random
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from test_identity import profiles, rec, write_inputs

from cdp_pipeline.identity import incremental
from cdp_pipeline.identity.config import load_config, parse_config
from cdp_pipeline.identity.decisions import Decisions
from cdp_pipeline.identity.prepare import prepare_records
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


def _tables(folder: Path) -> dict[str, set[tuple]]:
    """The identity tables without the run id and time that say which night wrote a row."""
    queries = {
        "record_profiles": "select * exclude (run_id, assigned_at) from identity.record_profiles",
        "links": "select * exclude (run_id) from identity.links",
        "link_evidence": "select * exclude (run_id) from identity.link_evidence",
        "golden_attributes": "select * from identity.golden_attributes",
        "review_queue": "select * from identity.review_queue",
        "profile_history": "select run_id, profile_id, change, other_profile_id, n_records "
        "from identity.profile_history",
    }
    con = duckdb.connect(str(folder / "cdp.duckdb"))
    try:
        return {name: set(con.execute(sql).fetchall()) for name, sql in queries.items()}
    finally:
        con.close()


def _incremental_and_full(
    tmp_path: Path, first: list[dict], second: list[dict], **night_2
) -> tuple[ResolutionStats, ResolutionStats, dict, dict]:
    """Night 2 incrementally and, on a copy of night 1, in full; both tables and stats."""
    steady, twin = tmp_path / "steady", tmp_path / "twin"
    steady.mkdir()
    _run(steady, first, "night-1")
    shutil.copytree(steady, twin)
    con = duckdb.connect(str(twin / "cdp.duckdb"))
    con.execute("drop table identity.resolution_meta")  # forget the state: a full night
    con.close()
    incremental, _ = _run(steady, second, "night-2", **night_2)
    full, _ = _run(twin, second, "night-2", **night_2)
    assert incremental.records_reclustered < incremental.records * 0.2
    assert full.records_reclustered == full.records
    return incremental, full, _tables(steady), _tables(twin)


def _person_pair() -> tuple[list[dict], dict, dict]:
    """Two records of one person that nothing links on night 1 (other e-mail and postcode)."""
    person = {"first_name": "bertilde", "last_name": "quasimodo", "birth_date": "1971-03-04"}
    account = rec("aprofiel", "ap-bq", email="bertilde.q@mail.be", postcode="2000", **person)
    order = rec(
        "ticketing",
        "T-bq",
        first_name="bertilde",
        last_name="quasimodo",
        email="bq.tickets@mail.be",
        postcode="2660",
    )
    return [account, order], account, order


def test_new_and_changed_records_give_the_tables_of_a_full_night(tmp_path: Path, nights) -> None:
    first, second = nights
    incremental, full, steady, twin = _incremental_and_full(tmp_path, first, second)
    assert incremental.incremental and incremental.records_reclustered > 0
    assert steady == twin
    assert incremental.profiles == full.profiles
    assert incremental.links_by_type == full.links_by_type


def test_a_changed_record_bridging_two_profiles(tmp_path: Path, nights) -> None:
    first, _ = nights
    pair, _, order = _person_pair()
    before = [*first, *pair]
    after = [dict(r) for r in before]
    changed = next(r for r in after if r["record_id"] == order["record_id"])
    changed["email"] = "bertilde.q@mail.be"  # now the account's e-mail: one person
    incremental, _, steady, twin = _incremental_and_full(tmp_path, before, after)
    assert steady == twin
    owner = {row[0]: row[4] for row in steady["record_profiles"]}  # record_id, profile_id
    assert owner[pair[0]["record_id"]] == owner[order["record_id"]]
    assert incremental.history.get("merged") == 1
    assert ("night-2", owner[order["record_id"]], "merged") in {
        row[:3] for row in steady["profile_history"]
    }


def test_an_erased_record(tmp_path: Path, nights) -> None:
    first, _ = nights
    # The account of a person with several records goes: the rest stays one profile.
    account = next(
        r
        for r in first
        if r["source"] == "aprofiel"
        and sum(1 for o in first if o["record_key"].startswith(f"T-{r['record_key'][3:]}-")) >= 2
    )
    second = [r for r in first if r["record_id"] != account["record_id"]]
    incremental, _, steady, twin = _incremental_and_full(tmp_path, first, second)
    assert steady == twin
    assert account["record_id"] not in {row[0] for row in steady["record_profiles"]}
    assert all(account["record_id"] not in row[:2] for row in steady["links"])
    assert incremental.records == len(second)


def test_a_new_manual_decision(tmp_path: Path, nights) -> None:
    first, _ = nights
    pair, account, order = _person_pair()
    records = [*first, *pair]
    join = Decisions(
        same=frozenset({tuple(sorted((account["record_id"], order["record_id"])))}),
        different=frozenset(),
    )
    incremental, _, steady, twin = _incremental_and_full(tmp_path, records, records, decisions=join)
    assert steady == twin
    owner = {row[0]: row[4] for row in steady["record_profiles"]}  # record_id, profile_id
    assert owner[account["record_id"]] == owner[order["record_id"]]
    assert incremental.links_by_type.get("manual") == 1
    assert incremental.history.get("merged") == 1


def test_a_new_manual_split(tmp_path: Path, nights) -> None:
    first, _ = nights
    account = next(r for r in first if r["record_key"] == "ap-0")
    order = next(r for r in first if r["record_key"] == "T-0-0")
    apart = Decisions(
        same=frozenset(),
        different=frozenset({tuple(sorted((account["record_id"], order["record_id"])))}),
    )
    check = tmp_path / "check"
    check.mkdir()
    _, before = _run(check, first, "night-1")
    assert before[account["record_id"]] == before[order["record_id"]]  # one profile on night 1

    incremental, _, steady, twin = _incremental_and_full(tmp_path, first, first, decisions=apart)
    assert steady == twin
    owner = {row[0]: row[4] for row in steady["record_profiles"]}  # record_id, profile_id
    assert owner[account["record_id"]] != owner[order["record_id"]]
    assert incremental.history.get("split", 0) >= 1
    assert ("night-2", "split") in {(row[0], row[2]) for row in steady["profile_history"]}


def test_normalised_rows_from_last_night_equal_a_fresh_normalisation(
    tmp_path: Path, nights
) -> None:
    first, second = nights
    config = load_config()
    con = duckdb.connect()
    try:
        write_inputs(con, first)
        before = con.sql("select * from intermediate.int_identity__records").pl()
        write_inputs(con, second)
        after = con.sql("select * from intermediate.int_identity__records").pl()
    finally:
        con.close()
    incremental.prepare(before, config, tmp_path, "k1")
    cached, _ = incremental.prepare(after, config, tmp_path, "k1")
    assert cached.equals(prepare_records(after, config))
    assert [p.name for p in tmp_path.glob("prepared_rows.*")] == ["prepared_rows.k1.parquet"]


def test_a_third_night_reuses_the_guard_verdicts_and_equals_a_full_night(
    tmp_path: Path, nights
) -> None:
    """Night 3 reads the pair guards' verdicts night 2 wrote (hits and fresh ones)."""
    first, second = nights
    third = [dict(r) for r in second]
    changed = next(r for r in third if r["source"] == "ticketing")
    changed["postcode"] = "2140" if changed["postcode"] != "2140" else "2000"
    steady, twin = tmp_path / "steady", tmp_path / "twin"
    steady.mkdir()
    _run(steady, first, "night-1")
    _run(steady, second, "night-2")
    cache = list((steady / "state").glob(incremental.GUARD_CACHE.format(key="*", token="*")))
    assert len(cache) == 1
    shutil.copytree(steady, twin)
    con = duckdb.connect(str(twin / "cdp.duckdb"))
    con.execute("drop table identity.resolution_meta")
    con.close()
    night_3, _ = _run(steady, third, "night-3")
    full, _ = _run(twin, third, "night-3")
    assert night_3.incremental and 0 < night_3.records_reclustered < night_3.records * 0.2
    assert full.records_reclustered == full.records
    assert _tables(steady) == _tables(twin)


def test_refused_pairs_do_not_grow_the_scope() -> None:
    """A pair the guards refuse is no edge; a qualifying name group is a key, others not."""
    outcomes = incremental.guard_outcomes(
        pl.DataFrame(
            {"unique_id_l": ["a", "c"], "unique_id_r": ["b", "d"], "match_weight": [9.0, 9.0]}
        ),
        pl.Series(["a", "b", "c", "d"]),
        pl.DataFrame(
            {
                "unique_id_l": ["a"],
                "unique_id_r": ["b"],
                "match_weight": [9.0],
                "accepted": [False],
            }
        ),
        lambda judged: judged.select("unique_id_l", "unique_id_r"),
    )
    edges = incremental.dependency_edges(
        outcomes, Decisions(frozenset(), frozenset()), pl.Series(["a", "b", "c", "d"])
    )
    assert sorted(edges.rows()) == [("c", "d")]
    # Judged again when the weight differs from the cached one.
    rejudged = incremental.guard_outcomes(
        pl.DataFrame({"unique_id_l": ["a"], "unique_id_r": ["b"], "match_weight": [8.0]}),
        pl.Series(["a", "b"]),
        outcomes,
        lambda judged: judged.select("unique_id_l", "unique_id_r"),
    )
    assert rejudged["accepted"].to_list() == [True]


def test_review_pairs_carry_tonight_s_profile_ids(tmp_path: Path, nights) -> None:
    """With a review band, a pair touching a re-resolved record names its new profile."""
    data = load_config().model_dump()
    data["thresholds"] = {"match_probability": 0.995, "review_match_probability": 0.05}
    config = parse_config(data)
    first, _ = nights
    pair, _, order = _person_pair()
    # A namesake elsewhere: uncertain against the bridged person, so a review pair.
    namesake = rec(
        "ticketing",
        "T-w",
        first_name="bertilde",
        last_name="quasimodo",
        email="bq.w@mail.be",
        postcode="9000",
    )
    before = [*first, *pair, namesake]
    after = [dict(r) for r in before]
    next(r for r in after if r["record_id"] == order["record_id"])["email"] = "bertilde.q@mail.be"
    steady, twin = tmp_path / "steady", tmp_path / "twin"
    steady.mkdir()
    _run(steady, before, "night-1", config=config)
    shutil.copytree(steady, twin)
    con = duckdb.connect(str(twin / "cdp.duckdb"))
    con.execute("drop table identity.resolution_meta")  # forget the state: a full night
    con.close()
    incremental, _ = _run(steady, after, "night-2", config=config)
    _run(twin, after, "night-2", config=config)
    assert incremental.incremental
    steady_tables, twin_tables = _tables(steady), _tables(twin)
    assert steady_tables["review_queue"], "the namesake should give a review pair"
    assert steady_tables == twin_tables
