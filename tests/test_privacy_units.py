"""Privacy building blocks on small data: tombstones, sync-state removals, exports, inventory."""

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from cdp_pipeline.activation.config import load_destinations
from cdp_pipeline.privacy.erasure import purge_export_files, purge_sync_state
from cdp_pipeline.privacy.identifiers import (
    ClearMatcher,
    PersonIdentifiers,
    TombstoneMatcher,
)
from cdp_pipeline.privacy.inventory import load_inventory, uncovered_columns
from cdp_pipeline.privacy.minimisation import minimisation_violations
from cdp_pipeline.privacy.state import open_state, resolve_salt


def _person() -> PersonIdentifiers:
    person = PersonIdentifiers()
    person.add("email", " An.Peeters@Telenet.be ")
    person.add("phone", "0476 12 34 56")
    person.add("profile_id", "p-1")
    return person


def test_tombstones_match_any_spelling_and_hold_nothing_readable(tmp_path: Path) -> None:
    salt = resolve_salt("", tmp_path)
    digests = _person().digests(salt)
    with open_state(tmp_path) as state:
        state.check_salt(salt)
        state.add_tombstones(digests)
        matcher = TombstoneMatcher(salt, state.tombstones())
    assert matcher.matches("email", "an.peeters@telenet.be")
    assert matcher.matches("phone", "+32476123456")
    assert not matcher.matches("email", "someone.else@telenet.be")
    stored = (tmp_path / "privacy" / "privacy.duckdb").read_bytes()
    assert b"peeters" not in stored.lower() and b"476" not in stored


@dataclass
class _FakeSender:
    removed: list = field(default_factory=list)

    def begin(self, action: str, total: int) -> None: ...

    def remove(self, keys, last):  # noqa: ANN001, ANN201 - the Sender protocol
        self.removed += list(keys)

        @dataclass
        class _Outcome:
            failed: dict = field(default_factory=dict)

        return _Outcome()

    def finish(self) -> None: ...


def test_sync_state_removal_sends_a_removal_and_keeps_a_receipt(tmp_path: Path) -> None:
    destination = next(d for d in load_destinations(include_disabled=True) if d.type == "brevo")
    path = tmp_path / "activation" / f"{destination.name}.duckdb"
    path.parent.mkdir(parents=True)
    with duckdb.connect(str(path)) as con:
        con.execute(
            "create table member_state (destination varchar, profile_id varchar, status varchar,"
            " sent_hash varchar, vendor_key varchar)"
        )
        con.execute(
            "insert into member_state values (?, 'p-1', 'sent', 'h', 'an@x.be'),"
            " (?, 'p-2', 'sent', 'h', 'other@x.be')",
            [destination.name, destination.name],
        )
    sender = _FakeSender()
    receipts = purge_sync_state(tmp_path, ClearMatcher(_person()), sender_factory=lambda d: sender)
    assert sender.removed == [("p-1", "an@x.be")]
    assert receipts[0]["destination"] == destination.name
    assert receipts[0]["status"] == "removed"
    with duckdb.connect(str(path)) as con:
        assert con.execute("select profile_id from member_state").fetchall() == [("p-2",)]


def test_exported_files_are_rewritten_without_the_person(tmp_path: Path) -> None:
    folder = tmp_path / "newsletter"
    folder.mkdir()
    (folder / "a.csv").write_text(
        "profile_id,email,first_name\np-1,AN.PEETERS@telenet.be,An\np-9,jan@x.be,Jan\n"
    )
    removed = purge_export_files(tmp_path, ClearMatcher(_person()))
    assert removed == {"newsletter": 1}
    assert (folder / "a.csv").read_text() == "profile_id,email,first_name\np-9,jan@x.be,Jan\n"


def test_inventory_flags_an_uncovered_personal_column() -> None:
    with duckdb.connect() as con:
        con.execute("create schema marts")
        con.execute("create table marts.new_table (profile_id varchar, home_street varchar)")
        con.execute("create schema reporting")
        con.execute("create table reporting.contacts (email varchar)")
        uncovered = uncovered_columns(con, load_inventory())
        violations = minimisation_violations(con)
    assert "marts.new_table.home_street" in uncovered
    assert "reporting.contacts.email" in uncovered
    assert "marts.new_table.profile_id" not in uncovered
    assert violations == []
