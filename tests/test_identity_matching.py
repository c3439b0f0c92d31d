"""Matching behaviour the guards and comparisons must get right in general.

A personal identifier (``person_id``) that agrees is not vetoed by the household
guards (a first name replaced in one system), while a household's twins with
their own identifiers stay two; swapped first and last names meet in blocking.
The data is far below ``training.min_records``: scores use the prior m/u values.
"""

from pathlib import Path

import duckdb
import pytest
from test_identity import profiles, rec, write_inputs

from cdp_pipeline.identity.config import load_config, parse_config
from cdp_pipeline.identity.resolve import resolve


@pytest.fixture()
def warehouse(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "cdp.duckdb"))
    yield con, tmp_path / "state"
    con.close()


def _with_national_id(con: duckdb.DuckDBPyConnection, ids: dict[str, str]) -> None:
    con.execute("alter table intermediate.int_identity__records add column national_id varchar")
    for record_id, national_id in ids.items():
        con.execute(
            "update intermediate.int_identity__records set national_id = ? where record_id = ?",
            [national_id, record_id],
        )


def _config_with_national_id():
    data = load_config().model_dump()
    data["attributes"]["national_id"] = {
        "comparison": "person_id",
        "column": "national_id",
        "block": True,
    }
    data["blocking_rules"] = [*data["blocking_rules"], ["national_id"]]
    return parse_config(data)


def test_agreeing_person_id_overrides_the_first_name_veto(warehouse) -> None:
    con, state = warehouse
    household = {
        "street": "Kiel",
        "house_number": "5",
        "postcode": "2020",
        "last_name": "Peeters",
        "birth_date": "2001-04-05",
    }
    write_inputs(
        con,
        [
            rec("registrations", "R-1", "participant", first_name="Marie", **household),
            # The same person: the first name was replaced in this system, the id agrees.
            rec("registrations", "R-2", "participant", first_name="Anna", **household),
            # A twin: same surname, birth date and address, another first name and id.
            rec("registrations", "R-3", "participant", first_name="Lotte", **household),
        ],
    )
    _with_national_id(
        con,
        {
            "registrations|participant|R-1": "01040512345",
            "registrations|participant|R-2": "01040512345",
            "registrations|participant|R-3": "01040512533",
        },
    )
    config = _config_with_national_id()
    stats = resolve(con, "run-1", config, state_dir=state)
    ids = profiles(con)
    assert ids["registrations|participant|R-1"] == ids["registrations|participant|R-2"]
    assert ids["registrations|participant|R-3"] != ids["registrations|participant|R-1"]
    assert stats.links_by_type.get("splink") == 1

    # Without the identifier the first-name veto (or the twins guard) keeps all three apart.
    off = parse_config(
        {
            **config.model_dump(),
            "attributes": load_config().model_dump()["attributes"],
            "blocking_rules": load_config().blocking_rules,
        }
    )
    resolve(con, "run-2", off, state_dir=state)
    assert len(set(profiles(con).values())) == 3


def test_swapped_names_meet_in_blocking(warehouse) -> None:
    con, state = warehouse
    write_inputs(
        con,
        [
            rec(
                "aprofiel",
                "ap-1",
                first_name="Jan",
                last_name="Wouters",
                postcode="2000",
                birth_date="1970-01-01",
                email="jan@wouters.be",
            ),
            rec("ticketing", "T-1", first_name="Wouters", last_name="Jan", postcode="2000"),
        ],
    )
    data = load_config().model_dump()
    data["thresholds"] = {"match_probability": 0.99, "review_match_weight": -10.0}
    data["blocking_rules"] = [["first_name", "last_name"]]
    resolve(con, "run-1", parse_config(data), state_dir=state)
    pairs = con.execute(
        "select record_id_l, record_id_r, evidence from identity.review_queue"
    ).fetchall()
    assert [(left, right) for left, right, _ in pairs] == [
        ("aprofiel|account|ap-1", "ticketing|buyer|T-1")
    ]
    assert '"swapped with last name"' in pairs[0][2]


def test_nameless_record_joins_an_e_mail_of_one_person_only(warehouse) -> None:
    con, state = warehouse
    write_inputs(
        con,
        [
            rec(
                "ticketing",
                "T-1",
                first_name="Nadiya",
                last_name="Fernandes",
                email="nadiya.fernandes@telenet.be",
                postcode="2018",
            ),
            # A typo in the first name: the names alone do not say it is one person,
            # the model does (same e-mail and surname, first names one letter apart).
            rec(
                "ticketing",
                "T-2",
                first_name="Naddiya",
                last_name="Fernandes",
                email="nadiya.fernandes@telenet.be",
                postcode="2018",
            ),
            rec(
                "newsletter",
                "cultuur:nadiya.fernandes@telenet.be",
                email="nadiya.fernandes@telenet.be",
            ),
            # A family address: two people, and a sign-up that could be either of them.
            rec("ticketing", "T-3", first_name="Jan", last_name="Claes", email="fam@claes.be"),
            rec("ticketing", "T-4", first_name="Els", last_name="Claes", email="fam@claes.be"),
            rec("newsletter", "cultuur:fam@claes.be", email="fam@claes.be"),
        ],
    )
    resolve(con, "run-1", state_dir=state)
    ids = profiles(con)
    assert (
        len(
            {
                ids["ticketing|buyer|T-1"],
                ids["ticketing|buyer|T-2"],
                ids["newsletter|subscriber|cultuur:nadiya.fernandes@telenet.be"],
            }
        )
        == 1
    )
    family = {
        ids["ticketing|buyer|T-3"],
        ids["ticketing|buyer|T-4"],
        ids["newsletter|subscriber|cultuur:fam@claes.be"],
    }
    assert len(family) == 3


