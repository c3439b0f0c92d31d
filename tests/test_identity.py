"""Identity resolution: normalisation, the quirks of real data, stable ids, decisions.

The warehouse is a temporary DuckDB holding the two dbt inputs of the internal
contract (``intermediate.int_identity__records`` and
``intermediate.int_identity__web_identities``). The data is far below
``training.min_records``, so Splink scores with the prior m/u values of the
model (no EM): results are deterministic and each resolve takes about a second.
"""

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest

from cdp_pipeline.identity import normalise
from cdp_pipeline.identity.config import load_config, parse_config
from cdp_pipeline.identity.decisions import append_decision, read_decisions
from cdp_pipeline.identity.evaluation import pairwise_scores
from cdp_pipeline.identity.resolve import resolve

RECORD_COLUMNS = {
    "record_id": "varchar",
    "source": "varchar",
    "record_key": "varchar",
    "role": "varchar",
    "first_name": "varchar",
    "last_name": "varchar",
    "birth_date": "date",
    "email": "varchar",
    "phone": "varchar",
    "street": "varchar",
    "house_number": "varchar",
    "postcode": "varchar",
    "municipality": "varchar",
    "a_profiel_id": "varchar",
    "device_id": "varchar",
    "anonymous_id": "varchar",
    "is_child_record": "boolean",
    "household_key": "varchar",
    "observed_at": "timestamp",
}
ROLES = {
    "aprofiel": "account",
    "ticketing": "buyer",
    "newsletter": "subscriber",
    "app_devices": "device",
    "web_events": "visitor",
}


def rec(source: str, key: str, role: str | None = None, **attrs) -> dict:
    role = role or ROLES[source]
    row = dict.fromkeys(RECORD_COLUMNS)
    row.update(source=source, record_key=key, role=role, record_id=f"{source}|{role}|{key}")
    row["is_child_record"] = False
    row.update(attrs)
    if isinstance(row["birth_date"], str):
        row["birth_date"] = dt.date.fromisoformat(row["birth_date"])
    if row["email"]:
        row["email"] = row["email"].strip().lower()
    return row


def write_inputs(con: duckdb.DuckDBPyConnection, records: list[dict], web=()) -> None:
    con.execute("create schema if not exists intermediate")
    columns = ", ".join(f"{name} {kind}" for name, kind in RECORD_COLUMNS.items())
    con.execute(f"create or replace table intermediate.int_identity__records ({columns})")
    placeholders = ", ".join("?" for _ in RECORD_COLUMNS)
    if records:
        con.executemany(
            f"insert into intermediate.int_identity__records values ({placeholders})",
            [[r[c] for c in RECORD_COLUMNS] for r in records],
        )
    con.execute(
        "create or replace table intermediate.int_identity__web_identities (anonymous_id varchar,"
        " user_id varchar, first_seen_at timestamp, last_seen_at timestamp, n_events bigint)"
    )
    for anonymous_id, user_id in web:
        con.execute(
            "insert into intermediate.int_identity__web_identities values (?, ?, null, null, 1)",
            [anonymous_id, user_id],
        )


def profiles(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    rows = con.execute("select record_id, profile_id from identity.record_profiles").fetchall()
    return dict(rows)


def same(ids: dict[str, str], *record_ids: str) -> bool:
    return len({ids[r] for r in record_ids}) == 1


def apart(ids: dict[str, str], *record_ids: str) -> bool:
    return len({ids[r] for r in record_ids}) == len(record_ids)


@pytest.fixture()
def warehouse(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "cdp.duckdb"))
    yield con, tmp_path / "state" / "identity"
    con.close()


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    "raw",
    [
        "0476 12 34 56",
        "+32476123456",
        "0032 476/12.34.56",
        "0032476123456",
        "+32 476 12 34 56",
        "0476/123.456",
    ],
)
def test_phone_formats_give_one_e164(raw: str) -> None:
    assert normalise.phone(raw) == ("+32476123456", "mobile")


def test_landline_is_not_mobile() -> None:
    e164, line = normalise.phone("03 123 45 67")
    assert e164 == "+3231234567"
    assert line == "fixed_line"
    assert normalise.phone("0000000000") is None
    assert normalise.phone("") is None
    assert normalise.phone("abc") is None


