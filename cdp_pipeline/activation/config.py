"""The declared destinations (``cdp_pipeline/config/destinations.yml``), validated on load.

A destination names the environment *variables* that hold its secrets, never the secrets
themselves; :func:`secret` reads them at run time, so a YAML file can be committed and a
missing secret fails the sync that needs it, not the code location.
"""

from pathlib import Path
from typing import Annotated, Any, Literal

import dagster as dg
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cdp_pipeline.settings import CONFIG_DIR

DEFAULT_DESTINATIONS_PATH = CONFIG_DIR / "destinations.yml"
Purpose = Literal["email_marketing", "push_marketing", "ad_targeting", "profiling"]
SyncMode = Literal["upsert", "mirror", "add_only"]
# Profile fields a destination may send; anything else is a typo or a leak.
PROFILE_FIELDS = frozenset(
    {
        "profile_id",
        "email",
        "phone",
        "first_name",
        "last_name",
        "birth_date",
        "postcode",
        "municipality",
        "a_profiel_id",
    }
)
ENV_NAME_PATTERN = r"^[A-Z][A-Z0-9_]*$"
# Advertising platforms refuse or de-anonymise tiny audiences; below this nothing is uploaded.
DEFAULT_MIN_AD_AUDIENCE = 100


class MissingSecretError(RuntimeError):
    """A destination's secret variable is not set; the message names the variable only."""


def secret(env_name: str) -> str:
    """The value of a secret environment variable, read now (never at import time)."""
    value = dg.EnvVar(env_name).get_value()
    if not value:
        raise MissingSecretError(f"environment variable {env_name} is not set")
    return value


class Destination(BaseModel):
    """One audience going to one tool for one purpose: the fields every type shares."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    type: str
    segment: str
    purpose: Purpose
    enabled: bool = True
    # A member is sendable when at least one identifier is present.
    identifiers: tuple[str, ...] = ("email",)
    fields: tuple[str, ...] = ("profile_id", "email")
    sync_mode: SyncMode = "mirror"
    batch_size: int = Field(default=1000, ge=1)
    # Only applied to advertising destinations (purpose ad_targeting).
    min_audience_size: int = Field(default=DEFAULT_MIN_AD_AUDIENCE, ge=0)
    base_url: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _identifier_shorthand(cls, data: Any) -> Any:
        # ``identifier: email`` reads better in YAML for the common single-identifier case.
        if isinstance(data, dict) and "identifier" in data:
            data = dict(data)
            if "identifiers" in data:
                raise ValueError("give identifier or identifiers, not both")
            data["identifiers"] = (data.pop("identifier"),)
        return data

    @field_validator("fields", "identifiers")
    @classmethod
    def _known_profile_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - PROFILE_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown profile field(s) {unknown}; allowed: {sorted(PROFILE_FIELDS)}"
            )
        if not value:
            raise ValueError("at least one field is required")
        return value

    @model_validator(mode="after")
    def _batch_limit(self) -> "Destination":
        limit = self.max_batch_size()
        if limit is not None and self.batch_size > limit:
            raise ValueError(f"batch_size {self.batch_size} exceeds the vendor limit {limit}")
        return self

    @property
    def is_advertising(self) -> bool:
        return self.purpose == "ad_targeting"

    @property
    def send_fields(self) -> tuple[str, ...]:
        """Fields read from the profile: the declared fields plus the identifiers."""
        names = ["profile_id", *self.fields, *self.identifiers]
        return tuple(dict.fromkeys(names))

    def max_batch_size(self) -> int | None:
        """The vendor's documented maximum rows per request (None: no limit)."""
        return None


class FileDestination(Destination):
    """CSV or Parquet of the whole audience dropped in ``exports/<name>/``."""

    type: Literal["file"]
    format: Literal["csv", "parquet"] = "csv"
    batch_size: int = Field(default=1_000_000, ge=1)


class WebhookDestination(Destination):
    """JSON batches POSTed to a URL, signed with HMAC-SHA256 over the body."""

    type: Literal["webhook"]
    url: str
    secret_env: str = Field(pattern=ENV_NAME_PATTERN)
    signature_header: str = "X-CDP-Signature"


class BrevoDestination(Destination):
    """Brevo contacts import into a list; removals take contacts off the list."""

    type: Literal["brevo"]
    list_id: int
    api_key_env: str = Field(pattern=ENV_NAME_PATTERN)
    base_url: str | None = "https://api.brevo.com/v3"
    batch_size: int = Field(default=150, ge=1)

    def max_batch_size(self) -> int | None:
        # /contacts/lists/{id}/contacts/remove takes at most 150 addresses per call.
        return 150


