"""The declared destinations (``cdp_pipeline/config/destinations.yml``), validated on load."""

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cdp_pipeline.settings import CONFIG_DIR

DEFAULT_DESTINATIONS_PATH = CONFIG_DIR / "destinations.yml"
Purpose = Literal["email_marketing", "push_marketing", "ad_targeting", "profiling"]
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


class Destination(BaseModel):
    """One audience going to one tool for one purpose."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    type: Literal["file"]
    segment: str
    purpose: Purpose
    identifier: str = "email"
    fields: tuple[str, ...] = ("profile_id", "email")
    format: Literal["csv", "parquet"] = "csv"

    @field_validator("fields", "identifier")
    @classmethod
    def _known_profile_fields(cls, value: tuple[str, ...] | str) -> tuple[str, ...] | str:
        names = (value,) if isinstance(value, str) else value
        unknown = sorted(set(names) - PROFILE_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown profile field(s) {unknown}; allowed: {sorted(PROFILE_FIELDS)}"
            )
        return value


class DestinationsConfig(BaseModel):
    """The whole destinations file."""

    model_config = ConfigDict(extra="forbid")

    destinations: list[Destination]

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


def load_destinations(path: Path | None = None) -> list[Destination]:
    """Read and validate the destinations file."""
    path = path or DEFAULT_DESTINATIONS_PATH
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return DestinationsConfig.model_validate(raw).destinations
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()
        )
        raise DestinationsConfigError(f"{path}: {problems}") from error
    except yaml.YAMLError as error:
        raise DestinationsConfigError(f"{path}: not valid YAML: {error}") from error
