"""Name-and-postcode links, the review queue, explanations and the golden record.

Hand-made cases on a temporary warehouse, scored with the model's prior m/u values
(far below ``training.min_records``), as in ``test_identity.py``.
"""

from pathlib import Path

import duckdb
import pytest

from cdp_pipeline.identity.config import load_config, parse_config
from cdp_pipeline.identity.decisions import read_decisions
from cdp_pipeline.identity.resolve import resolve
from cdp_pipeline.identity.review import (
    decide_pair,
    explain_profile,
    labelled_pairs,
    review_queue,
)
from tests.test_identity import apart, profiles, rec, same, write_inputs


@pytest.fixture()
def warehouse(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "cdp.duckdb"))
    yield con, tmp_path / "state" / "identity"
    con.close()


def test_box_office_namesake_joins_the_one_identified_person(warehouse) -> None:
    con, state_dir = warehouse
    write_inputs(
        con,
        [
            rec(
                "aprofiel",
                "ap-1",
                first_name="Ilse",
                last_name="Wuyts",
                birth_date="1970-01-02",
                email="ilse@wuyts.be",
                postcode="2140",
            ),
            rec("ticketing", "T-1", first_name="Ilse", last_name="Wuyts", postcode="2140"),
            rec("ticketing", "T-2", first_name="ILSE", last_name="wuyts", postcode="2140"),
            rec("ticketing", "T-3", first_name="Ilse", last_name="Wuyts", postcode="2000"),
        ],
    )
    stats = resolve(con, "run-1", state_dir=state_dir)
    ids = profiles(con)
    assert same(ids, "aprofiel|account|ap-1", "ticketing|buyer|T-1", "ticketing|buyer|T-2")
    assert ids["ticketing|buyer|T-3"] != ids["aprofiel|account|ap-1"]  # other postcode
    assert stats.links_by_type["name_postcode"] == 2


def test_namesakes_with_their_own_identity_leave_the_box_office_record_alone(warehouse) -> None:
    con, state_dir = warehouse
    write_inputs(
        con,
        [
            rec(
                "aprofiel",
                "ap-1",
                first_name="Tom",
                last_name="Vermeulen",
                postcode="2018",
                birth_date="1975-07-12",
                email="vermeulen.tom@gmail.com",
            ),
            rec(
                "registrations",
                "R-1",
                "contact",
                first_name="Tom",
                last_name="Vermeulen",
                postcode="2018",
                phone="0495 65 76 41",
            ),
            rec("ticketing", "T-1", first_name="Tom", last_name="Vermeulen", postcode="2018"),
        ],
    )
    stats = resolve(con, "run-1", state_dir=state_dir)
    ids = profiles(con)
    assert apart(ids, "aprofiel|account|ap-1", "registrations|contact|R-1", "ticketing|buyer|T-1")
    assert stats.blocked_by_reason["namesakes"] == 1
    off = parse_config({**load_config().model_dump(), "rules": {"name_and_postcode": False}})
    assert "name_postcode" not in resolve(con, "run-2", off, state_dir=state_dir).links_by_type


def _borderline() -> list[dict]:
    # Same name and postcode, one shared landline: above review, below auto-merge.
    return [
        rec(
            "aprofiel",
            "ap-1",
            first_name="Els",
            last_name="Maes",
            birth_date="1980-03-04",
            email="els@maes.be",
            postcode="2600",
        ),
        rec(
            "registrations",
            "R-1",
            "contact",
            first_name="Elise",
            last_name="Maes",
            postcode="2600",
            street="Statiestraat",
            house_number="3",
        ),
    ]


