"""Request and response bodies of the profile API; FastAPI derives the OpenAPI schema from them."""

import re
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cdp_pipeline.publish.snapshot import IDENTIFIER_KINDS

MAX_BATCH = 500
MAX_VALUE_LENGTH = 128
# Identifiers of the sources are ids, UUIDs, account numbers and hex digests: this set covers
# them and keeps white space, slashes and control characters out of every look-up.
VALUE_PATTERN = r"^[A-Za-z0-9._:@+=~-]{1,128}$"
_VALUE_RE = re.compile(VALUE_PATTERN)
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")


class IdentifierKind(StrEnum):
    """Which identifier a touchpoint holds."""

    profile_id = "profile_id"
    a_profiel_id = "a_profiel_id"
    anonymous_id = "anonymous_id"
    device_id = "device_id"
    email_sha256 = "email_sha256"


assert tuple(kind.value for kind in IdentifierKind) == IDENTIFIER_KINDS


def normalise_value(kind: IdentifierKind, value: str) -> str:
    """The value as stored in the snapshot; a ValueError saying what is wrong with it."""
    if not _VALUE_RE.fullmatch(value):
        raise ValueError(
            f"A {kind.value} is 1 to {MAX_VALUE_LENGTH} characters of letters, digits and ._:@+=~-"
        )
    if kind is IdentifierKind.email_sha256:
        if not _SHA256_RE.fullmatch(value):
            raise ValueError(
                "email_sha256 is the 64 hexadecimal characters of SHA-256 over the e-mail "
                "address trimmed and lower-cased"
            )
        return value.lower()
    return value


class SegmentMembership(BaseModel):
    """A segment the profile is in now."""

    segment: str
    automatic: bool = Field(description="True for automatic (clustered) segments, named auto_*")
    entered_at: datetime | None = Field(description="When the profile entered the segment (UTC)")


class Score(BaseModel):
    """A propensity model's output for the profile."""

    model: str
    decile: int | None = Field(description="1 (least likely) to 10 (most likely)")
    score: float | None = None


class Consent(BaseModel):
    """The profile's consent for one purpose."""

    status: str = Field(description="granted, withdrawn or unknown")
    updated_at: datetime | None = None
    source: str | None = None


class Contact(BaseModel):
    """Contact details; served only to keys with the contact scope."""

    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None


TraitValue = str | int | float | bool | None | list[str | int | float | bool | None]


class Profile(BaseModel):
    """What the platform knows about one person, limited to the key's scopes.

    A part the key has no scope for is absent from the body (not empty).
    """

    profile_id: str
    segments: list[SegmentMembership] | None = None
    traits: dict[str, TraitValue] | None = None
    scores: list[Score] | None = None
    consents: dict[str, Consent] | None = None
    contact: Contact | None = None


class ProfileResponse(BaseModel):
    """One profile and the snapshot it was read from."""

    snapshot: str = Field(description="Name of the serving snapshot (the night) answering")
    profile: Profile


class ErrorBody(BaseModel):
    """A 4xx/5xx answer other than a validation error."""

    detail: str


class IdentifierIn(BaseModel):
    """One identifier of a batch."""

    model_config = ConfigDict(extra="forbid")

    kind: IdentifierKind
    value: str = Field(min_length=1, max_length=MAX_VALUE_LENGTH, pattern=VALUE_PATTERN)

    @model_validator(mode="after")
    def _check_value(self) -> "IdentifierIn":
        self.value = normalise_value(self.kind, self.value)
        return self


class BatchRequest(BaseModel):
    """Up to MAX_BATCH identifiers, answered in the same order."""

    model_config = ConfigDict(extra="forbid")

    identifiers: list[IdentifierIn] = Field(min_length=1, max_length=MAX_BATCH)
    fields: list[str] | None = Field(
        default=None,
        description="Parts to return (segments, traits, scores, consents, contact); "
        "default: every part the key may read",
    )

    @field_validator("identifiers", mode="before")
    @classmethod
    def _limit(cls, value: object) -> object:
        # Checked before the items are validated, so a huge body fails fast and clearly.
        if isinstance(value, list) and len(value) > MAX_BATCH:
            raise ValueError(f"At most {MAX_BATCH} identifiers per batch; got {len(value)}")
        return value


class BatchResult(BaseModel):
    """The answer for one identifier of a batch."""

    kind: IdentifierKind
    value: str
    found: bool
    profile: Profile | None = None


class BatchResponse(BaseModel):
    """Answers in the order of the request."""

    snapshot: str
    results: list[BatchResult]


class Health(BaseModel):
    """Whether the service has data to serve."""

    status: str
    snapshot: str | None = None
