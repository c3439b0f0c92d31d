"""Tests of the sample-data generator: formats as the real exports, truth and quirks.

Files are parsed the way ingest must parse the real deliveries (``sources.md``), so a
drift in the generator's formats fails here before it confuses the pipeline tests.
"""

import csv
import hashlib
import io
import json
import re
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cdp_pipeline.sample_data import DEFAULT_AS_OF, generate

N_PEOPLE = 400
SEED = 7
AS_OF = DEFAULT_AS_OF.isoformat()
BRUSSELS = ZoneInfo("Europe/Brussels")
PLACEHOLDERS = {"geen@email.be", "test@test.be", "x@x.x", "geen@geen.be", "nvt@nvt.be"}

TICKETING_HEADER = (
    "OrderNr;OrderDatum;Kanaal;KlantVoornaam;KlantNaam;KlantEmail;KlantTelefoon;"
    "KlantPostcode;AProfielId;EvenementId;Evenement;Locatie;Categorie;VoorstellingDatum;"
    "Aantal;BedragEUR;Status"
)
REGISTRATIONS_HEADER = (
    "registration_id,registered_at,activity_id,activity_name,activity_type,"
    "participant_first_name,participant_last_name,participant_birth_date,contact_first_name,"
    "contact_last_name,contact_email,contact_phone,street,house_number,postcode,city,"
    "a_profiel_id,price_eur,status"
)
NEWSLETTER_HEADER = "EMAIL,FIRSTNAME,LASTNAME,LIST,STATUS,OPTIN_DATE,UNSUBSCRIBE_DATE,LANGUAGE"
APP_DEVICES_HEADER = (
    "device_id,platform,push_token,app_version,a_profiel_id,push_opt_in,first_seen_at,last_seen_at"
)
PRIVACY_HEADER = "request_id,type,identifier_type,identifier_value,received_at"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """One generated landing folder shared by the tests of this module."""
    out = tmp_path_factory.mktemp("sample")
    counts = generate(out, N_PEOPLE, SEED)
    return out, counts


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _ticketing(out: Path) -> list[dict[str, str]]:
    text = (out / "ticketing" / f"ticketing_{AS_OF}.csv").read_bytes().decode("cp1252")
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))