def test_email_normalisation() -> None:
    assert normalise.email("  An.Peeters@Telenet.be ") == "an.peeters@telenet.be"
    assert normalise.email("an.peeters@@telenet") is None
    assert normalise.email("geen e-mail") is None
    assert normalise.email(None) is None


def test_name_keys() -> None:
    keys = {normalise.name_key(v) for v in ("Van den Broeck", "Vandenbroeck", "van den broeck")}
    assert keys == {"vandenbroeck"}
    assert normalise.name_key("Hélène") == normalise.name_key("Helene") == "helene"
    assert normalise.name_key("D\u2019Hondt") == normalise.name_key("D'hondt") == "dhondt"
    assert normalise.name_key("  ") is None
    assert normalise.name_key("Onbekend", blocked={"onbekend"}) is None
    assert normalise.name_key("Ｊａｎ") == "jan"  # NFKC folds full-width letters


def test_nicknames() -> None:
    table = normalise.NicknameTable()
    assert table.same("jan", "johannes")
    assert table.same("lies", "elisabeth") and table.same("liesbeth", "lies")
    assert table.same("mo", "mohammed") and table.same("kasia", "katarzyna")
    assert table.same("wim", "willem") and table.same("jef", "jozef")
    assert table.same("tom", "thomas") and table.same("bart", "bartholomeus")
    assert not table.same("jan", "tom")


@pytest.mark.parametrize("raw", ["12 bus 3", "12/3", "12b3", "12 b 3", "12 bte 3", "12-3"])
def test_house_number_with_box(raw: str) -> None:
    assert normalise.house_number(raw) == ("12", "3")


def test_house_number_without_box() -> None:
    assert normalise.house_number("12") == ("12", None)
    assert normalise.house_number("12B") == ("12b", None)
    assert normalise.house_number("12", box="3") == ("12", "3")
    assert normalise.postcode(" 2000 ") == "2000"
    assert normalise.postcode("B-2018") == "2018"


def test_config_loads_and_errors_name_the_key() -> None:
    config = load_config()
    assert config.blocked_values.email.matches("test@test.be")
    assert config.blocked_values.email.matches("noreply@stad.antwerpen.be")
    assert not config.blocked_values.email.matches("info@janssens.be")
    data = {"attributes": {"first_name": {"comparison": "fuzzy"}}, "blocking_rules": []}
    with pytest.raises(ValueError, match=r"attributes\.first_name\.comparison.*'exact'"):
        parse_config(data)
    data = {"attributes": {"email": {"comparison": "email"}}, "blocking_rules": [["email"]]}
    with pytest.raises(ValueError, match=r"blocking_rules\[0\].*allowed"):
        parse_config(data)


def test_pairwise_scores() -> None:
    truth = {"a": 1, "b": 1, "c": 1, "d": 2, "e": 3}
    predicted = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "z"}
    precision, recall, f1 = pairwise_scores(predicted, truth)
    # predicted pairs: a-b, c-d; true pairs: a-b, a-c, b-c
    assert precision == pytest.approx(0.5)
    assert recall == pytest.approx(1 / 3)
    assert f1 == pytest.approx(0.4)
    assert pairwise_scores({"a": 1}, {"a": 1}) == (1.0, 1.0, 1.0)


# --------------------------------------------------------------------------- quirks

AN = "aprofiel|account|ap-000913"
HOUSEHOLD = "registrations|contact|R-88120"
CHILD = "registrations|participant|R-88120"


