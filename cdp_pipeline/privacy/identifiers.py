"""A person's identifiers: normalised per kind, and matched either in clear or as salted hashes.

The same normalisation serves the erasure night (values in clear, from the identity graph)
and every later night (only the salted hashes of the tombstones are left), so a stale row
that comes back in any spelling of the address or the phone number is recognised.
"""

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from cdp_pipeline.identity import normalise

# Kinds of identifier the platform erases by. `record` is "<source>|<record_key>" (both
# roles of a registration are one raw row), `record_id` is identity's source|role|key.
IDENTIFIER_KINDS = (
    "email",
    "phone",
    "a_profiel_id",
    "device_id",
    "anonymous_id",
    "record",
    "record_id",
    "profile_id",
)

DIGEST_PREFIX = "hmac-sha256:"


@lru_cache(maxsize=200_000)
def _phone(value: str) -> str | None:
    parsed = normalise.phone(value)
    return parsed[0] if parsed else None


def normalise_identifier(kind: str, value: object) -> str | None:
    """The comparable form of ``value``: e-mail trimmed and lower-cased, phone in E.164."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if kind == "email":
        return text.replace(" ", "").lower()
    if kind == "phone":
        return _phone(text)
    return text


def digest(salt: bytes, kind: str, value: str) -> str:
    """HMAC-SHA256 of a normalised identifier under the secret salt, typed by its kind."""
    mac = hmac.new(salt, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    return DIGEST_PREFIX + mac


def is_digest(value: object) -> bool:
    return isinstance(value, str) and value.startswith(DIGEST_PREFIX)


@dataclass
class PersonIdentifiers:
    """Every normalised identifier of one (or several merged) erased person(s), by kind."""

    values: dict[str, set[str]] = field(
        default_factory=lambda: {kind: set() for kind in IDENTIFIER_KINDS}
    )

    def add(self, kind: str, value: object) -> bool:
        """Add one identifier; True when it is new."""
        normalised = normalise_identifier(kind, value)
        if normalised is None or normalised in self.values[kind]:
            return False
        self.values[kind].add(normalised)
        return True

    def add_all(self, kind: str, values: Iterable[object]) -> None:
        for value in values:
            self.add(kind, value)

    def update(self, other: "PersonIdentifiers") -> None:
        for kind, values in other.values.items():
            self.values[kind] |= values

    def __len__(self) -> int:
        return sum(len(v) for v in self.values.values())

    def digests(self, salt: bytes) -> dict[str, str]:
        """digest -> kind, for the tombstones."""
        return {
            digest(salt, kind, value): kind
            for kind, values in self.values.items()
            for value in values
        }

    def counts(self) -> dict[str, int]:
        return {kind: len(values) for kind, values in self.values.items()}


class Matcher:
    """Decides whether a normalised identifier belongs to an erased person."""

    def matches(self, kind: str, value: str) -> bool:
        raise NotImplementedError


@dataclass
class ClearMatcher(Matcher):
    """Matches against identifiers in clear (the night the erasure is carried out)."""

    person: PersonIdentifiers

    def matches(self, kind: str, value: str) -> bool:
        return value in self.person.values.get(kind, ())


@dataclass
class TombstoneMatcher(Matcher):
    """Matches against the salted hashes of every erasure ever carried out."""

    salt: bytes
    tombstones: frozenset[str]

    def matches(self, kind: str, value: str) -> bool:
        return digest(self.salt, kind, value) in self.tombstones


@dataclass
class AnyMatcher(Matcher):
    """Matches when any of the matchers does."""

    matchers: list[Matcher]

    def matches(self, kind: str, value: str) -> bool:
        return any(m.matches(kind, value) for m in self.matchers)