def _registrations(out: Path) -> list[dict[str, str]]:
    text = (out / "registrations" / f"registrations_{AS_OF}.csv").read_text("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _web_events(out: Path) -> dict[str, list[dict]]:
    return {p.stem: _read_jsonl(p) for p in sorted((out / "web_events").glob("*.jsonl"))}


def _truth(out: Path) -> list[dict[str, str]]:
    return _csv(out / "_truth" / "records.csv")


def _utc(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


# ------------------------------------------------------------------ formats


def test_every_source_is_written_with_the_default_export_date(
    sample: tuple[Path, dict[str, int]],
) -> None:
    out, counts = sample
    for source, suffix in [
        ("aprofiel", "jsonl"),
        ("ticketing", "csv"),
        ("registrations", "csv"),
        ("newsletter", "csv"),
        ("email_events", "jsonl"),
        ("app_devices", "csv"),
        ("consents", "jsonl"),
        ("privacy_requests", "csv"),
    ]:
        path = out / source / f"{source}_{AS_OF}.{suffix}"
        assert path.is_file(), path
        assert counts[source] > 0, source
    web_lines = sum(len(v) for v in _web_events(out).values())
    assert counts["web_events"] == web_lines


def test_aprofiel_is_nested_json_lines_with_its_quirks(
    sample: tuple[Path, dict[str, int]],
) -> None:
    out, counts = sample
    rows = _read_jsonl(out / "aprofiel" / f"aprofiel_{AS_OF}.jsonl")
    assert len(rows) == counts["aprofiel"]
    assert len({r["account_id"] for r in rows}) == len(rows)
    assert all(re.fullmatch(r"ap-\d{6}", r["account_id"]) for r in rows)
    assert {r["status"] for r in rows} <= {"active", "deleted"}
    assert any(r["address"] is None for r in rows)
    assert any(
        r["address"]
        and set(r["address"]) >= {"street", "number", "box", "postcode", "municipality", "country"}
        for r in rows
    )
    assert any(r["email"] != r["email"].strip() or r["email"] != r["email"].lower() for r in rows)
    for r in rows:
        date.fromisoformat(r["birth_date"])
        assert datetime.fromisoformat(r["created_at"]).utcoffset() is not None


def test_ticketing_is_cp1252_semicolon_with_dutch_header(
    sample: tuple[Path, dict[str, int]],
) -> None:
    out, counts = sample
    raw = (out / "ticketing" / f"ticketing_{AS_OF}.csv").read_bytes()
    text = raw.decode("cp1252")
    assert text.splitlines()[0] == TICKETING_HEADER
    rows = _ticketing(out)
    assert len(rows) == counts["ticketing"]
    assert len({r["OrderNr"] for r in rows}) == len(rows)
    for r in rows:
        assert re.fullmatch(r"T-\d{4}-\d+", r["OrderNr"])
        datetime.strptime(r["OrderDatum"], "%d/%m/%Y %H:%M")
        datetime.strptime(r["VoorstellingDatum"], "%d/%m/%Y %H:%M")
        assert re.fullmatch(r"\d+,\d{2}", r["BedragEUR"])
        assert r["Kanaal"] in {"web", "kassa"}
        assert r["Status"] in {"betaald", "terugbetaald", "geannuleerd"}
        if r["AProfielId"]:
            assert r["Kanaal"] == "web"
    assert {r["Status"] for r in rows} >= {"betaald"}
    # Windows-1252 keeps an accented letter as one byte.
    if "é" in text:
        assert b"\xe9" in raw and "é".encode() not in raw
    kassa = [r for r in rows if r["Kanaal"] == "kassa"]
    assert kassa and sum(not r["KlantEmail"] for r in kassa) > len(kassa) / 3


def test_registrations_are_utf8_with_bom_and_exact_header(
    sample: tuple[Path, dict[str, int]],
) -> None:
    out, counts = sample
    raw = (out / "registrations" / f"registrations_{AS_OF}.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert raw.decode("utf-8-sig").splitlines()[0] == REGISTRATIONS_HEADER
    rows = _registrations(out)
    assert len(rows) == counts["registrations"]
    numbers = [r["house_number"] for r in rows]
    assert any(" bus " in n or "/" in n or re.fullmatch(r"\d+[A-C]?b\d+", n) for n in numbers)
    for r in rows:
        assert datetime.fromisoformat(r["registered_at"]).utcoffset() is not None
        date.fromisoformat(r["participant_birth_date"])
        assert re.fullmatch(r"\d+\.\d{2}", r["price_eur"])


def test_newsletter_email_events_devices_consents_privacy_formats(
    sample: tuple[Path, dict[str, int]],
) -> None:
    out, _ = sample
    nl_path = out / "newsletter" / f"newsletter_{AS_OF}.csv"
    assert nl_path.read_text("utf-8").splitlines()[0] == NEWSLETTER_HEADER
    newsletter = _csv(nl_path)
    assert {r["STATUS"] for r in newsletter} <= {"subscribed", "unsubscribed", "cleaned", "pending"}
    for r in newsletter:
        for col in ("OPTIN_DATE", "UNSUBSCRIBE_DATE"):
            if r[col]:
                datetime.strptime(r[col], "%Y-%m-%d %H:%M:%S")

    events = _read_jsonl(out / "email_events" / f"email_events_{AS_OF}.jsonl")
    assert {e["event"] for e in events} <= {"sent", "open", "click", "bounce", "unsubscribe"}
    assert {"sent", "open", "click"} <= {e["event"] for e in events}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", e["ts"]) for e in events)
    assert all(e["url"].startswith("https://") for e in events if e["event"] == "click")

    dev_path = out / "app_devices" / f"app_devices_{AS_OF}.csv"
    assert dev_path.read_text("utf-8").splitlines()[0] == APP_DEVICES_HEADER
    devices = _csv(dev_path)
    assert {d["push_opt_in"] for d in devices} <= {"true", "false"}
    assert all(d["push_token"].startswith("fcm:") or not d["push_token"] for d in devices)
    assert any(not d["a_profiel_id"] for d in devices)

    consents = _read_jsonl(out / "consents" / f"consents_{AS_OF}.jsonl")
    assert {c["subject_type"] for c in consents} == {"a_profiel", "email", "device"}
    assert {c["purpose"] for c in consents} <= {
        "email_marketing",
        "push_marketing",
        "ad_targeting",
        "profiling",
    }
    assert {c["status"] for c in consents} == {"granted", "withdrawn"}
    per_subject = Counter((c["subject_type"], c["subject_id"]) for c in consents)
    assert max(per_subject.values()) >= 3

    pr_path = out / "privacy_requests" / f"privacy_requests_{AS_OF}.csv"
    assert pr_path.read_text("utf-8").splitlines()[0] == PRIVACY_HEADER
    requests = _csv(pr_path)
    accounts = _read_jsonl(out / "aprofiel" / f"aprofiel_{AS_OF}.jsonl")
    known = {("a_profiel_id", a["account_id"]) for a in accounts} | {
        ("email", a["email"].strip().lower()) for a in accounts
    }
    assert 1 <= len(requests) <= 20
    for r in requests:
        assert r["type"] in {"erasure", "access"}
        assert (r["identifier_type"], r["identifier_value"]) in known


def test_web_events_are_segment_json_one_file_per_day(
    sample: tuple[Path, dict[str, int]],
) -> None:
    out, _ = sample
    files = _web_events(out)
    days = [date.fromisoformat(name) for name in files]
    assert days == [DEFAULT_AS_OF - timedelta(days=k) for k in range(30, 0, -1)]
    devices = {d["device_id"] for d in _csv(out / "app_devices" / f"app_devices_{AS_OF}.csv")}
    types = Counter()
    for events in files.values():
        for e in events:
            types[e["type"]] += 1
            assert e["messageId"] and e["anonymousId"] and e["timestamp"].endswith("Z")
            assert set(e["context"]) >= {"ip", "userAgent", "locale"}
            if e["type"] == "screen":
                assert e["anonymousId"] in devices
            if e["type"] == "identify":
                assert e["userId"].startswith("ap-") and "@" in e["traits"]["email"]
    assert {"page", "screen", "track", "identify"} <= set(types)
    tracks = {e["event"] for events in files.values() for e in events if e["type"] == "track"}
    assert "Added to Wishlist" in tracks


# ------------------------------------------------------------------ determinism


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    first = generate(tmp_path / "a", 150, 42)
    second = generate(tmp_path / "b", 150, 42)
    other = generate(tmp_path / "c", 150, 43)
    assert first == second
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    assert other


def test_rejects_an_empty_population(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="0"):
        generate(tmp_path, 0, 1)


# ------------------------------------------------------------------ truth


def test_truth_covers_every_person_bearing_record_with_unique_keys(
    sample: tuple[Path, dict[str, int]],
) -> None:
    out, _ = sample
    truth = _truth(out)
    keys = [(t["source"], t["record_key"], t["role"]) for t in truth]
    assert len(keys) == len(set(keys))
    people = {p["person_id"] for p in _csv(out / "_truth" / "people.csv")}
    assert len(people) == N_PEOPLE
    assert {t["person_id"] for t in truth} <= people

    expected: set[tuple[str, str, str]] = set()
    expected |= {
        ("aprofiel", r["account_id"], "account")
        for r in _read_jsonl(out / "aprofiel" / f"aprofiel_{AS_OF}.jsonl")
    }
    expected |= {("ticketing", r["OrderNr"], "buyer") for r in _ticketing(out)}
    for r in _registrations(out):
        expected |= {
            ("registrations", r["registration_id"], "participant"),
            ("registrations", r["registration_id"], "contact"),
        }
    expected |= {
        ("newsletter", f"{r['LIST']}:{r['EMAIL'].strip().lower()}", "subscriber")
        for r in _csv(out / "newsletter" / f"newsletter_{AS_OF}.csv")
    }
    expected |= {
        ("app_devices", r["device_id"], "device")
        for r in _csv(out / "app_devices" / f"app_devices_{AS_OF}.csv")
    }
    expected |= {
        ("web_events", e["anonymousId"], "visitor")
        for events in _web_events(out).values()
        for e in events
    }
    assert set(keys) == expected


def test_adult_registering_themselves_is_participant_and_contact(
    sample: tuple[Path, dict[str, int]],
) -> None:
    out, _ = sample
    people = {p["person_id"]: p for p in _csv(out / "_truth" / "people.csv")}
    by_reg: dict[str, dict[str, str]] = defaultdict(dict)
    for t in _truth(out):
        if t["source"] == "registrations":
            by_reg[t["record_key"]][t["role"]] = t["person_id"]
    assert all(set(roles) == {"participant", "contact"} for roles in by_reg.values())
    for roles in by_reg.values():
        if people[roles["participant"]]["is_child"] == "false":
            assert roles["participant"] == roles["contact"]


# ------------------------------------------------------------------ quirks


def test_placeholder_emails_in_box_office_still_carry_the_true_buyer(
    sample: tuple[Path, dict[str, int]],
) -> None:
    out, _ = sample
    truth = {t["record_key"]: t["person_id"] for t in _truth(out) if t["source"] == "ticketing"}
    placeholder_rows = [
        r
        for r in _ticketing(out)
        if r["KlantEmail"].strip().lower() in PLACEHOLDERS
        or r["KlantEmail"].lower().startswith("noreply@")
    ]
    assert placeholder_rows
    assert any(r["Kanaal"] == "kassa" for r in placeholder_rows)
    buyers = {truth[r["OrderNr"]] for r in placeholder_rows}
    # The same placeholder is typed for several strangers.
    assert len(buyers) > 1


def test_child_registered_by_a_parent_of_the_same_household(
    sample: tuple[Path, dict[str, int]],
) -> None:
    out, _ = sample
    people = {p["person_id"]: p for p in _csv(out / "_truth" / "people.csv")}
    roles: dict[str, dict[str, str]] = defaultdict(dict)
    for t in _truth(out):
        if t["source"] == "registrations":
            roles[t["record_key"]][t["role"]] = t["person_id"]
    child_regs = [r for r in roles.values() if r["participant"] != r["contact"]]
    assert child_regs
    for r in child_regs:
        child, parent = people[r["participant"]], people[r["contact"]]
        assert child["is_child"] == "true" and parent["is_child"] == "false"
        assert child["household_id"] == parent["household_id"]


def test_anonymous_visitor_logs_in_halfway(sample: tuple[Path, dict[str, int]]) -> None:
    out, _ = sample
    per_visitor: dict[str, list[dict]] = defaultdict(list)
    for events in _web_events(out).values():
        for e in events:
            per_visitor[e["anonymousId"]].append(e)
    found = False
    for events in per_visitor.values():
        idents = [e for e in events if e["type"] == "identify"]
        if not idents or events[0]["anonymousId"].startswith("d-"):
            continue
        login = _utc(idents[0]["timestamp"])
        before = [
            e
            for e in events
            if e["type"] != "identify" and "userId" not in e and _utc(e["timestamp"]) < login
        ]
        after = [
            e
            for e in events
            if e.get("userId") == idents[0]["userId"]
            and e["type"] != "identify"
            and _utc(e["timestamp"]) > login
        ]
        if before and after:
            found = True
            break
    assert found
    anonymous_only = [
        v for v, events in per_visitor.items() if not any("userId" in e for e in events)
    ]
    assert anonymous_only


def test_retried_and_late_web_events(sample: tuple[Path, dict[str, int]]) -> None:
    out, _ = sample
    files = _web_events(out)
    ids = Counter(e["messageId"] for events in files.values() for e in events)
    assert max(ids.values()) >= 2
    late = 0
    for day, events in files.items():
        for e in events:
            received_day = _utc(e["receivedAt"]).astimezone(BRUSSELS).date()
            if received_day < date.fromisoformat(day):
                late += 1
    assert late > 0


def test_wrong_phone_clocks_exist_at_larger_samples(tmp_path: Path) -> None:
    generate(tmp_path, 500, 3)
    skewed = 0
    for path in (tmp_path / "web_events").glob("*.jsonl"):
        for e in _read_jsonl(path):
            gap = abs((_utc(e["timestamp"]) - _utc(e["receivedAt"])).total_seconds())
            skewed += gap > 3600
    assert skewed > 0


def test_one_person_written_with_particle_variants_across_sources(
    sample: tuple[Path, dict[str, int]],
) -> None:
    out, _ = sample
    truth = {(t["source"], t["record_key"], t["role"]): t["person_id"] for t in _truth(out)}
    last_names: dict[str, set[str]] = defaultdict(set)
    for r in _read_jsonl(out / "aprofiel" / f"aprofiel_{AS_OF}.jsonl"):
        last_names[truth[("aprofiel", r["account_id"], "account")]].add(r["family_name"])
    for r in _ticketing(out):
        last_names[truth[("ticketing", r["OrderNr"], "buyer")]].add(r["KlantNaam"])
    for r in _registrations(out):
        last_names[truth[("registrations", r["registration_id"], "contact")]].add(
            r["contact_last_name"]
        )
    variants = [
        names
        for names in last_names.values()
        if len({n.replace(" ", "").lower() for n in names if n}) == 1
        and len({n for n in names if n}) > 1
        and any(" " in n for n in names)
    ]
    assert variants


def test_phones_come_in_several_belgian_formats(sample: tuple[Path, dict[str, int]]) -> None:
    out, _ = sample
    phones = [r["contact_phone"] for r in _registrations(out) if r["contact_phone"]]
    phones += [r["KlantTelefoon"] for r in _ticketing(out) if r["KlantTelefoon"]]
    assert any(p.startswith("+32") for p in phones)
    assert any(p.startswith("0032") for p in phones)
    assert any(re.fullmatch(r"04\d\d \d\d \d\d \d\d", p) for p in phones)
    assert any(p.startswith("03") for p in phones)


def test_clicks_precede_purchases_so_propensity_has_signal(
    sample: tuple[Path, dict[str, int]],
) -> None:
    out, _ = sample
    truth = _truth(out)
    email_person = {
        t["record_key"].split(":", 1)[1]: t["person_id"]
        for t in truth
        if t["source"] == "newsletter"
    }
    order_person = {t["record_key"]: t["person_id"] for t in truth if t["source"] == "ticketing"}
    orders: dict[str, list[datetime]] = defaultdict(list)
    for r in _ticketing(out):
        local = datetime.strptime(r["OrderDatum"], "%d/%m/%Y %H:%M").replace(tzinfo=BRUSSELS)
        orders[order_person[r["OrderNr"]]].append(local)

    def bought_within_3_weeks(event: dict) -> bool:
        person = email_person[event["email"].strip().lower()]
        ts = _utc(event["ts"])
        return any(ts <= o <= ts + timedelta(days=21) for o in orders[person])

    events = _read_jsonl(out / "email_events" / f"email_events_{AS_OF}.jsonl")
    clicked = {(e["email"], e["campaign_id"]) for e in events if e["event"] == "click"}
    clicks = [bought_within_3_weeks(e) for e in events if e["event"] == "click"]
    quiet = [
        bought_within_3_weeks(e)
        for e in events
        if e["event"] == "sent" and (e["email"], e["campaign_id"]) not in clicked
    ]
    assert clicks and quiet
    assert sum(clicks) / len(clicks) > 3 * sum(quiet) / len(quiet)
