"""The true population behind the sample exports: people, households and their habits.

Every source record the generator writes is an observation of one of these people, so
the population is the ground truth the identity tests score against. Latent traits
(culture and sport affinity, engagement, lapsing) drive the behaviour written to the
transactional and engagement sources, which gives propensity models real signal.
"""

import math
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TypeVar

from cdp_pipeline.sample_data.names import (
    CHILD_NAMES,
    CULTURE_CATEGORIES,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    JEWISH_POSTCODES,
    LAST_NAMES,
    ORIGINS,
    POSTCODES,
)
from cdp_pipeline.sample_data.render import day_start_utc, email_part

DAY = 86400.0


@dataclass(slots=True)
class Address:
    """A postal address as the register holds it (number and box apart)."""

    street: str
    number: str
    box: str
    postcode: str
    municipality: str


@dataclass(slots=True, eq=False)
class Household:
    """People living at one address; they may share a landline and an e-mail address."""

    household_id: str
    origin: str
    address: Address
    old_address: Address | None = None
    moved_at: float | None = None
    landline: str | None = None
    family_email: str | None = None
    members: list["Person"] = field(default_factory=list)

    def address_at(self, ts: float, lag: float = 0.0) -> Address:
        """The address a source saw at ``ts``; ``lag`` delays when the move is noticed."""
        if self.old_address is not None and self.moved_at is not None:
            if ts < self.moved_at + lag:
                return self.old_address
        return self.address


