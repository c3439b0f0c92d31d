"""The matching configuration (``cdp_pipeline/config/matching.yml``), validated on load."""

import math
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cdp_pipeline.settings import CONFIG_DIR, get_settings

DEFAULT_CONFIG_PATH = CONFIG_DIR / "matching.yml"
# The marketer UI saves edited matching settings here (under the settings' state_dir),
# beside the decisions and the model, so an edit survives a rebuild and an upgrade.
EDITED_CONFIG_NAME = "matching.yml"

# person_id: an identifier that belongs to one person only (national register number,
# a customer number never shared by a household): exact, one typo, different. When it
# agrees exactly, the household guards do not veto (see Guards).
ComparisonType = Literal[
    "exact",
    "person_id",
    "first_name",
    "last_name",
    "date",
    "phone",
    "email",
    "address",
    "postcode",
]
LinkType = Literal[
    "manual",
    "a_profiel_id",
    "device_id",
    "web_identify",
    "email",
    "phone",
    "splink",
    "name_postcode",
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


def _weight(probability: float) -> float:
    return math.log2(probability / (1 - probability))


class Thresholds(_Strict):
    """Auto-merge and review thresholds for Splink pairs: probability or weight, not both.

    Pairs at or above the auto-merge threshold become links (unless a guard vetoes
    them); pairs between the review and the auto-merge threshold go to
    ``identity.review_queue`` for a person to decide.
    """

    match_probability: float | None = Field(default=None, gt=0, lt=1)
    match_weight: float | None = None
    review_match_probability: float | None = Field(default=None, gt=0, lt=1)
    review_match_weight: float | None = None

    @model_validator(mode="after")
    def _one(self) -> "Thresholds":
        if self.match_probability is not None and self.match_weight is not None:
            raise ValueError("set only one of match_probability or match_weight")
        if self.review_match_probability is not None and self.review_match_weight is not None:
            raise ValueError("set only one of review_match_probability or review_match_weight")
        review = self.review_weight()
        if review is not None and review > self.auto_merge_weight():
            raise ValueError("the review threshold must not be above the auto-merge threshold")
        return self

    def auto_merge_weight(self) -> float:
        """The auto-merge threshold as a match weight (probability 0.99 when neither is set)."""
        if self.match_weight is not None:
            return self.match_weight
        return _weight(self.match_probability or 0.99)

    def review_weight(self) -> float | None:
        """The review threshold as a match weight, or None when there is no review queue."""
        if self.review_match_weight is not None:
            return self.review_match_weight
        if self.review_match_probability is not None:
            return _weight(self.review_match_probability)
        return None

    def splink_kwargs(self) -> dict[str, float]:
        """Arguments for ``linker.inference.predict``: the lower of the two thresholds."""
        review = self.review_weight()
        if review is not None:
            return {"threshold_match_weight": review}
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
    """Vetoes on Splink pairs (deterministic links have their own name rules).

    The vetoes exist because members of one household share an address, a phone, an
    e-mail and a surname. They never share a ``person_id`` attribute: a pair whose
    person_id agrees exactly is not vetoed, and its link is not weak for
    ``cluster_birth_dates`` (a first name or birth date replaced by another value in
    one system then costs weight, as the model says, instead of vetoing the pair).
    """

    # Both known, in different years, not swapped or one typo apart (within one year
    # a parent or sibling of the same name is not possible: the model's "same year").
    different_birth_date: bool = True
    # First names at the model's "different" or "jaro-winkler >= 0.8" level: other
    # names of one family (rashid / said), unlike a nickname, a swap or one typo.
    different_first_name: bool = True
    twins: bool = True  # same birth date, surname and address, dissimilar first names
    # A Splink link may not join two clusters whose known birth dates all differ
    # (name-and-postcode links never may): stops chains of weak bridges.
    cluster_birth_dates: bool = True
    # Names alone are not identity: the attributes other than first and last name must
    # add at least this match weight (a shared e-mail, phone, birth date or street).
    min_non_name_weight: float | None = 3.0


class Rules(_Strict):
    """Deterministic rules besides the strong identifiers."""

    # Same first name, last name and postcode join, at the lowest priority, unless a
    # known fact contradicts it (see resolve._Clusters.why_not): box-office buyers
    # often leave nothing else.
    name_and_postcode: bool = True
    # ... and only when namesakes are unlikely: the expected number of other people of
    # that first and last name in that postcode (name frequencies × people there) must
    # stay below this. Common names (Mohamed El Amrani in 2060) are left to the model.
    name_and_postcode_max_expected: float = Field(default=0.05, gt=0)


SurvivorshipRule = Literal["most_recent", "source_order", "most_frequent"]
# Attributes of int_identity__records a golden attribute can take its value from
# (e-mail and phone in their normalised form, placeholders removed).
GOLDEN_COLUMNS = (
    "first_name",
    "last_name",
    "birth_date",
    "email",
    "phone",
    "street",
    "house_number",
    "postcode",
    "municipality",
)
_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")
_COLUMN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class GoldenAttribute(_Strict):
    """One attribute of the golden record and how its value survives.

    ``column`` is a column of the identity records (one of GOLDEN_COLUMNS) or, with
    ``table``, a column of that warehouse table whose ``key`` column holds the
    record_key of records of ``source`` (a custom attribute from a source column).
    ``rule``: ``most_recent`` (latest observed_at), ``source_order`` (the first of
    ``sources`` that has a value, the latest within it) or ``most_frequent``
    (ties: the latest). Sources not listed in ``sources`` are ignored by
    ``source_order`` and used by the other rules only when ``sources`` is empty.
    """

    column: str
    rule: SurvivorshipRule = "most_recent"
    sources: list[str] = Field(default_factory=list)
    table: str | None = None
    key: str | None = None
    source: str | None = None

    @model_validator(mode="after")
    def _where_from(self) -> "GoldenAttribute":
        if self.table is None:
            if self.column not in GOLDEN_COLUMNS:
                raise ValueError(
                    f"column {self.column!r}; allowed without a table: {list(GOLDEN_COLUMNS)}"
                )
            return self
        if not _TABLE_NAME.match(self.table):
            raise ValueError(f"table {self.table!r} must be schema.table in lower case")
        for name, value in (("column", self.column), ("key", self.key)):
            if value is None or not _COLUMN_NAME.match(value):
                raise ValueError(f"{name} {value!r} must be a lower-case column name")
        if not self.source:
            raise ValueError("a table attribute needs source: the source its key belongs to")
        return self

    @model_validator(mode="after")
    def _order(self) -> "GoldenAttribute":
        if self.rule == "source_order" and not self.sources:
            raise ValueError("rule source_order needs sources: the trusted order")
        return self


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
    rules: Rules = Rules()
    golden_attributes: dict[str, GoldenAttribute] = Field(default_factory=dict)
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


def edited_config_path() -> Path:
    """Where the marketer UI saves edited matching settings: ``<state_dir>/identity/``."""
    return get_settings().state_dir / "identity" / EDITED_CONFIG_NAME


def active_config_path() -> Path:
    """The file ``load_config()`` reads: the edited settings if saved, else the packaged ones."""
    edited = edited_config_path()
    return edited if edited.is_file() else DEFAULT_CONFIG_PATH


def load_config(path: Path | str | None = None) -> MatchingConfig:
    """Read and validate ``matching.yml``.

    Without a path: ``<state_dir>/identity/matching.yml`` when it exists (saved by the
    marketer UI), otherwise the packaged ``cdp_pipeline/config/matching.yml``.
    """
    path = Path(path) if path else active_config_path()
    with path.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    return parse_config(data, str(path))