def test_name_and_postcode_leaves_common_names_alone() -> None:
    import polars as pl

    from cdp_pipeline.identity.resolve import _name_postcode_groups

    # 40 people in 2000: ten are called Jan, ten Peeters (a common pair), one Ilse Wuyts.
    firsts = ["jan"] * 10 + [f"first{i}" for i in range(30)]
    lasts = [f"last{i}" for i in range(30)] + ["peeters"] * 10
    rows = [
        (f"r{i}", f, last, "2000") for i, (f, last) in enumerate(zip(firsts, lasts, strict=True))
    ]
    rows[0] = ("r0", "jan", "peeters", "2000")
    rows[1] = ("r1", "ilse", "wuyts", "2000")
    rows += [("x-jan", "jan", "peeters", "2000"), ("x-ilse", "ilse", "wuyts", "2000")]
    prepared = pl.DataFrame(
        rows, schema=["record_id", "first_key", "last_key", "postcode"], orient="row"
    )
    assert _name_postcode_groups(prepared, max_expected=0.05) == [["r1", "x-ilse"]]
    assert _name_postcode_groups(prepared, max_expected=1000) == [["r0", "x-jan"], ["r1", "x-ilse"]]


def _labels(kind: str) -> list[str]:
    from cdp_pipeline.identity.splink_model import _comparison

    return [
        level["label_for_charts"] for level in _comparison("x", kind, False)["comparison_levels"]
    ]


def _evidence(first: str, date: str) -> dict:
    return {
        "first_name": {"level": first, "weight": 0.0},
        "last_name": {"level": "exact", "weight": 7.0},
        "birth_date": {"level": date, "weight": 0.0},
        "email": {"level": "exact", "weight": 12.0},
    }


def test_guards_veto_other_names_and_years_not_typos() -> None:
    from cdp_pipeline.identity.resolve import _veto

    config = load_config()
    assert {"one typo", "jaro-winkler >= 0.8", "different"} <= set(_labels("first_name"))
    assert {"one digit typo", "same year", "different"} <= set(_labels("date"))
    # A household e-mail and surname: another name of the family (rashid / said) is vetoed...
    assert _veto(_evidence("jaro-winkler >= 0.8", "null"), config) == "different_first_name"
    assert _veto(_evidence("different", "null"), config) == "different_first_name"
    # ... a typo in a short name (hedi / heidi) is not.
    assert _veto(_evidence("one typo", "null"), config) is None
    # A date mistyped within the year is not a parent or a sibling of the same name.
    assert _veto(_evidence("exact", "same year"), config) is None
    assert _veto(_evidence("exact", "different"), config) == "different_birth_date"


def test_cluster_birth_dates_allow_a_typo_not_another_date() -> None:
    from cdp_pipeline.identity.resolve import _dates_disagree

    assert not _dates_disagree({"1980-03-04"}, {"1980-03-05"})  # one digit
    assert not _dates_disagree({"1980-03-14"}, {"1980-03-41"})  # two digits swapped
    assert not _dates_disagree({"1980-03-04"}, {"1980-04-03"})  # day and month swapped
    assert _dates_disagree({"1980-03-04"}, {"1981-07-09"})
    assert _dates_disagree({"1980-03-04"}, {"2010-03-04"})  # a parent and a child


def test_matches_among_random_pairs_come_out_of_u() -> None:
    from cdp_pipeline.identity.splink_model import remove_matches_from_u

    # One random pair in a thousand is a match; 90 % of matches agree on the identifier.
    levels = [
        {"is_null_level": True},
        {"m_probability": 0.9, "u_probability": 0.0012},
        {"m_probability": 0.05, "u_probability": 0.0009},
        {"m_probability": 0.05, "u_probability": 0.9979},
    ]
    model = remove_matches_from_u({"comparisons": [{"comparison_levels": levels}]}, 0.001, 1e-6)
    u = [level.get("u_probability") for level in model["comparisons"][0]["comparison_levels"]]
    assert u[0] is None
    assert u[1] == pytest.approx((0.0012 - 0.0009) / 0.999)
    assert u[2] == pytest.approx((0.0009 - 0.00005) / 0.999)
    assert sum(u[1:]) == pytest.approx(1.0)
    # All agreement explained by matches: u is as small as the sample can tell, not 0.
    floored = remove_matches_from_u(
        {"comparisons": [{"comparison_levels": [{"m_probability": 0.9, "u_probability": 0.0009}]}]},
        0.001,
        1e-6,
    )
    assert floored["comparisons"][0]["comparison_levels"][0]["u_probability"] == 1e-6