def test_review_queue_and_decisions(warehouse) -> None:
    con, state_dir = warehouse
    config = parse_config(
        {
            **load_config().model_dump(),
            "rules": {"name_and_postcode": False},
            "thresholds": {"match_probability": 0.99, "review_match_weight": -5.0},
        }
    )
    write_inputs(con, _borderline())
    stats = resolve(con, "run-1", config, state_dir=state_dir)
    ids = profiles(con)
    left, right = "aprofiel|account|ap-1", "registrations|contact|R-1"
    assert ids[left] != ids[right]
    queue = review_queue(con)
    assert stats.review_pairs == len(queue) == 1
    pair = queue[0]
    assert (pair["record_id_l"], pair["record_id_r"]) == (left, right)
    assert pair["reason"] == "below_auto_merge" and pair["status"] == "open"
    assert pair["evidence"]["last_name"]["level"] == "exact"
    assert isinstance(pair["evidence"]["last_name"]["weight"], float)

    log = state_dir / "decisions.jsonl"
    decide_pair(left, right, accept=True, by="marketer", path=log)
    resolve(con, "run-2", config, state_dir=state_dir)
    ids = profiles(con)
    assert ids[left] == ids[right]
    assert review_queue(con) == []  # one profile now: nothing left to decide
    labels = labelled_pairs(read_decisions(log))
    assert labels.rows() == [(left, right, 1.0)]

    explained = explain_profile(con, ids[left])
    assert [r["record_id"] for r in explained["records"]] == [left, right]
    (link,) = explained["links"]
    assert link["link_type"] == "manual" and link["agreed"] == ["manual"]
    evidence = con.execute(
        "select attribute, level from identity.link_evidence where profile_id = ?", [ids[left]]
    ).fetchall()
    assert evidence == [("manual", "same")]
    with pytest.raises(KeyError):
        explain_profile(con, "p-unknown")
    with pytest.raises(ValueError, match="allowed"):
        review_queue(con, status="maybe")


def test_explanation_lists_the_agreeing_attributes(warehouse) -> None:
    con, state_dir = warehouse
    write_inputs(
        con,
        [
            rec(
                "aprofiel",
                "ap-1",
                first_name="Hélène",
                last_name="Van den Broeck",
                birth_date="1990-05-06",
                street="Kerkstraat",
                house_number="12 bus 3",
                postcode="2018",
            ),
            rec(
                "registrations",
                "R-2",
                "participant",
                first_name="helene",
                last_name="van den broeck",
                birth_date="1990-05-06",
                street="Kerkstraat",
                house_number="12b3",
                postcode="2018",
            ),
        ],
    )
    resolve(con, "run-1", state_dir=state_dir)
    pid = profiles(con)["aprofiel|account|ap-1"]
    (link,) = explain_profile(con, pid)["links"]
    assert link["link_type"] == "splink"
    assert {"first_name", "last_name", "birth_date", "address"} <= set(link["agreed"])
    assert link["evidence"]["birth_date"]["weight"] > 0


def test_golden_attributes_follow_the_survivorship_rules(warehouse) -> None:
    import datetime as dt

    con, state_dir = warehouse
    old, new = dt.datetime(2024, 1, 1), dt.datetime(2025, 6, 1)
    write_inputs(
        con,
        [
            rec(
                "aprofiel",
                "ap-1",
                first_name="Johannes",
                last_name="Wouters",
                email="jan@wouters.be",
                phone="0476 12 34 56",
                postcode="2000",
                observed_at=old,
            ),
            rec(
                "ticketing",
                "T-1",
                first_name="Jan",
                last_name="Wouters",
                email="jan@wouters.be",
                phone="+32 477 00 00 00",
                postcode="2060",
                observed_at=new,
            ),
        ],
    )
    con.execute("create schema if not exists staging")
    con.execute(
        "create table staging.stg_aprofiel__accounts (account_id varchar, language varchar)"
    )
    con.execute("insert into staging.stg_aprofiel__accounts values ('ap-1', 'nl')")
    resolve(con, "run-1", state_dir=state_dir)
    pid = profiles(con)["aprofiel|account|ap-1"]
    golden = {
        attribute: (value, source)
        for attribute, value, source in con.execute(
            "select attribute, value, source from identity.golden_attributes where profile_id = ?",
            [pid],
        ).fetchall()
    }
    assert golden["first_name"] == ("Johannes", "aprofiel")  # trusted source order
    assert golden["phone"] == ("+32477000000", "ticketing")  # most recent
    assert golden["postcode"] == ("2060", "ticketing")
    assert golden["language"] == ("nl", "aprofiel")  # custom attribute from a source column


def test_golden_attribute_config_errors_name_the_key() -> None:
    data = load_config().model_dump()
    data["golden_attributes"] = {"x": {"column": "shoe_size"}}
    with pytest.raises(ValueError, match=r"golden_attributes\.x.*allowed"):
        parse_config(data)
    data["golden_attributes"] = {"x": {"column": "email", "rule": "source_order"}}
    with pytest.raises(ValueError, match="sources"):
        parse_config(data)
    data["golden_attributes"] = {
        "x": {"column": "language", "table": "staging.t; drop", "key": "id", "source": "aprofiel"}
    }
    with pytest.raises(ValueError, match="schema.table"):
        parse_config(data)