@dataclass(slots=True, eq=False)
class Person:
    """One real person of the sample, with the latent traits that drive behaviour."""

    idx: int
    person_id: str
    household: Household
    origin: str
    gender: str
    first_name: str
    nicknames: tuple[str, ...]
    last_name: str
    birth_date: date
    is_child: bool
    language: str
    culture: float
    sport: float
    engagement: float
    cat_weights: tuple[float, ...]
    lapsed_at: float | None
    uses_nickname: bool
    email: str | None = None
    alt_email: str | None = None
    mobile: str | None = None
    shares_mobile: bool = False
    accounts: list["Account"] = field(default_factory=list)

    def age_on(self, d: date) -> int:
        """Age in whole years on day ``d``."""
        years = d.year - self.birth_date.year
        if (d.month, d.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return years

    def account_at(self, ts: float) -> "Account | None":
        """The account this person would be logged in with at ``ts``, if any."""
        for acc in self.accounts:
            if acc.is_main and acc.created_at <= ts and acc.status == "active":
                return acc
        return None

    @property
    def contact_email(self) -> str | None:
        """The address this person gives to forms: their own or the family's."""
        return self.email or self.household.family_email

    @property
    def phone(self) -> str | None:
        """The number this person gives: their mobile or the family landline."""
        return self.mobile or self.household.landline


@dataclass(slots=True, eq=False)
class Account:
    """One A-profiel account; a person may hold a second, forgotten one."""

    account_id: str
    person: Person
    email: str
    created_at: float
    updated_at: float
    status: str
    is_main: bool


T = TypeVar("T")


def _weighted(rng: random.Random, items: list[T], weights: list[float]) -> T:
    return rng.choices(items, weights=weights, k=1)[0]


class PopulationBuilder:
    """Builds households until ``n`` people exist; all randomness comes from ``rng``."""

    def __init__(
        self,
        n: int,
        rng: random.Random,
        as_of: date,
        *,
        first_person: int = 0,
        first_household: int = 0,
        taken_emails: set[str] | None = None,
        taken_phones: set[str] | None = None,
    ) -> None:
        """``first_person``/``first_household`` offset the ids and ``taken_*`` are the
        addresses and numbers of an earlier delivery, so a next delivery's people are new."""
        self.n = n
        self.first_person = first_person
        self.first_household = first_household
        self.rng = rng
        self.as_of = as_of
        self.as_of_ts = day_start_utc(as_of)
        self.people: list[Person] = []
        self.households: list[Household] = []
        self._emails: set[str] = set(taken_emails or ())
        self._phones: set[str] = set(taken_phones or ())
        self._origins = [o for o, _ in ORIGINS]
        self._origin_w = [w for _, w in ORIGINS]
        self._pc = POSTCODES
        self._pc_w = [w for *_, w in POSTCODES]
        self._domains = [d for d, _ in EMAIL_DOMAINS]
        self._domain_w = [w for _, w in EMAIL_DOMAINS]

    # ------------------------------------------------------------ building blocks

    def _address(self, origin: str) -> Address:
        rng = self.rng
        if origin == "jewish" and rng.random() < 0.8:
            code = rng.choice(JEWISH_POSTCODES)
            entry = next(p for p in self._pc if p[0] == code)
        else:
            entry = _weighted(rng, self._pc, self._pc_w)
        postcode, municipality, streets, _ = entry
        # House numbers skew low, as in real streets; a third of homes are flats with a box.
        number = str(int(rng.paretovariate(1.2) * 3))
        if rng.random() < 0.05:
            number += rng.choice("ABC")
        box = ""
        if rng.random() < 0.33:
            box = str(rng.randint(1, 12)) if rng.random() < 0.9 else rng.choice(["A", "B"])
        return Address(rng.choice(streets), number, box, postcode, municipality)

    def _unique_phone(self, prefix: str, digits: int) -> str:
        while True:
            num = prefix + "".join(str(self.rng.randrange(10)) for _ in range(digits))
            if num not in self._phones:
                self._phones.add(num)
                return num

    def _mobile(self) -> str:
        return self._unique_phone("04" + self.rng.choice("5789") + str(self.rng.randrange(10)), 6)

    def _unique_email(self, local: str, domain: str) -> str:
        email = f"{local}@{domain}"
        while email in self._emails:
            email = f"{local}{self.rng.randint(1, 99)}@{domain}"
        self._emails.add(email)
        return email

    def _personal_email(self, first: str, last: str, birth: date) -> str:
        rng = self.rng
        f, ln = email_part(first), email_part(last)
        yy = f"{birth.year % 100:02d}"
        pattern = rng.random()
        if pattern < 0.45:
            local = f"{f}.{ln}"
        elif pattern < 0.6:
            local = f"{f}{ln}"
        elif pattern < 0.7:
            local = f"{f[:1]}.{ln}"
        elif pattern < 0.8:
            local = f"{f}_{ln}{yy}"
        elif pattern < 0.88:
            local = f"{ln}.{f}"
        else:
            local = f"{f}{yy}"
        return self._unique_email(local, _weighted(rng, self._domains, self._domain_w))

    def _first_name(self, origin: str, gender: str) -> tuple[str, tuple[str, ...]]:
        return self.rng.choice(FIRST_NAMES[origin][gender])

    def _last_name(self, origin: str) -> str:
        return self.rng.choice(LAST_NAMES[origin])

    @staticmethod
    def _gendered(last: str, origin: str, gender: str) -> str:
        # Polish family names agree with gender: Kowalski / Kowalska.
        if origin == "polish" and gender == "F":
            for masc, fem in (("ski", "ska"), ("cki", "cka"), ("dzki", "dzka")):
                if last.endswith(masc):
                    return last[: -len(masc)] + fem
        return last

    def _birth(self, age_lo: int, age_hi: int) -> date:
        age_days = self.rng.uniform(age_lo * 365.25, (age_hi + 1) * 365.25 - 1)
        return self.as_of - timedelta(days=int(age_days))

    def _language(self, origin: str) -> str:
        r = self.rng.random()
        if origin == "french":
            return "fr" if r < 0.6 else "nl"
        if origin in ("flemish",):
            return "nl" if r < 0.97 else "en"
        return "nl" if r < 0.75 else ("fr" if r < 0.85 else "en")

    # ------------------------------------------------------------ people

    def _person(
        self,
        hh: Household,
        origin: str,
        gender: str,
        birth: date,
        last: str,
        is_child: bool,
        first: tuple[str, tuple[str, ...]] | None = None,
    ) -> Person:
        rng = self.rng
        idx = len(self.people)
        if first is None:
            first = self._first_name(origin, gender)
        age = (self.as_of - birth).days / 365.25
        # Affinities are skewed: most people do little, a few do a lot (Beta-shaped).
        culture = rng.betavariate(1.2, 3.0) * (1.15 if age > 40 else 1.0)
        sport = rng.betavariate(1.2, 3.5) * (1.3 if age < 40 else 0.8)
        engagement = rng.betavariate(1.5, 3.0)
        weights = [rng.gammavariate(0.5, 1.0) + 1e-3 for _ in CULTURE_CATEGORIES]
        total = sum(weights)
        lapsed = None
        if rng.random() < 0.15:
            lapsed = self.as_of_ts - rng.uniform(30, 540) * DAY
        p = Person(
            idx=idx,
            person_id=f"P{self.first_person + idx + 1:06d}",
            household=hh,
            origin=origin,
            gender=gender,
            first_name=first[0],
            nicknames=first[1],
            last_name=self._gendered(last, origin, gender),
            birth_date=birth,
            is_child=is_child,
            language=self._language(origin),
            culture=min(culture, 1.0),
            sport=min(sport, 1.0),
            engagement=engagement,
            cat_weights=tuple(w / total for w in weights),
            lapsed_at=lapsed,
            uses_nickname=bool(first[1]) and rng.random() < 0.45,
        )
        self.people.append(p)
        hh.members.append(p)
        return p

    def _adult_contacts(self, p: Person, hh: Household) -> None:
        rng = self.rng
        age = p.age_on(self.as_of)
        shown_first = p.nicknames[0] if p.uses_nickname and rng.random() < 0.5 else p.first_name
        own_email_p = 0.6 if age > 75 else 0.92
        if hh.family_email is not None:
            own_email_p = 0.45
        if p.is_child:
            own_email_p = 0.5 if age >= 14 else 0.0
        if rng.random() < own_email_p:
            p.email = self._personal_email(shown_first, p.last_name, p.birth_date)
        if not p.is_child and rng.random() < 0.12:
            # A second address (work, or an old provider) that some systems still hold.
            domain = rng.choice(["hotmail.com", "skynet.be", "werk.example.be", "gmail.com"])
            p.alt_email = self._unique_email(
                f"{email_part(p.first_name)}.{email_part(p.last_name)}.{rng.randint(1, 9)}", domain
            )
        mobile_p = 0.7 if age > 75 else 0.93
        if p.is_child:
            mobile_p = 0.7 if age >= 14 else 0.0
        if rng.random() < mobile_p:
            p.mobile = self._mobile()

    def _family_email(self, hh: Household, adults: list[Person]) -> str:
        rng = self.rng
        a = adults[0]
        ln = email_part(a.last_name)
        r = rng.random()
        if r < 0.4 and len(adults) > 1 and adults[1].last_name != a.last_name:
            local = f"{ln}.{email_part(adults[1].last_name)}"
        elif r < 0.7:
            local = f"fam.{ln}"
        elif len(adults) > 1:
            local = f"{email_part(a.first_name)}en{email_part(adults[1].first_name)}"
        else:
            local = f"gezin.{ln}"
        return self._unique_email(local, rng.choice(["telenet.be", "skynet.be", "gmail.com"]))

    def _household(self, remaining: int) -> None:
        rng = self.rng
        hid = f"H{self.first_household + len(self.households) + 1:06d}"
        origin = _weighted(rng, self._origins, self._origin_w)
        hh = Household(hid, origin, self._address(origin))
        self.households.append(hh)
        kind = rng.random()
        kids = 0
        # Household mix tuned so that about a fifth of the people are children.
        if kind < 0.37:
            adults_spec = [(18, 90)]
        elif kind < 0.63:
            adults_spec = [(22, 88), None]
        elif kind < 0.87:
            adults_spec = [(25, 55), None]
            kids = rng.choice([1, 1, 2, 2, 3]) if origin != "jewish" else rng.randint(3, 7)
        elif kind < 0.94:
            adults_spec = [(24, 55)]
            kids = rng.choice([1, 1, 2])
        else:
            adults_spec = [(19, 35), (19, 35)]  # flatmates: same address, no relation
        total = min(len(adults_spec) + kids, remaining)
        adults: list[Person] = []
        first_gender = rng.choice("MF")
        for i, spec in enumerate(adults_spec[:total]):
            if spec is None:
                # Partner: close in age, usually other gender, often other family name.
                base = adults[0]
                age = max(18, min(90, base.age_on(self.as_of) + rng.randint(-6, 6)))
                birth = self._birth(age, age)
                gender = (
                    ("F" if base.gender == "M" else "M") if rng.random() < 0.95 else base.gender
                )
                p_origin = (
                    origin if rng.random() < 0.85 else _weighted(rng, self._origins, self._origin_w)
                )
                same_name = origin in ("moroccan", "turkish", "jewish") or rng.random() < 0.2
                last = base.last_name if same_name else self._last_name(p_origin)
                if origin == "polish" and same_name:
                    last = _masculine(last)
                p = self._person(hh, p_origin, gender, birth, last, False)
            else:
                gender = first_gender if i == 0 else rng.choice("MF")
                p_origin = (
                    origin
                    if i == 0 or rng.random() < 0.5
                    else _weighted(rng, self._origins, self._origin_w)
                )
                p = self._person(
                    hh, p_origin, gender, self._birth(*spec), self._last_name(p_origin), False
                )
            adults.append(p)
        n_kids = total - len(adults)
        if n_kids > 0:
            youngest_parent = min(a.age_on(self.as_of) for a in adults)
            max_age = max(0, min(17, youngest_parent - 20))
            twins_left = 2 if n_kids >= 2 and rng.random() < 0.08 else 0
            twin_birth: date | None = None
            surname = _masculine(adults[0].last_name)
            for _ in range(n_kids):
                if twins_left:
                    if twin_birth is None:
                        twin_birth = self._birth(0, max_age)
                    birth = twin_birth
                    twins_left -= 1
                else:
                    birth = self._birth(0, max_age)
                gender = rng.choice("MF")
                used = {m.first_name for m in hh.members}
                name = rng.choice(CHILD_NAMES[gender])
                if rng.random() < 0.35:
                    name = self._first_name(origin, gender)[0]
                while name in used:
                    name = rng.choice(CHILD_NAMES[gender])
                child = self._person(hh, origin, gender, birth, surname, True, (name, ()))
                # Children share the family's taste for sport and culture, with noise.
                child.sport = min(1.0, 0.6 * adults[0].sport + 0.4 * child.sport + 0.05)
                child.culture = 0.5 * adults[0].culture + 0.5 * child.culture
        # Contact data last, so the family e-mail and landline exist before personal ones.
        if len(adults) > 1 and rng.random() < 0.2:
            hh.family_email = self._family_email(hh, adults)
        elif len(adults) == 1 and n_kids > 0 and rng.random() < 0.08:
            hh.family_email = self._family_email(hh, adults)
        oldest = max(a.age_on(self.as_of) for a in adults)
        if rng.random() < (0.55 if oldest > 60 else 0.2):
            hh.landline = self._unique_phone("03" + str(rng.randint(2, 8)), 6)
        for m in hh.members:
            self._adult_contacts(m, hh)
        # Older couples sometimes share one mobile: the same number for two people.
        if len(adults) == 2 and oldest > 60 and rng.random() < 0.25 and adults[0].mobile:
            adults[1].mobile = adults[0].mobile
            adults[1].shares_mobile = True
        if rng.random() < 0.12:
            hh.old_address = hh.address
            hh.address = self._address(origin)
            hh.moved_at = self.as_of_ts - rng.uniform(20, 700) * DAY

    def build(self) -> tuple[list[Person], list[Household]]:
        """Create households until exactly ``n`` people exist."""
        while len(self.people) < self.n:
            self._household(self.n - len(self.people))
        return self.people, self.households


def _masculine(last: str) -> str:
    for fem, masc in (("ska", "ski"), ("cka", "cki"), ("dzka", "dzki")):
        if last.endswith(fem):
            return last[: -len(fem)] + masc
    return last


def poisson(rng: random.Random, lam: float) -> int:
    """Knuth's Poisson draw; fine for the small rates used here."""
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, int(rng.gauss(lam, math.sqrt(lam)) + 0.5))
    limit = math.exp(-lam)
    k, prod = 0, rng.random()
    while prod > limit:
        k += 1
        prod *= rng.random()
    return k
