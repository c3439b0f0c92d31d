"""The marketer segment format: YAML files in cdp_pipeline/config/segments, checked by pydantic.

A file holds a list ``segments``; each segment has a name, metadata (owner, description,
channels, consent purpose) and one condition ``where``. A condition is a mapping with one
distinguishing key:

* ``trait``: a column of marts.profile_traits compared with ``op`` and ``value``;
* ``event``: interactions of a type in a time window, optionally of some categories, at
  least ``min_count`` times, optionally ``not_followed_by`` another event within N days;
* ``consent``: the status of a consent purpose in marts.consent_state;
* ``segment``: membership of another segment (hand-written, YAML or automatic);
* ``propensity``: the decile of a propensity model (``min_decile`` or ``top_percent``);
* ``all`` / ``any``: a list of conditions, ``not``: one condition.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"

TraitOp = Literal[
    "eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "is_null", "is_not_null",
    "within_days", "older_than_days",
]  # fmt: skip

Scalar = bool | int | float | str
Channel = Literal["email", "push", "ads", "sms", "post"]
# The consent purposes of marts.consent_state a segment may be used for.
Purpose = Literal["email_marketing", "push_marketing", "ad_targeting", "profiling"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TraitCondition(_Strict):
    """``trait: rfm_recency_score, op: gte, value: 4``."""

    trait: str
    op: TraitOp = "eq"
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> "TraitCondition":
        if self.op in ("is_null", "is_not_null"):
            if self.value is not None:
                raise ValueError(f"op {self.op} takes no value")
        elif self.op in ("in", "not_in"):
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"op {self.op} needs a non-empty list as value")
        elif self.op in ("within_days", "older_than_days"):
            if isinstance(self.value, bool) or not isinstance(self.value, int) or self.value < 0:
                raise ValueError(f"op {self.op} needs a whole number of days >= 0 as value")
        elif self.value is None or isinstance(self.value, list):
            raise ValueError(f"op {self.op} needs a single value")
        return self


class FollowUp(_Strict):
    """The event that must not follow: ``{event: ticket_purchase, within_days: 7}``."""

    event: str
    within_days: int = Field(gt=0)
    same_event: bool = Field(
        default=True, description="Only a follow-up about the same catalogue event counts."
    )


class EventCondition(_Strict):
    """``event: ticket_purchase, category: [concert], within_days: 90``."""

    event: str
    category: list[str] | None = None
    category_group: Literal["culture"] | None = None
    within_days: int | None = Field(default=None, gt=0)
    min_count: int = Field(default=1, ge=1)
    not_followed_by: FollowUp | None = None


class ConsentCondition(_Strict):
    """``consent: email_marketing, status: granted``."""

    consent: str
    status: Literal["granted", "withdrawn", "unknown"] = "granted"


class SegmentCondition(_Strict):
    """``segment: culture_lapsed_buyers``: a member of that segment now."""

    segment: str


class PropensityCondition(_Strict):
    """``propensity: ticket_purchase_30d, top_percent: 20`` (or ``min_decile: 9``)."""

    propensity: str
    min_decile: int | None = Field(default=None, ge=1, le=10)
    top_percent: int | None = Field(default=None, ge=10, le=100, multiple_of=10)

    @model_validator(mode="after")
    def _one_threshold(self) -> "PropensityCondition":
        if (self.min_decile is None) == (self.top_percent is None):
            raise ValueError("give exactly one of min_decile and top_percent")
        return self

    @property
    def decile_floor(self) -> int:
        """Lowest decile that qualifies (10 = the most likely tenth)."""
        if self.min_decile is not None:
            return self.min_decile
        return 11 - (self.top_percent or 10) // 10


class AllCondition(_Strict):
    all: list["Condition"] = Field(min_length=1)


class AnyCondition(_Strict):
    any: list["Condition"] = Field(min_length=1)


class NotCondition(_Strict):
    not_: "Condition" = Field(alias="not")


_KINDS = ("trait", "event", "consent", "segment", "propensity", "all", "any", "not")


def _condition_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        for kind, model in _MODELS.items():
            if isinstance(value, model):
                return kind
        return None
    if not isinstance(value, dict):
        return None
    present = [kind for kind in _KINDS if kind in value]
    return present[0] if len(present) == 1 else None


Condition = Annotated[
    Annotated[TraitCondition, Tag("trait")]
    | Annotated[EventCondition, Tag("event")]
    | Annotated[ConsentCondition, Tag("consent")]
    | Annotated[SegmentCondition, Tag("segment")]
    | Annotated[PropensityCondition, Tag("propensity")]
    | Annotated[AllCondition, Tag("all")]
    | Annotated[AnyCondition, Tag("any")]
    | Annotated[NotCondition, Tag("not")],
    Discriminator(
        _condition_kind,
        custom_error_type="condition_kind",
        custom_error_message=("a condition needs exactly one of the keys " + ", ".join(_KINDS)),
    ),
]

_MODELS: dict[str, type[BaseModel]] = {
    "trait": TraitCondition,
    "event": EventCondition,
    "consent": ConsentCondition,
    "segment": SegmentCondition,
    "propensity": PropensityCondition,
    "all": AllCondition,
    "any": AnyCondition,
    "not": NotCondition,
}

AllCondition.model_rebuild()
AnyCondition.model_rebuild()
NotCondition.model_rebuild()


class SegmentSpec(_Strict):
    """One marketer segment."""

    name: str = Field(pattern=NAME_PATTERN, max_length=60)
    description: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    channels: list[Channel] = Field(default_factory=list)
    purpose: Purpose = "email_marketing"
    where: Condition


class SegmentFile(_Strict):
    """A YAML file of segments."""

    segments: list[dict[str, Any]] = Field(min_length=1)