def quirk_records() -> list[dict]:
    street = {"street": "Lange Nieuwstraat", "municipality": "Antwerpen"}
    return [
        # Particles and diacritics: one person, three spellings, no shared e-mail or phone.
        rec(
            "aprofiel",
            "ap-000100",
            first_name="Hélène",
            last_name="Van den Broeck",
            birth_date="1990-05-06",
            email="helene.vdb@gmail.com",
            street="Kerkstraat",
            house_number="12 bus 3",
            postcode="2018",
        ),
        rec(
            "registrations",
            "R-1",
            "contact",
            first_name="Helene",
            last_name="Vandenbroeck",
            street="Kerkstraat",
            house_number="12/3",
            postcode="2018",
        ),
        rec(
            "registrations",
            "R-2",
            "participant",
            first_name="helene",
            last_name="van den broeck",
            birth_date="1990-06-05",
            street="Kerkstraat",
            house_number="12b3",
            postcode="2018",
        ),
        # Nickname (Jan/Johannes) at the same address.
        rec(
            "aprofiel",
            "ap-000200",
            first_name="Johannes",
            last_name="Wouters",
            birth_date="1970-02-03",
            street="Meir",
            house_number="5",
            postcode="2000",
        ),
        rec(
            "registrations",
            "R-3",
            "contact",
            first_name="Jan",
            last_name="Wouters",
            street="Meir",
            house_number="5",
            postcode="2000",
            phone="03 231 45 67",
        ),
        # Swapped first/last name with the same e-mail; nickname Mo with the same phone.
        rec(
            "aprofiel",
            "ap-000300",
            first_name="Mohamed",
            last_name="El Amrani",
            birth_date="1985-03-02",
            email="m.elamrani@hotmail.com",
            phone="0485 11 22 33",
        ),
        rec(
            "ticketing",
            "T-3",
            first_name="El Amrani",
            last_name="Mohamed",
            email="M.ElAmrani@hotmail.com",
            postcode="2060",
        ),
        rec(
            "ticketing",
            "T-4",
            first_name="Mo",
            last_name="El-Amrani",
            phone="+32485112233",
            postcode="2060",
        ),
        # Placeholder e-mails typed at the box office: strangers stay apart.
        rec(
            "ticketing",
            "T-10",
            first_name="Kasia",
            last_name="Nowak",
            email="test@test.be",
            postcode="2100",
        ),
        rec(
            "ticketing",
            "T-11",
            first_name="Jef",
            last_name="Claes",
            email="test@test.be",
            postcode="2140",
        ),
        rec(
            "ticketing",
            "T-12",
            first_name="Ahmet",
            last_name="Yilmaz",
            email="geen@email.be",
            phone="0000000000",
            postcode="2100",
        ),
        rec(
            "ticketing",
            "T-13",
            first_name="Sarah",
            last_name="Goldberg",
            email="geen@email.be",
            phone="0000000000",
            postcode="2018",
        ),
        # Spouses share e-mail, landline and address: two people.
        rec(
            "aprofiel",
            "ap-000400",
            first_name="Bart",
            last_name="Peeters",
            birth_date="1960-01-01",
            email="fam.peeters@telenet.be",
            phone="03 111 22 33",
            street="Lange Leemstraat",
            house_number="40",
            postcode="2018",
        ),
        rec(
            "aprofiel",
            "ap-000401",
            first_name="Greet",
            last_name="Peeters-Smets",
            birth_date="1962-07-07",
            email="fam.peeters@telenet.be",
            phone="03 111 22 33",
            street="Lange Leemstraat",
            house_number="40",
            postcode="2018",
        ),
        rec("newsletter", "cultuur:fam.peeters@telenet.be", email="fam.peeters@telenet.be"),
        # Parent and child registered together; the child has the parent's first name too.
        rec(
            "aprofiel",
            "ap-000913",
            first_name="An",
            last_name="Peeters",
            birth_date="1987-04-12",
            email="an.peeters@telenet.be",
            phone="0476 12 34 56",
            house_number="12",
            box="3",
            postcode="2000",
            **street,
        ),
        rec(
            "registrations",
            "R-88120",
            "contact",
            first_name="An",
            last_name="Peeters",
            email="an.peeters@telenet.be",
            phone="0032476123456",
            house_number="12 bus 3",
            postcode="2000",
            a_profiel_id="ap-000913",
            **street,
        ),
        rec(
            "registrations",
            "R-88120",
            "participant",
            first_name="An",
            last_name="Peeters",
            birth_date="2016-09-30",
            email="an.peeters@telenet.be",
            phone="0032476123456",
            house_number="12 bus 3",
            postcode="2000",
            a_profiel_id="ap-000913",
            is_child_record=True,
            household_key=HOUSEHOLD,
            **street,
        ),
        # Mover: new address, same e-mail; another record with the same mobile and name.
        rec(
            "ticketing",
            "T-20",
            first_name="An",
            last_name="Peeters",
            email="An.Peeters@Telenet.be ",
            postcode="2060",
        ),
        rec(
            "registrations",
            "R-5",
            "contact",
            first_name="An",
            last_name="Peeters",
            phone="+32 476 12 34 56",
            street="Turnhoutsebaan",
            house_number="200",
            postcode="2140",
        ),
        # Anonymous visitor who logs in; an app device of the account.
        rec("web_events", "c-91f2", anonymous_id="c-91f2"),
        rec("web_events", "c-0000", anonymous_id="c-0000"),
        rec("app_devices", "d-77aa", device_id="d-77aa", a_profiel_id="ap-000913"),
        # Twins: same birth date, surname and address, different first names.
        rec(
            "registrations",
            "R-7",
            "participant",
            first_name="Noor",
            last_name="Janssens",
            birth_date="2015-03-03",
            street="Diksmuidelaan",
            house_number="8",
            postcode="2600",
        ),
        rec(
            "registrations",
            "R-8",
            "participant",
            first_name="Nora",
            last_name="Janssens",
            birth_date="2015-03-03",
            street="Diksmuidelaan",
            house_number="8",
            postcode="2600",
        ),
        rec(
            "registrations",
            "R-9",
            "participant",
            first_name="Noor",
            last_name="Janssens",
            birth_date="2015-03-03",
            street="Diksmuidelaan",
            house_number="8",
            postcode="2600",
        ),
    ]


