"""Privacy building blocks on small data: tombstones, sync-state removals, exports, inventory."""

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from cdp_pipeline.activation.config import load_destinations
from cdp_pipeline.privacy.erasure import matching_values, purge_export_files, purge_sync_state
from cdp_pipeline.privacy.identifiers import (
    ClearMatcher,
    Matcher,
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


# Spellings of identifiers the SQL prefilter must not lose: case, inner and outer white
# space of every kind, control characters, other scripts' letters and digits, phone
# punctuation, trunk prefixes, extensions, other countries (leading zero, short numbers).
_SPELLINGS = {
    "email": [
        " An.Peeters@Telenet.be ",
        "AN.PEETERS@TELENET.BE",
        "an. peeters @telenet.be",
        "\tan.peeters@telenet.be\r\n",
        "\x1can.peeters@telenet.be\x0b",
        "an.peeters@telenet.be\u00a0",
        "\u3000Ａn.peeters@telenet.be",
        "İnes@telenet.be",
        "someone.else@telenet.be",
        "   ",
    ],
    "phone": [
        "0476 12 34 56",
        "+32 (0)476 12.34.56",
        "0032-476/12.34.56",
        "0476 12 34 56 ext. 12",
        "0476123456,12",
        "０４７６１２３４５６",
        "+32 476 ABC DEF",
        "+39 06 1234 5678",
        "+54 9 11 2345-6789",
        "+683 4002",
        "+1 (650) 253-0000",
        "03 202 12 11",
        "0477 99 99 99",
    ],
    "a_profiel_id": [" ap-000123", "ap-000123\t", "AP-000123", "ap-000123\u2003", "ap-000124"],
    "record": ["aprofiel|ap-000123", " aprofiel|ap-000123 ", "aprofiel|ap-0001230"],
}


class _PythonOnly(Matcher):
    """The matcher without its SQL prefilter: every value judged in Python."""

    def __init__(self, inner: Matcher) -> None:
        self.inner = inner

    def matches(self, kind: str, value: str) -> bool:
        return self.inner.matches(kind, value)


def test_sql_prefilter_finds_what_python_alone_finds() -> None:
    with duckdb.connect() as con:
        con.execute("create table ids (kind varchar, value varchar)")
        con.executemany(
            "insert into ids values (?, ?)",
            [(kind, value) for kind, values in _SPELLINGS.items() for value in values],
        )
        for kind, values in _SPELLINGS.items():
            where, params = "and kind = $kind", {"kind": kind}
            for value in values:
                person = PersonIdentifiers()
                if not person.add(kind, value):
                    continue
                matcher = ClearMatcher(person)
                assert matcher.sql_prefilter(kind, "value") is not None
                found = matching_values(con, "ids", kind, "value", matcher, where, params)
                expected = matching_values(
                    con, "ids", kind, "value", _PythonOnly(matcher), where, params
                )
                assert value in found
                assert sorted(found) == sorted(expected), (kind, value)
        # The filter does filter: another person's values never reach Python.
        person = PersonIdentifiers()
        person.add("email", "an.peeters@telenet.be")
        condition, binds = ClearMatcher(person).sql_prefilter("email", "value")
        kept = con.execute(
            f"select value from ids where kind = 'email' and {condition}", binds
        ).fetchall()
        assert ("someone.else@telenet.be",) not in kept


def test_nothing_to_match_reads_nothing() -> None:
    # No query at all: the relation does not even exist.
    with duckdb.connect() as con:
        empty = TombstoneMatcher(b"salt", frozenset())
        assert not empty.can_match("email")
        assert matching_values(con, "missing", "email", "value", empty) == []
        person = PersonIdentifiers()
        person.add("email", "an.peeters@telenet.be")
        assert matching_values(con, "missing", "phone", "value", ClearMatcher(person)) == []
