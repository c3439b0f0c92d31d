"""Pairwise precision/recall/F1 of identity resolution on `cdp sample-data` output.

Reads a landing folder written by `cdp sample-data --out DIR` directly (no ingest,
no dbt): the files are turned into ``intermediate.int_identity__records`` and
``int_identity__web_identities`` following the internal contract, resolved with
the project's ``matching.yml`` and scored against ``DIR/_truth/records.csv``.
Not a test: ``.venv/bin/python bench/identity_sample.py DIR``.
"""

import argparse
import glob
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import duckdb
import pandas as pd

from cdp_pipeline.identity import normalise
from cdp_pipeline.identity.config import load_config
from cdp_pipeline.identity.evaluation import pairwise_scores
from cdp_pipeline.identity.resolve import resolve

logger = logging.getLogger("identity_sample")
COLUMNS = [
    "record_id",
    "source",
    "record_key",
    "role",
    "first_name",
    "last_name",
    "birth_date",
    "email",
    "phone",
    "street",
    "house_number",
    "postcode",
    "municipality",
    "a_profiel_id",
    "device_id",
    "anonymous_id",
    "is_child_record",
    "household_key",
]


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    frame["record_id"] = frame["source"] + "|" + frame["role"] + "|" + frame["record_key"]
    return frame[COLUMNS]


def _clean(value):
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def _email(value):
    text = _clean(value)
    return text.lower() if text else None