@pytest.fixture(scope="module")
def quirks(tmp_path_factory: pytest.TempPathFactory):
    """All quirk cases resolved together once (they must not disturb each other)."""
    folder = tmp_path_factory.mktemp("quirks")
    con = duckdb.connect(str(folder / "cdp.duckdb"))
    records = quirk_records()
    for row in records:
        row.pop("box", None)
    write_inputs(con, records, web=[("c-91f2", "ap-000913"), ("c-unknown", "ap-999")])
    stats = resolve(con, "run-1", state_dir=folder / "state")
    yield con, stats, profiles(con)
    con.close()


def test_particles_diacritics_and_day_month_swap(quirks) -> None:
    _, _, ids = quirks
    assert same(
        ids,
        "aprofiel|account|ap-000100",
        "registrations|contact|R-1",
        "registrations|participant|R-2",
    )


def test_nickname_and_swapped_names(quirks) -> None:
    _, _, ids = quirks
    assert same(ids, "aprofiel|account|ap-000200", "registrations|contact|R-3")
    assert same(ids, "aprofiel|account|ap-000300", "ticketing|buyer|T-3", "ticketing|buyer|T-4")


def test_placeholder_emails_never_link(quirks) -> None:
    con, _, ids = quirks
    assert apart(ids, *(f"ticketing|buyer|T-{n}" for n in (10, 11, 12, 13)))
    placeholders = con.execute(
        "select count(*) from identity.record_profiles where email_normalised in "
        "('test@test.be', 'geen@email.be') or phone_e164 = '+32000000000'"
    ).fetchall()[0]
    assert placeholders == (0,)


def test_family_shared_email_and_phone_stay_two(quirks) -> None:
    _, _, ids = quirks
    assert apart(ids, "aprofiel|account|ap-000400", "aprofiel|account|ap-000401")
    # The nameless subscriber of a family address belongs to neither spouse for sure.
    newsletter = "newsletter|subscriber|cultuur:fam.peeters@telenet.be"
    assert apart(ids, "aprofiel|account|ap-000400", "aprofiel|account|ap-000401", newsletter)


def test_child_never_merges_with_parent(quirks) -> None:
    con, _, ids = quirks
    assert same(ids, AN, HOUSEHOLD)
    assert ids[CHILD] != ids[AN]
    links = con.execute(
        "select count(*) from identity.links where ? in (record_id_l, record_id_r)", [CHILD]
    ).fetchall()[0]
    assert links == (0,)


def test_mover_and_login(quirks) -> None:
    _, _, ids = quirks
    assert same(
        ids,
        AN,
        "ticketing|buyer|T-20",
        "registrations|contact|R-5",
        "web_events|visitor|c-91f2",
        "app_devices|device|d-77aa",
    )
    assert ids["web_events|visitor|c-0000"] != ids[AN]


def test_twins_stay_two(quirks) -> None:
    _, _, ids = quirks
    noor, nora, noor_again = (f"registrations|participant|R-{n}" for n in (7, 8, 9))
    assert apart(ids, noor, nora)
    assert same(ids, noor, noor_again)


