"""The matching configuration (``cdp_pipeline/config/matching.yml``), validated on load."""

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cdp_pipeline.settings import CONFIG_DIR

DEFAULT_CONFIG_PATH = CONFIG_DIR / "matching.yml"

ComparisonType = Literal[
    "exact", "first_name", "last_name", "date", "phone", "email", "address", "postcode"
]
LinkType = Literal[
    "manual", "a_profiel_id", "device_id", "web_identify", "email", "phone", "splink"
]
LINK_TYPES: tuple[str, ...] = LinkType.__args__  # type: ignore[attr-defined]
# Comparisons the guards and deterministic rules rely on; each may appear once.
_SINGLETON_TYPES = ("first_name", "last_name", "date", "phone", "email", "address", "postcode")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Attribute(_Strict):
    """One attribute the probabilistic model compares."""

    comparison: ComparisonType
    column: str | None = None  # input column; defaults to the attribute's name
    tf_adjustment: bool = False
    block: bool = False  # may appear in blocking rules


class BlockedValues(_Strict):
    """Values that are never evidence: exact (after normalisation) or a regex (search)."""

    exact: list[str] = Field(default_factory=list)
    regex: list[str] = Field(default_factory=list)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex {pattern!r}: {exc}") from exc
        return patterns

    def matches(self, value: str | None) -> bool:
        if value is None:
            return False
        if value in self.exact:
            return True
        return any(re.search(pattern, value) for pattern in self.regex)


class Blocked(_Strict):
    email: BlockedValues = BlockedValues()
    phone: BlockedValues = BlockedValues()
    name: BlockedValues = BlockedValues()
    # An e-mail or phone shared by more distinct first names than this is a
    # placeholder nobody listed yet (a shop's own address typed for every walk-in).
    max_distinct_names_per_value: int = Field(default=6, ge=2)


class Thresholds(_Strict):
    """Auto-merge threshold for Splink pairs: give one of the two."""

    match_probability: float | None = Field(default=None, gt=0, lt=1)
    match_weight: float | None = None

    @model_validator(mode="after")
    def _one(self) -> "Thresholds":
        if self.match_probability is not None and self.match_weight is not None:
            raise ValueError("set only one of match_probability or match_weight")
        return self

    def splink_kwargs(self) -> dict[str, float]:
        """Arguments for ``linker.inference.predict`` (0.99 when neither is set)."""
        if self.match_weight is not None:
            return {"threshold_match_weight": self.match_weight}
        return {"threshold_match_probability": self.match_probability or 0.99}


class Training(_Strict):
    retrain: bool = False
    min_records: int = Field(default=2000, ge=0)  # fewer records: use the priors
    u_max_pairs: float = Field(default=2e6, gt=0)
    seed: int = 42
    em_blocking_rules: list[list[str]] = Field(default_factory=list)
    probability_two_random_records_match: float = Field(default=0.0005, gt=0, lt=1)


class Guards(_Strict):
    """Vetoes on Splink pairs (deterministic links have their own name rules)."""

    different_birth_date: bool = True  # both known, not equal, swapped or one typo apart
    different_first_name: bool = True  # first names at the model's "different" level
    twins: bool = True  # same birth date, surname and address, dissimilar first names
    # Names alone are not identity: the attributes other than first and last name must
    # add at least this match weight (a shared e-mail, phone, birth date or street).
    min_non_name_weight: float | None = 3.0


class IdentifierLimit(_Strict):
    max_per_profile: int = Field(ge=1)


class MatchingConfig(_Strict):
    """Everything identity resolution can be tuned by, without code changes."""

    version: Literal[1] = 1
    region: str = "BE"
    attributes: dict[str, Attribute]
    blocking_rules: list[list[str]]
    thresholds: Thresholds = Thresholds()
    training: Training = Training()
    blocked_values: Blocked = Blocked()
    guards: Guards = Guards()
    limits: dict[Literal["a_profiel_id", "device_id"], IdentifierLimit] = Field(
        default_factory=dict
    )
    link_priority: list[LinkType] = Field(default_factory=lambda: list(LINK_TYPES))
    max_profile_size: int = Field(default=50, ge=2)
    nicknames: list[list[str]] = Field(default_factory=list)
    splink_enabled: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> "MatchingConfig":
        seen: dict[str, str] = {}
        for name, attribute in self.attributes.items():
            kind = attribute.comparison
            if kind in _SINGLETON_TYPES:
                if kind in seen:
                    raise ValueError(
                        f"attributes.{name}: comparison {kind!r} is already used by "
                        f"attributes.{seen[kind]}; each of {list(_SINGLETON_TYPES)} at most once"
                    )
                seen[kind] = name
        blockable = sorted(n for n, a in self.attributes.items() if a.block)
        rules = [("blocking_rules", self.blocking_rules)]
        rules.append(("training.em_blocking_rules", self.training.em_blocking_rules))
        for key, rule_list in rules:
            for i, rule in enumerate(rule_list):
                if not rule:
                    raise ValueError(f"{key}[{i}]: empty rule")
                for attr in rule:
                    if attr not in blockable:
                        raise ValueError(
                            f"{key}[{i}]: {attr!r} is not an attribute with block: true; "
                            f"allowed: {blockable}"
                        )
        if sorted(self.link_priority) != sorted(LINK_TYPES):
            raise ValueError(f"link_priority must list each of {list(LINK_TYPES)} once")
        return self

    def attribute_of(self, comparison: str) -> str | None:
        """Name of the attribute with this comparison type, if configured."""
        return next((n for n, a in self.attributes.items() if a.comparison == comparison), None)

    def priority(self, link_type: str) -> int:
        """0 is the strongest link type."""
        return self.link_priority.index(link_type)


def _format_error(exc: ValidationError, source: str) -> str:
    lines = [f"invalid matching config {source}:"]
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"]) or "(root)"
        lines.append(f"  {loc}: {error['msg']}")
    return "\n".join(lines)


def parse_config(data: dict, source: str = "<dict>") -> MatchingConfig:
    """Validate a config mapping; errors name the key and the allowed values."""
    try:
        return MatchingConfig.model_validate(data)
    except ValidationError as exc:
        raise ValueError(_format_error(exc, source)) from None


def load_config(path: Path | str | None = None) -> MatchingConfig:
    """Read and validate ``matching.yml`` (the project's by default)."""
    path = Path(path) if path else DEFAULT_CONFIG_PATH
    with path.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    return parse_config(data, str(path))
