"""The next night's delivery: about ``fraction`` new people on top of an existing one.

A next delivery lands beside the files already in the landing folder, as the city's
systems deliver (``/work/shared/sources.md``):

- **Full snapshots** (``aprofiel``: "the file is a full snapshot of all accounts"; the
  e-mail provider's contact export and the app's device registry are exports of their
  current state too): the new file ``<source>_<as_of>.<ext>`` holds every row of the
  latest earlier snapshot, unchanged, followed by the new rows.
- **Deltas** (ticket orders, registrations, e-mail events, consents, privacy requests):
  the new file ``<source>_<as_of>.<ext>`` holds only the new rows.
- **web_events** (one file a day): the new visitors' events, which span the last
  ``WEB_DAYS`` days, arrive together in the file of the day before ``as_of``, which must
  not exist yet; earlier daily files are never rewritten.

The new people are new households with new ids (person, household, account, order,
registration, catalogue event and request numbers continue after the highest of the
existing delivery; random device and cookie ids and the people's e-mail addresses and
phone numbers avoid those already used). Existing people get no new activity: the
increment measures the cost of new data, not of changed data. ``_truth/`` gets the new
rows appended. The same existing delivery, ``seed``, ``fraction`` and ``as_of`` give the
same bytes.
"""

import csv
import logging
import random
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

from cdp_pipeline.sample_data.context import IdOffsets
from cdp_pipeline.sample_data.generator import _write_truth, build_sources
from cdp_pipeline.sample_data.population import PopulationBuilder

logger = logging.getLogger(__name__)

# Sources whose export is the whole current state, so a next file repeats the old rows.
SNAPSHOT_SOURCES = ("aprofiel", "newsletter", "app_devices")
# Sources whose next file holds only what is new.
DELTA_SOURCES = ("ticketing", "registrations", "email_events", "consents", "privacy_requests")
# The record keys in _truth/records.csv that come from random ids (ctx.new_id).
_RANDOM_ID_SOURCES = ("app_devices", "web_events")
_TRUTH_FILES = ("records.csv", "people.csv", "privacy_requests.csv")
_DATED_FILE = re.compile(r"_(\d{4}-\d{2}-\d{2})\.(csv|jsonl)$")


class IncrementError(ValueError):
    """The landing folder cannot take a next delivery (names the file and value)."""


def generate_increment(
    out_dir: Path,
    people: int,
    seed: int,
    fraction: float,
    as_of: date,
    web_visit_factor: float = 1.0,
) -> dict[str, int]:
    """Add the next delivery, with ``round(people * fraction)`` new people, to ``out_dir``.

    Args:
        out_dir: a landing folder written by ``generate`` (and possibly earlier increments).
        people: size of the population of the original delivery; the increment adds
            ``max(1, round(people * fraction))`` people.
        seed: seed of the original delivery; the increment's own seed derives from it
            and ``as_of``.
        fraction: share of new people, e.g. 0.01; in (0, 1].
        as_of: the next delivery's date, later than every dated file in ``out_dir``.
        web_visit_factor: as in ``generate``; use the original delivery's value.

    Returns:
        Rows added per source (snapshot sources: the new rows only).
    """
    out_dir = Path(out_dir)
    if not 0 < fraction <= 1:
        raise IncrementError(f"increment must be in (0, 1], got {fraction}")
    truth_dir = out_dir / "_truth"
    for name in _TRUTH_FILES:
        if not (truth_dir / name).is_file():
            raise IncrementError(
                f"{truth_dir / name}: missing; an increment extends a delivery written by "
                "`cdp sample-data` (without --increment) in the same folder"
            )
    last = _latest_delivery_date(out_dir)
    if as_of <= last:
        raise IncrementError(
            f"as_of {as_of.isoformat()} must be later than the latest delivery in {out_dir} "
            f"({last.isoformat()})"
        )
    new_people = max(1, round(people * fraction))
    web_file = out_dir / "web_events" / f"{(as_of - timedelta(days=1)).isoformat()}.jsonl"
    # Dated exports cannot clash (as_of is later than all); the daily web file could.
    if web_file.exists():
        raise IncrementError(f"{web_file}: already exists; an increment never rewrites a file")
    offsets, taken_ids, emails, phones = _existing_ids(out_dir)
    # A string seed is hashed (SHA-512) by random.Random: stable across runs and platforms.
    rng = random.Random(f"{seed}:increment:{as_of.isoformat()}")
    builder = PopulationBuilder(
        new_people,
        rng,
        as_of,
        first_person=offsets.person,
        first_household=offsets.household,
        taken_emails=emails,
        taken_phones=phones,
    )
    with tempfile.TemporaryDirectory(prefix="cdp-increment-", dir=out_dir) as scratch_name:
        scratch = Path(scratch_name)
        ctx = build_sources(
            scratch,
            builder,
            rng,
            as_of,
            offsets=offsets,
            taken_ids=taken_ids,
            web_visit_factor=web_visit_factor,
        )
        _write_truth(ctx)
        for source in SNAPSHOT_SOURCES:
            _extend_snapshot(out_dir, scratch, source)
        for source in DELTA_SOURCES:
            for path in sorted((scratch / source).iterdir()):
                target = out_dir / source / path.name
                if target.exists():
                    raise IncrementError(f"{target}: already exists; not overwritten")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(path, target)
        with web_file.open("wb") as out:
            for path in sorted((scratch / "web_events").glob("*.jsonl")):
                with path.open("rb") as part:
                    shutil.copyfileobj(part, out)
        for name in _TRUTH_FILES:
            _append_without_header(scratch / "_truth" / name, truth_dir / name)
    logger.info(
        "Increment of %d people (as of %s) added to %s: %s",
        new_people,
        as_of.isoformat(),
        out_dir,
        ctx.counts,
    )
    return dict(ctx.counts)