def load_landing(landing: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows: list[dict] = []
    for path in sorted(glob.glob(str(landing / "aprofiel" / "*.jsonl"))):
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            acc = json.loads(line)
            if acc.get("status") == "deleted":
                continue
            addr = acc.get("address") or {}
            number = _clean(addr.get("number"))
            if number and _clean(addr.get("box")):
                number = f"{number} bus {addr['box']}"
            rows.append(
                dict(
                    source="aprofiel",
                    record_key=acc["account_id"],
                    role="account",
                    first_name=_clean(acc.get("given_name")),
                    last_name=_clean(acc.get("family_name")),
                    birth_date=acc.get("birth_date"),
                    email=_email(acc.get("email")),
                    phone=_clean(acc.get("phone")),
                    street=_clean(addr.get("street")),
                    house_number=number,
                    postcode=_clean(addr.get("postcode")),
                    municipality=_clean(addr.get("municipality")),
                    a_profiel_id=acc["account_id"],
                )
            )
    for path in sorted(glob.glob(str(landing / "ticketing" / "*"))):
        orders = pd.read_csv(path, sep=";", encoding="cp1252", dtype=str)
        for o in orders.to_dict("records"):
            rows.append(
                dict(
                    source="ticketing",
                    record_key=o["OrderNr"],
                    role="buyer",
                    first_name=_clean(o["KlantVoornaam"]),
                    last_name=_clean(o["KlantNaam"]),
                    email=_email(o["KlantEmail"]),
                    phone=_clean(o["KlantTelefoon"]),
                    postcode=_clean(o["KlantPostcode"]),
                    a_profiel_id=_clean(o["AProfielId"]),
                )
            )
    for path in sorted(glob.glob(str(landing / "registrations" / "*"))):
        regs = pd.read_csv(path, encoding="utf-8-sig", dtype=str)
        for r in regs.to_dict("records"):
            same = (_clean(r["participant_first_name"]) or "").lower() == (
                _clean(r["contact_first_name"]) or ""
            ).lower() and (_clean(r["participant_last_name"]) or "").lower() == (
                _clean(r["contact_last_name"]) or ""
            ).lower()
            address = dict(
                street=_clean(r["street"]),
                house_number=_clean(r["house_number"]),
                postcode=_clean(r["postcode"]),
                municipality=_clean(r["city"]),
            )
            contact = dict(
                source="registrations",
                record_key=r["registration_id"],
                role="contact",
                first_name=_clean(r["contact_first_name"]),
                last_name=_clean(r["contact_last_name"]),
                birth_date=r["participant_birth_date"] if same else None,
                email=_email(r["contact_email"]),
                phone=_clean(r["contact_phone"]),
                a_profiel_id=_clean(r["a_profiel_id"]),
                **address,
            )
            participant = dict(
                source="registrations",
                record_key=r["registration_id"],
                role="participant",
                first_name=_clean(r["participant_first_name"]),
                last_name=_clean(r["participant_last_name"]),
                birth_date=_clean(r["participant_birth_date"]),
                is_child_record=not same,
                household_key=None if same else f"registrations|contact|{r['registration_id']}",
                **address,
            )
            if same:
                participant.update(
                    email=contact["email"],
                    phone=contact["phone"],
                    a_profiel_id=contact["a_profiel_id"],
                )
            rows += [contact, participant]
    for path in sorted(glob.glob(str(landing / "newsletter" / "*"))):
        contacts = pd.read_csv(path, dtype=str)
        for c in contacts.to_dict("records"):
            email = _email(c["EMAIL"])
            rows.append(
                dict(
                    source="newsletter",
                    record_key=f"{c['LIST']}:{email}",
                    role="subscriber",
                    first_name=_clean(c["FIRSTNAME"]),
                    last_name=_clean(c["LASTNAME"]),
                    email=email,
                )
            )
    for path in sorted(glob.glob(str(landing / "app_devices" / "*"))):
        devices = pd.read_csv(path, dtype=str)
        for d in devices.to_dict("records"):
            rows.append(
                dict(
                    source="app_devices",
                    record_key=d["device_id"],
                    role="device",
                    device_id=d["device_id"],
                    a_profiel_id=_clean(d["a_profiel_id"]),
                )
            )
    visitors: set[str] = set()
    identities: set[tuple[str, str]] = set()
    for path in sorted(glob.glob(str(landing / "web_events" / "*.jsonl"))):
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            if event.get("anonymousId"):
                visitors.add(event["anonymousId"])
            if event.get("type") == "identify" and event.get("userId") and event.get("anonymousId"):
                identities.add((event["anonymousId"], event["userId"]))
            if event.get("type") == "alias" and event.get("previousId") and event.get("userId"):
                identities.add((event["previousId"], event["userId"]))
    rows += [
        dict(source="web_events", record_key=v, role="visitor", anonymous_id=v)
        for v in sorted(visitors)
    ]
    records = _frame(rows).drop_duplicates("record_id", keep="last")
    records["birth_date"] = pd.to_datetime(records["birth_date"], errors="coerce").dt.date
    records["is_child_record"] = records["is_child_record"].astype("boolean").fillna(False)
    web = pd.DataFrame(sorted(identities), columns=["anonymous_id", "user_id"])
    return records, web


def _with_evidence(records: pd.DataFrame, web: pd.DataFrame) -> set[str]:
    """Records that carry something that can tie them to a person's other records.

    A name, e-mail or phone; an A-profiel id; a web visitor identified by an
    identify/alias call, or whose cookie is an app device that carries an A-profiel
    id; such a device. An app install that never logged in (and its own web
    visitor) carries only its own id: the generator knows whose it is, no system can.
    """
    identified = set(web["anonymous_id"])
    devices_with_account = set(
        records.loc[records["device_id"].notna() & records["a_profiel_id"].notna(), "device_id"]
    )
    has = (
        records["first_name"].notna()
        | records["last_name"].notna()
        | records["email"].notna()
        | records["phone"].notna()
        | records["a_profiel_id"].notna()
        | records["anonymous_id"].isin(identified | devices_with_account)
    )
    return set(records.loc[has, "record_id"])


def _joined_through_blocked_value(
    records: pd.DataFrame, links: list[tuple[str, str, str]], truth: dict[str, str], config
) -> list[tuple[str, str, str]]:
    """Kept links between records of two true persons who share a blocked e-mail or phone."""
    by_id = records.set_index("record_id")
    found = []
    for left, right, kind in links:
        if truth.get(left) == truth.get(right):
            continue
        for column, normal, blocked in (
            ("email", normalise.email, config.blocked_values.email),
            (
                "phone",
                lambda v: (normalise.phone(v, config.region) or (None,))[0],
                config.blocked_values.phone,
            ),
        ):
            a, b = (by_id.at[r, column] for r in (left, right))
            a = normal(a) if isinstance(a, str) else None
            b = normal(b) if isinstance(b, str) else None
            if a is not None and a == b and blocked.matches(a):
                found.append((left, right, kind))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("landing", type=Path)
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--config", type=Path, default=None, help="matching.yml to use")
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    logging.getLogger("splink").setLevel(logging.ERROR)
    records, web = load_landing(args.landing)
    truth_rows = pd.read_csv(args.landing / "_truth" / "records.csv", dtype=str)
    truth = dict(
        zip(
            truth_rows["source"] + "|" + truth_rows["role"] + "|" + truth_rows["record_key"],
            truth_rows["person_id"],
            strict=True,
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(str(Path(tmp) / "w.duckdb"))
        con.execute("create schema intermediate")
        con.register("r", records)
        con.register("w", web)
        con.execute("create table intermediate.int_identity__records as select * from r")
        con.execute("create table intermediate.int_identity__web_identities as select * from w")
        started = time.perf_counter()
        config = load_config(args.config)
        stats = resolve(con, "bench", config, retrain=args.retrain, state_dir=Path(tmp) / "state")
        seconds = time.perf_counter() - started
        predicted = dict(
            con.execute("select record_id, profile_id from identity.record_profiles").fetchall()
        )
        links = con.execute(
            "select record_id_l, record_id_r, link_type from identity.links"
        ).fetchall()
        con.close()
    precision, recall, f1 = pairwise_scores(predicted, truth)
    evident = _with_evidence(records, web)
    scored = pairwise_scores({r: p for r, p in predicted.items() if r in evident}, truth)
    logger.info(
        "records with linking evidence (%d of %d): precision %.4f recall %.4f F1 %.4f",
        len(evident & set(predicted)),
        len(predicted),
        *scored,
    )
    wrong = Counter(kind for left, right, kind in links if truth.get(left) != truth.get(right))
    logger.info("links between two true persons, by type: %s", dict(wrong))
    through_blocked = _joined_through_blocked_value(records, links, truth, config)
    logger.info("links joining two persons through a blocked value: %d", len(through_blocked))
    if through_blocked:
        raise SystemExit(f"profiles joined through a blocked value: {through_blocked[:5]}")
    logger.info("largest profile: %d records", stats.largest_profile)
    logger.info(
        "records %d (%d in truth), profiles %d, true persons %d",
        stats.records,
        sum(r in truth for r in predicted),
        stats.profiles,
        len({truth[r] for r in predicted if r in truth}),
    )
    logger.info(
        "links %s, blocked %s, model %s", stats.links_by_type, stats.blocked_by_reason, stats.model
    )
    logger.info("phases %s", stats.timings)
    logger.info(
        "%.1fs (%.1fs per 10k records); precision %.4f recall %.4f F1 %.4f",
        seconds,
        seconds / stats.records * 10_000,
        precision,
        recall,
        f1,
    )


if __name__ == "__main__":
    main()