def test_outputs_follow_the_contract(quirks) -> None:
    con, stats, ids = quirks
    columns = [c[0] for c in con.execute("describe identity.record_profiles").fetchall()]
    assert columns == [
        "record_id",
        "source",
        "record_key",
        "role",
        "profile_id",
        "email_normalised",
        "phone_e164",
        "first_name_normalised",
        "last_name_normalised",
        "birth_date",
        "postcode",
        "run_id",
        "assigned_at",
    ]
    link_columns = [c[0] for c in con.execute("describe identity.links").fetchall()]
    assert link_columns == [
        "record_id_l",
        "record_id_r",
        "link_type",
        "match_weight",
        "match_probability",
        "evidence",
        "run_id",
    ]
    assert stats.records == len(ids) == len(quirk_records())
    assert stats.profiles == len(set(ids.values()))
    assert stats.model == "priors"
    assert stats.pairs_blocked_by_guards > 0
    assert all(pid.startswith("p-") and len(pid) == 14 for pid in ids.values())
    evidence = con.execute(
        "select evidence from identity.links where link_type = 'splink' limit 1"
    ).fetchall()[0]
    parsed = json.loads(evidence[0])
    assert {"level", "weight"} <= set(parsed["first_name"])
    created = con.execute(
        "select count(*) from identity.profile_history where change = 'created'"
    ).fetchall()[0]
    assert created == (stats.profiles,)


# --------------------------------------------------------------------------- stability


def _claes() -> list[dict]:
    return [
        rec(
            "aprofiel",
            "ap-1",
            first_name="Elisabeth",
            last_name="Claes",
            birth_date="1980-01-01",
            phone="0477 00 11 22",
        ),
        rec("ticketing", "T-1", first_name="Lies", last_name="Claes", email="lies@claes.be"),
        rec("ticketing", "T-2", first_name="Tom", last_name="Maes", email="tom@maes.be"),
    ]


def test_ids_are_stable_and_a_merge_keeps_the_older_id(warehouse) -> None:
    con, state_dir = warehouse
    records = _claes()
    write_inputs(con, records[:1] + records[2:])
    resolve(con, "run-1", state_dir=state_dir)
    first = profiles(con)

    write_inputs(con, records)  # Lies arrives: no evidence yet, a new profile
    resolve(con, "run-2", state_dir=state_dir)
    second = profiles(con)
    assert all(second[r] == pid for r, pid in first.items())
    assert second["ticketing|buyer|T-1"] not in first.values()

    # Liesbeth carries Lies's e-mail and Elisabeth's phone: the two profiles merge.
    records.append(
        rec(
            "ticketing",
            "T-3",
            first_name="Liesbeth",
            last_name="Claes",
            email="lies@claes.be",
            phone="+32477001122",
        )
    )
    write_inputs(con, records)
    stats = resolve(con, "run-3", state_dir=state_dir)
    third = profiles(con)
    elisabeth = first["aprofiel|account|ap-1"]
    assert third["ticketing|buyer|T-1"] == third["ticketing|buyer|T-3"] == elisabeth
    assert third["ticketing|buyer|T-2"] == first["ticketing|buyer|T-2"]
    assert stats.history == {"merged": 1, "retired": 1}
    merged = con.execute(
        "select profile_id, other_profile_id from identity.profile_history "
        "where run_id = 'run-3' and change = 'merged'"
    ).fetchall()
    assert merged == [(elisabeth, second["ticketing|buyer|T-1"])]


def test_manual_decisions(warehouse) -> None:
    con, state_dir = warehouse
    records = [
        rec("aprofiel", "ap-1", first_name="Tom", last_name="Maes", email="tom@maes.be"),
        rec("ticketing", "T-1", first_name="Tom", last_name="Maes", email="tom@maes.be"),
        rec("ticketing", "T-2", first_name="Thomas", last_name="Maes", postcode="2000"),
        rec("newsletter", "cultuur:tom@maes.be", email="tom@maes.be"),
    ]
    write_inputs(con, records)
    resolve(con, "run-1", state_dir=state_dir)
    ids = profiles(con)
    account, buyer, other, subscriber = (r["record_id"] for r in records)
    assert same(ids, account, buyer, subscriber)
    assert ids[other] != ids[account]

    log = state_dir / "decisions.jsonl"
    append_decision("different", [account, buyer], by="steward", path=log)
    append_decision("same", [other, account], by="steward", path=log)
    assert len(read_decisions(log).different) == 1
    before = ids
    expected_history = {
        "run-2": {"created": 1, "split": 1, "merged": 1, "retired": 1},
        "run-3": {},  # the decision survives a rerun and nothing changes any more
    }
    for run, history in expected_history.items():
        stats = resolve(con, run, state_dir=state_dir)
        ids = profiles(con)
        assert ids[account] != ids[buyer]
        assert same(ids, account, other, subscriber)
        assert ids[account] == before[account]
        assert stats.links_by_type.get("manual") == 1
        assert stats.history == history
    with pytest.raises(ValueError, match="allowed"):
        append_decision("maybe", [account, buyer], by="steward", path=log)