def _latest_delivery_date(out_dir: Path) -> date:
    """The latest date in the names of the dated files (``aprofiel_2025-12-01.jsonl``)."""
    dates = [
        date.fromisoformat(match.group(1))
        for path in out_dir.glob("*/*")
        if (match := _DATED_FILE.search(path.name))
    ]
    if not dates:
        raise IncrementError(f"{out_dir}: no dated export (<source>_YYYY-MM-DD.ext) found")
    return max(dates)


# Sequential ids of person records: source -> (pattern of the key, first number issued).
_SEQUENTIAL = {
    "aprofiel": (re.compile(r"ap-(\d+)"), 1),
    "ticketing": (re.compile(r"T-\d{4}-(\d+)"), 100000),
    "registrations": (re.compile(r"R-(\d+)"), 80000),
}
# Catalogue events are referenced by event id or agenda path in tickets, web and e-mail
# events (an unsold event can still be browsed), never listed on their own.
_CATALOGUE_REF = re.compile(rb"EV-(\d+)|/agenda/[^\"/]*-(\d+)")
_FIRST_EVENT = 4000
_FIRST_REQUEST = 41


def _read_csv(path: Path) -> Iterator[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        yield from csv.DictReader(fh)


def _existing_ids(out_dir: Path) -> tuple[IdOffsets, set[str], set[str], set[str]]:
    """Id offsets past the existing delivery, its random ids, e-mails and phones."""
    truth = out_dir / "_truth"
    highest = {source: first - 1 for source, (_, first) in _SEQUENTIAL.items()}
    taken: set[str] = set()
    for row in _read_csv(truth / "records.csv"):
        source, key = row["source"], row["record_key"]
        if source in _RANDOM_ID_SOURCES:
            taken.add(key)
        elif source in _SEQUENTIAL and (match := _SEQUENTIAL[source][0].fullmatch(key)):
            highest[source] = max(highest[source], int(match.group(1)))
    emails: set[str] = set()
    phones: set[str] = set()
    person = household = 0
    for row in _read_csv(truth / "people.csv"):
        person = max(person, int(row["person_id"].removeprefix("P")))
        household = max(household, int(row["household_id"].removeprefix("H")))
        emails.update(v for v in (row["email"], row["family_email"], row["alt_email"]) if v)
        phones.update(v for v in (row["mobile"], row["landline"]) if v)
    request = max(
        (
            int(r["request_id"].removeprefix("PR-"))
            for r in _read_csv(truth / "privacy_requests.csv")
        ),
        default=_FIRST_REQUEST - 1,
    )
    offsets = IdOffsets(
        person=person,
        household=household,
        account=highest["aprofiel"],
        event=_catalogue_max(out_dir) - _FIRST_EVENT + 1,
        order=highest["ticketing"] - 100000 + 1,
        registration=highest["registrations"] - 80000 + 1,
        request=request - _FIRST_REQUEST + 1,
    )
    return offsets, taken, emails, phones


def _catalogue_max(out_dir: Path) -> int:
    """The highest catalogue event number referenced anywhere in the delivery."""
    best = _FIRST_EVENT - 1
    for source in ("ticketing", "web_events", "email_events"):
        for path in sorted((out_dir / source).glob("*")):
            for match in _CATALOGUE_REF.finditer(path.read_bytes()):
                best = max(best, int(match.group(1) or match.group(2)))
    return best


def _extend_snapshot(out_dir: Path, scratch: Path, source: str) -> None:
    """Write ``<source>_<as_of>``: the latest earlier snapshot's bytes, then the new rows."""
    (new_file,) = (scratch / source).iterdir()
    earlier = sorted(
        (p for p in (out_dir / source).iterdir() if _DATED_FILE.search(p.name)),
        key=lambda p: _DATED_FILE.search(p.name).group(1),  # type: ignore[union-attr]
    )
    if not earlier:
        raise IncrementError(f"{out_dir / source}: no earlier snapshot to extend")
    target = out_dir / source / new_file.name
    with target.open("wb") as out:
        with earlier[-1].open("rb") as old:
            shutil.copyfileobj(old, out)
        with new_file.open("rb") as new:
            if new_file.suffix == ".csv":
                new.readline()  # the header, already in the old snapshot
            shutil.copyfileobj(new, out)


def _append_without_header(source: Path, target: Path) -> None:
    with source.open("rb") as new, target.open("ab") as out:
        new.readline()
        shutil.copyfileobj(new, out)