class MailchimpDestination(Destination):
    """Mailchimp audience members (batch upsert) tagged with a static tag per segment."""

    type: Literal["mailchimp"]
    list_id: str
    tag_id: int
    api_key_env: str = Field(pattern=ENV_NAME_PATTERN)
    # None: derived from the API key's data-centre suffix (https://<dc>.api.mailchimp.com/3.0).
    base_url: str | None = None
    batch_size: int = Field(default=500, ge=1)

    def max_batch_size(self) -> int | None:
        # POST /lists/{id} and /lists/{id}/segments/{id} take at most 500 members.
        return 500


class MetaDestination(Destination):
    """Meta Custom Audience users, identifiers normalised and SHA-256 hashed by Meta's rules."""

    type: Literal["meta_custom_audience"]
    audience_id: str
    access_token_env: str = Field(pattern=ENV_NAME_PATTERN)
    api_version: str = "v21.0"
    base_url: str | None = "https://graph.facebook.com"
    identifiers: tuple[str, ...] = ("email", "phone")
    fields: tuple[str, ...] = ("email", "phone", "first_name", "last_name")
    # Phone numbers in national format are read in this region.
    default_region: str = "BE"
    batch_size: int = Field(default=10_000, ge=1)

    def max_batch_size(self) -> int | None:
        return 10_000


class GoogleAdsDestination(Destination):
    """Google Ads Customer Match through offline user data jobs."""

    type: Literal["google_customer_match"]
    customer_id: str = Field(pattern=r"^[0-9]+$")
    user_list_id: str = Field(pattern=r"^[0-9]+$")
    login_customer_id: str | None = Field(default=None, pattern=r"^[0-9]+$")
    developer_token_env: str = Field(pattern=ENV_NAME_PATTERN)
    access_token_env: str = Field(pattern=ENV_NAME_PATTERN)
    api_version: str = "v21"
    base_url: str | None = "https://googleads.googleapis.com"
    identifiers: tuple[str, ...] = ("email", "phone")
    fields: tuple[str, ...] = ("email", "phone")
    default_region: str = "BE"
    batch_size: int = Field(default=10_000, ge=1)

    def max_batch_size(self) -> int | None:
        # AddOfflineUserDataJobOperations accepts at most 100 000 operations per request.
        return 100_000


class PushDestination(Destination):
    """Firebase Cloud Messaging HTTP v1: one message to every device of each new member."""

    type: Literal["fcm_push"]
    project_id: str
    access_token_env: str = Field(pattern=ENV_NAME_PATTERN)
    base_url: str | None = "https://fcm.googleapis.com"
    title: str
    body: str
    data: dict[str, str] = Field(default_factory=dict)
    # A push cannot be taken back: members are only ever added.
    sync_mode: SyncMode = "add_only"
    identifiers: tuple[str, ...] = ("profile_id",)
    fields: tuple[str, ...] = ("profile_id",)
    batch_size: int = Field(default=500, ge=1)

    @field_validator("sync_mode")
    @classmethod
    def _add_only(cls, value: SyncMode) -> SyncMode:
        if value != "add_only":
            raise ValueError("a push destination only supports sync_mode add_only")
        return value


AnyDestination = Annotated[
    FileDestination
    | WebhookDestination
    | BrevoDestination
    | MailchimpDestination
    | MetaDestination
    | GoogleAdsDestination
    | PushDestination,
    Field(discriminator="type"),
]


class DestinationsConfig(BaseModel):
    """The whole destinations file."""

    model_config = ConfigDict(extra="forbid")

    destinations: list[AnyDestination]

    @field_validator("destinations")
    @classmethod
    def _unique_names(cls, value: list[Destination]) -> list[Destination]:
        names = [destination.name for destination in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"destination names must be unique, repeated: {duplicates}")
        return value


class DestinationsConfigError(ValueError):
    """The destinations file is not valid; the message names the file and the key."""


def load_destinations(
    path: Path | None = None, include_disabled: bool = False
) -> list[Destination]:
    """Read and validate the destinations file (enabled destinations unless asked otherwise)."""
    path = path or DEFAULT_DESTINATIONS_PATH
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        destinations = DestinationsConfig.model_validate(raw).destinations
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()
        )
        raise DestinationsConfigError(f"{path}: {problems}") from error
    except yaml.YAMLError as error:
        raise DestinationsConfigError(f"{path}: not valid YAML: {error}") from error
    return [d for d in destinations if include_disabled or d.enabled]