def test_one_a_profiel_id_per_profile(warehouse) -> None:
    con, state_dir = warehouse
    records = [  # two accounts of one person, plus a ticket with both e-mails
        rec("aprofiel", "ap-1", first_name="Wim", last_name="Smet", email="wim@smet.be"),
        rec("aprofiel", "ap-2", first_name="Willem", last_name="Smet", email="willem@smet.be"),
        rec(
            "ticketing",
            "T-1",
            first_name="Wim",
            last_name="Smet",
            email="wim@smet.be",
            a_profiel_id="ap-2",
        ),
    ]
    write_inputs(con, records)
    stats = resolve(con, "run-1", state_dir=state_dir)
    ids = profiles(con)
    assert ids["aprofiel|account|ap-1"] != ids["aprofiel|account|ap-2"]
    assert same(ids, "ticketing|buyer|T-1", "aprofiel|account|ap-2")  # a_profiel_id is stronger
    assert stats.blocked_by_reason.get("limit_a_profiel_id", 0) >= 1


# --------------------------------------------------------------------------- dagster


def test_dagster_asset_materialises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster as dg

    from cdp_pipeline.identity.definitions import defs, identity_resolution
    from cdp_pipeline.resources import WarehouseResource

    database = tmp_path / "warehouse" / "cdp.duckdb"
    database.parent.mkdir()
    monkeypatch.setenv("CDP_WAREHOUSE", str(database))
    con = duckdb.connect(str(database))
    write_inputs(con, _claes())
    con.close()

    assert identity_resolution in defs.assets
    result = dg.materialize(
        [identity_resolution], resources={"warehouse": WarehouseResource(database=str(database))}
    )
    assert result.success
    events = result.get_asset_materialization_events()
    metadata = {e.asset_key.to_user_string(): e.materialization.metadata for e in events}
    assert metadata["identity/record_profiles"]["records"].value == 3
    assert metadata["identity/record_profiles"]["model"].value == "priors"
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
    state = tmp_path / "state" / "identity"
    assert not (state / "splink_model.json").exists()  # no model to save for priors
    assert (state / "scored_pairs.parquet").exists()  # the next night can be incremental


def test_saved_model_is_reused_until_the_config_changes(warehouse) -> None:
    from cdp_pipeline.identity.splink_model import write_prior_model

    con, state_dir = warehouse
    config = load_config()
    path = write_prior_model(config, state_dir)
    assert json.loads(path.read_text())["comparisons"]
    records = quirk_records()
    for row in records:
        row.pop("box", None)
    write_inputs(con, records)
    assert resolve(con, "run-1", config, state_dir=state_dir).model == "reused"
    first = profiles(con)
    data = config.model_dump()
    data["attributes"]["first_name"]["tf_adjustment"] = True
    changed = parse_config(data)
    assert resolve(con, "run-2", changed, state_dir=state_dir).model == "priors"
    assert resolve(con, "run-3", config, state_dir=state_dir, retrain=True).model == "priors"
    assert profiles(con) == first


def test_empty_input_writes_empty_tables(warehouse) -> None:
    con, state_dir = warehouse
    write_inputs(con, [])
    stats = resolve(con, "run-1", state_dir=state_dir)
    assert (stats.records, stats.profiles, stats.largest_profile) == (0, 0, 0)
    assert con.execute("select count(*) from identity.record_profiles").fetchall()[0] == (0,)
    assert con.execute("select count(*) from identity.links").fetchall()[0] == (0,)
