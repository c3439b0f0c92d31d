"""The next night's delivery written on top of an existing sample (`--increment`)."""

import csv
import hashlib
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cdp_pipeline.cli import app
from cdp_pipeline.sample_data import generate
from cdp_pipeline.sample_data.increment import IncrementError, generate_increment

PEOPLE = 300
SEED = 5
NEXT_DAY = date(2025, 12, 2)


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def delivery(tmp_path: Path) -> Path:
    folder = tmp_path / "landing"
    generate(folder, people=PEOPLE, seed=SEED)
    return folder


def test_increment_adds_files_and_keeps_every_earlier_byte(delivery: Path) -> None:
    before = _hashes(delivery)
    counts = generate_increment(delivery, PEOPLE, SEED, 0.05, NEXT_DAY)
    after = _hashes(delivery)

    truth_files = {
        f"_truth/{name}" for name in ("records.csv", "people.csv", "privacy_requests.csv")
    }
    for name, digest in before.items():
        if name not in truth_files:
            assert after[name] == digest, f"{name} was rewritten"
    added = sorted(set(after) - set(before))
    assert added == sorted(
        [
            f"{source}/{source}_2025-12-02.{ext}"
            for source, ext in (
                ("aprofiel", "jsonl"),
                ("app_devices", "csv"),
                ("consents", "jsonl"),
                ("email_events", "jsonl"),
                ("newsletter", "csv"),
                ("privacy_requests", "csv"),
                ("registrations", "csv"),
                ("ticketing", "csv"),
            )
        ]
        + ["web_events/2025-12-01.jsonl"]
    )
    # A full snapshot repeats the earlier one byte for byte, then the new rows.
    for source, ext in (("aprofiel", "jsonl"), ("newsletter", "csv"), ("app_devices", "csv")):
        old = (delivery / source / f"{source}_2025-12-01.{ext}").read_bytes()
        new = (delivery / source / f"{source}_2025-12-02.{ext}").read_bytes()
        assert new.startswith(old)
        assert new[len(old) :].count(b"\n") == counts[source]
    # A delta holds only the new rows.
    ticket_lines = (delivery / "ticketing" / "ticketing_2025-12-02.csv").read_bytes()
    assert ticket_lines.count(b"\r\n") == counts["ticketing"] + 1


def test_increment_people_and_records_are_new_and_in_the_truth(delivery: Path) -> None:
    old_people = _rows(delivery / "_truth" / "people.csv")
    old_records = _rows(delivery / "_truth" / "records.csv")
    generate_increment(delivery, PEOPLE, SEED, 0.05, NEXT_DAY)
    people = _rows(delivery / "_truth" / "people.csv")
    records = _rows(delivery / "_truth" / "records.csv")

    assert len(people) == PEOPLE + 15
    assert people[:PEOPLE] == old_people
    assert len({p["person_id"] for p in people}) == len(people)
    assert (
        len({p["household_id"] for p in old_people} & {p["household_id"] for p in people[PEOPLE:]})
        == 0
    )
    old_emails = {p["email"] for p in old_people if p["email"]}
    assert not old_emails & {p["email"] for p in people[PEOPLE:] if p["email"]}

    assert records[: len(old_records)] == old_records
    new_records = records[len(old_records) :]
    new_ids = {p["person_id"] for p in people[PEOPLE:]}
    assert new_records and {r["person_id"] for r in new_records} <= new_ids
    old_keys = {(r["source"], r["record_key"]) for r in old_records}
    assert not old_keys & {(r["source"], r["record_key"]) for r in new_records}
    # Every new ticket order in the delta file has its buyer in the truth.
    with (delivery / "ticketing" / "ticketing_2025-12-02.csv").open(encoding="cp1252") as fh:
        orders = {row["OrderNr"] for row in csv.DictReader(fh, delimiter=";")}
    assert orders == {r["record_key"] for r in new_records if r["source"] == "ticketing"}


def test_increment_is_deterministic(tmp_path: Path) -> None:
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        generate(folder, people=PEOPLE, seed=SEED)
        generate_increment(folder, PEOPLE, SEED, 0.05, NEXT_DAY)
    assert _hashes(folders[0]) == _hashes(folders[1])


def test_increment_refuses_a_date_that_is_not_later(delivery: Path) -> None:
    with pytest.raises(IncrementError, match="2025-12-01"):
        generate_increment(delivery, PEOPLE, SEED, 0.05, date(2025, 12, 1))


def test_cli_increment_needs_an_existing_delivery_and_a_date(tmp_path: Path) -> None:
    runner = CliRunner()
    empty = tmp_path / "empty"
    result = runner.invoke(
        app,
        ["sample-data", "--out", str(empty), "--people", "10", "--increment", "0.01"],
    )
    assert result.exit_code != 0
    assert "--as-of" in result.output
    result = runner.invoke(
        app,
        [
            "sample-data",
            "--out",
            str(empty),
            "--people",
            "10",
            "--increment",
            "0.01",
            "--as-of",
            "2025-12-02",
        ],
    )
    assert result.exit_code == 2
    assert "records.csv: missing" in result.output
