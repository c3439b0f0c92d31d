"""Helpers of the privacy tests: pick a person, file a request, search every store for them."""

import csv
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import duckdb

from cdp_pipeline.identity import normalise


@dataclass(frozen=True)
class Needles:
    """What must not be found anywhere once a person is erased."""

    person_id: str
    first_name: str
    last_name: str
    strings: frozenset[str]
    phone_digits: frozenset[str]


def people(landing: Path) -> dict[str, dict[str, str]]:
    with open(landing / "_truth" / "people.csv", encoding="utf-8") as handle:
        return {row["person_id"]: row for row in csv.DictReader(handle)}


def records(landing: Path) -> list[dict[str, str]]:
    with open(landing / "_truth" / "records.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def needles_for(landing: Path, person_id: str, profile_ids: set[str]) -> Needles:
    person = people(landing)[person_id]
    strings = {person["email"].lower()} | set(profile_ids)
    for key in ("alt_email",):
        if person.get(key):
            strings.add(person[key].lower())
    strings |= {a for a in person["a_profiel_ids"].split("|") if a}
    for record in records(landing):
        if record["person_id"] == person_id and record["source"] != "newsletter":
            strings.add(record["record_key"].lower())
    digits = set()
    for key in ("mobile", "landline"):
        parsed = normalise.phone(person.get(key) or "")
        if parsed:
            digits.add(parsed[0].removeprefix("+32"))
    return Needles(
        person_id,
        person["first_name"].lower(),
        person["last_name"].lower(),
        frozenset(s for s in strings if s),
        frozenset(digits),
    )


def unique_person_candidates(landing: Path, min_sources: int) -> list[str]:
    """People in at least ``min_sources`` sources whose name and contacts nobody else has."""
    everyone = people(landing)
    names = Counter((p["first_name"].lower(), p["last_name"].lower()) for p in everyone.values())
    emails = Counter(p["email"].lower() for p in everyone.values() if p["email"])
    phones = Counter(p["mobile"] for p in everyone.values() if p["mobile"])
    sources: dict[str, set[str]] = {}
    for record in records(landing):
        sources.setdefault(record["person_id"], set()).add(record["source"])
    out = []
    for person_id, person in sorted(everyone.items()):
        if len(sources.get(person_id, ())) < min_sources or person["is_child"] == "true":
            continue
        if person["family_email"] or not person["email"] or emails[person["email"].lower()] > 1:
            continue
        if person["mobile"] and phones[person["mobile"]] > 1:
            continue
        if person["landline"]:
            continue
        if names[(person["first_name"].lower(), person["last_name"].lower())] > 1:
            continue
        out.append(person_id)
    return out


def add_request(landing: Path, name: str, rows: list[tuple[str, str, str, str, str]]) -> None:
    folder = landing / "privacy_requests"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(
            ["request_id", "type", "identifier_type", "identifier_value", "received_at"]
        )
        writer.writerows(rows)


def _hits_in_text(text: str, needles: Needles) -> list[str]:
    lowered = text.lower()
    hits = [s for s in needles.strings if s in lowered]
    digits = re.sub(r"[^0-9]", "", lowered)
    hits += [d for d in needles.phone_digits if d in digits and _phone_in(lowered, d)]
    return hits


def _phone_in(text: str, national: str) -> bool:
    # A phone in any spelling: its nine national digits with separators allowed between.
    pattern = r"[ ./\-]?".join(national)
    return re.search(pattern, text) is not None


def search_duckdb(path: Path, needles: Needles) -> list[str]:
    """Every table of a DuckDB file, every text-like column, searched for the person."""
    hits: list[str] = []
    with duckdb.connect(str(path), read_only=True) as con:
        columns = con.execute(
            "select table_schema, table_name, list(column_name) from information_schema.columns"
            " where data_type in ('VARCHAR', 'JSON') and table_catalog = current_database()"
            " group by 1, 2"
        ).fetchall()
        for schema, table, names in columns:
            row_text = (
                "lower(concat_ws(' ', " + ", ".join(f'cast("{n}" as varchar)' for n in names) + "))"
            )
            relation = f'"{schema}"."{table}"'
            conditions = [f"contains({row_text}, ?)" for _ in needles.strings]
            params: list[str] = sorted(needles.strings)
            conditions += [f"regexp_matches({row_text}, ?)" for _ in needles.phone_digits]
            params += [r"[ ./\-]?".join(d) for d in sorted(needles.phone_digits)]
            conditions.append(f"(regexp_matches({row_text}, ?) and regexp_matches({row_text}, ?))")
            params += [
                r"\b" + re.escape(needles.first_name) + r"\b",
                r"\b" + re.escape(needles.last_name) + r"\b",
            ]
            (n,) = con.execute(
                f"select count(*) from {relation} where {' or '.join(conditions)}", params
            ).fetchone()
            if n:
                hits.append(f"{path.name}:{schema}.{table}: {n} row(s)")
    return hits


def search_tree(root: Path, needles: Needles, skip: set[Path]) -> list[str]:
    """Every file below ``root`` (DuckDB files by SQL, the rest as text), but ``skip``."""
    hits: list[str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if any(path.is_relative_to(s) for s in skip) or path.name == "salt":
            continue
        if path.suffix == ".duckdb":
            hits += search_duckdb(path, needles)
            continue
        if path.suffix in {".wal", ".db"}:
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        found = _hits_in_text(text, needles)
        name_row = any(
            needles.first_name in line.lower() and needles.last_name in line.lower()
            for line in text.splitlines()
        )
        if found or name_row:
            hits.append(f"{path}: {sorted(found)}{' + name' if name_row else ''}")
    return hits
