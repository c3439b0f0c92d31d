"""Shared state of one generation run: the population, what was generated, the truth."""

import csv
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from cdp_pipeline.sample_data.population import Household, Person
from cdp_pipeline.sample_data.render import (
    has_particle,
    particle_variants,
    strip_accents,
    typo,
)

DAY = 86400.0
# Transactions go back this far; web events cover only the last WEB_DAYS days.
HISTORY_DAYS = 548
WEB_DAYS = 30
EMAIL_DAYS = 120


@dataclass(slots=True, eq=False)
class CatalogueEvent:
    """One performance or match sold in the webshop."""

    event_id: str
    name: str
    venue: str
    category: str
    perf_ts: float
    price: float
    path: str


@dataclass(slots=True, eq=False)
class Order:
    """One ticket order, before it is written as a row."""

    ts: float
    person: Person
    channel: str
    event: CatalogueEvent
    quantity: int
    status: str
    a_profiel_id: str
    order_nr: str = ""


@dataclass(slots=True, eq=False)
class Subscription:
    """One (list, e-mail) contact of the e-mail service provider."""

    person: Person
    list_name: str
    email: str
    status: str
    optin_ts: float | None
    unsub_ts: float | None
    # When a cleaned address hard-bounced; drives the bounce event, not exported.
    bounce_ts: float | None = None


@dataclass(slots=True, eq=False)
class Device:
    """One app install."""

    device_id: str
    person: Person
    platform: str
    a_profiel_id: str
    push_opt_in: bool
    first_seen: float
    last_seen: float
    app_version: str
    clock_skew: float = 0.0


# How each system writes names: (nickname, lower-case, upper-case, typo, accents dropped,
# particle variant, first/last swapped, names left empty). The box office keys names in
# a hurry on an old terminal; the register holds official names.
NAME_STYLES: dict[str, tuple[float, float, float, float, float, float, float, float]] = {
    "aprofiel": (0.0, 0.0, 0.0, 0.02, 0.0, 0.1, 0.0, 0.0),
    "web": (0.7, 0.04, 0.0, 0.02, 0.1, 0.3, 0.01, 0.0),
    "kassa": (0.5, 0.0, 0.08, 0.06, 0.6, 0.45, 0.05, 0.03),
    "registration": (0.6, 0.03, 0.0, 0.02, 0.15, 0.3, 0.01, 0.0),
    "newsletter": (0.7, 0.05, 0.0, 0.01, 0.2, 0.3, 0.02, 0.2),
}


@dataclass(frozen=True)
class IdOffsets:
    """Where the sequential ids of a run start, so a next delivery's ids do not collide.

    All zero for a first delivery; ``increment.generate_increment`` sets them past the
    highest id of the delivery it extends.
    """

    person: int = 0
    household: int = 0
    account: int = 0
    event: int = 0
    order: int = 0
    registration: int = 0
    request: int = 0


@dataclass
class Context:
    """Everything one run shares between the source generators."""

    out_dir: Path
    as_of: date
    as_of_ts: float
    rng: random.Random
    people: list[Person]
    households: list[Household]
    truth: list[tuple[str, str, str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    catalogue: list[CatalogueEvent] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    orders_by_person: dict[int, list[Order]] = field(default_factory=dict)
    subscriptions: list[Subscription] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)
    privacy_truth: list[tuple[str, str]] = field(default_factory=list)
    offsets: IdOffsets = field(default_factory=IdOffsets)
    # Scales the number of website visits and app sessions per visitor (1.0: the sample's
    # own rates, about 4 web events per person).
    web_visit_factor: float = 1.0
    _ids: set[str] = field(default_factory=set)

    @property
    def history_start(self) -> float:
        """First instant of the transactional history."""
        return self.as_of_ts - HISTORY_DAYS * DAY

    def add_truth(self, source: str, key: str, role: str, person: Person) -> None:
        """Record which true person a source record describes."""
        self.truth.append((source, key, role, person.person_id))

    def new_id(self, prefix: str, hex_digits: int) -> str:
        """A random hexadecimal id, unique within the run (ids are compared, not ranged)."""
        while True:
            value = f"{prefix}{self.rng.getrandbits(hex_digits * 4):0{hex_digits}x}"
            if value not in self._ids:
                self._ids.add(value)
                return value

    def source_dir(self, source: str) -> Path:
        """The landing sub-folder of ``source``, created if needed."""
        path = self.out_dir / source
        path.mkdir(parents=True, exist_ok=True)
        return path

    def names(self, p: Person, system: str) -> tuple[str, str]:
        """First and last name of ``p`` as ``system`` would hold them."""
        rng = self.rng
        nick, lower, upper, typo_p, plain, particle, swap, empty = NAME_STYLES[system]
        if empty and rng.random() < empty:
            return "", ""
        first = p.first_name
        if p.nicknames and p.uses_nickname and rng.random() < nick:
            first = p.nicknames[0] if rng.random() < 0.7 else rng.choice(p.nicknames)
        last = p.last_name
        if particle and has_particle(last) and rng.random() < particle:
            last = rng.choice(particle_variants(last)[1:])
        if plain and rng.random() < plain:
            first, last = strip_accents(first), strip_accents(last)
        if typo_p and rng.random() < typo_p:
            if rng.random() < 0.5:
                first = typo(first, rng)
            else:
                last = typo(last, rng)
        r = rng.random()
        if r < lower:
            first, last = first.lower(), last.lower()
        elif r < lower + upper:
            first, last = first.upper(), last.upper()
        if swap and rng.random() < swap:
            first, last = last, first
        return first, last


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    """Write JSON lines (UTF-8, ``\\n``) and return the number of lines."""
    n = 0
    dumps = json.dumps
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(dumps(row, ensure_ascii=False))
            fh.write("\n")
            n += 1
    return n


def write_csv(
    path: Path,
    header: list[str],
    rows: Iterable[list[str]],
    *,
    delimiter: str = ",",
    encoding: str = "utf-8",
    lineterminator: str = "\n",
) -> int:
    """Write a CSV with the exact ``header`` and return the number of data rows."""
    n = 0
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator=lineterminator)
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            n += 1
    return n
