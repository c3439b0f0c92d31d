"""The tracking plan: which Segment calls and properties the endpoint lands.

The plan lives in ``cdp_pipeline/config/tracking_plan.yml`` (or the file named by
``CDP_TRACKING_PLAN``). Validation never raises on a message: it returns the
reasons a message is kept aside, each with a category that the metrics count.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from cdp_pipeline.settings import CONFIG_DIR

DEFAULT_PLAN_PATH = CONFIG_DIR / "tracking_plan.yml"

# Categories of a rejection, as counted on /v1/stats and /metrics.
UNPLANNED_EVENT = "unplanned_event"
UNPLANNED_CALL = "unplanned_call"
UNPLANNED_PROPERTY = "unplanned_property"
TYPE_VIOLATION = "type_violation"
MISSING_PROPERTY = "missing_property"
INVALID_MESSAGE = "invalid_message"

PropertyType = Literal["string", "number", "integer", "boolean", "object", "array", "datetime"]
_TYPES: frozenset[str] = frozenset(PropertyType.__args__)  # type: ignore[attr-defined]

# The calls of the Segment spec that a plan can allow; `group` is deliberately absent
# from the default plan (the city has no accounts of organisations to attach people to).
CALLS = ("track", "page", "screen", "identify", "alias", "group")


class TrackingPlanError(ValueError):
    """The tracking plan file is invalid; the message says where."""


@dataclass(frozen=True)
class PropertySpec:
    """One planned property (or trait)."""

    type: str
    required: bool = False


@dataclass(frozen=True)
class Schema:
    """The planned properties of one event or call, and what to do with others."""

    properties: Mapping[str, PropertySpec] = field(default_factory=dict)
    allow_unplanned: bool = True


@dataclass(frozen=True)
class Violation:
    """Why one message is kept aside."""

    category: str
    detail: str


@dataclass(frozen=True)
class TrackingPlan:
    """Allowed calls, track events and their property types."""

    calls: Mapping[str, Schema]
    events: Mapping[str, Schema]

    def validate(self, message: Mapping[str, Any]) -> list[Violation]:
        """Every reason the plan has against this (already well-formed) message."""
        call = message.get("type")
        if call == "track":
            name = message.get("event")
            schema = self.events.get(name) if isinstance(name, str) else None
            if schema is None:
                return [Violation(UNPLANNED_EVENT, f"track event {name!r} is not in the plan")]
            return _check(schema, message.get("properties"), "properties")
        schema = self.calls.get(call)  # type: ignore[arg-type]
        if schema is None:
            return [Violation(UNPLANNED_CALL, f"{call} calls are not in the tracking plan")]
        bag = "traits" if call == "identify" else "properties"
        return _check(schema, message.get(bag), bag)


def _check(schema: Schema, values: Any, bag: str) -> list[Violation]:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        return [Violation(TYPE_VIOLATION, f"{bag}: expected object, got {_json_type(values)}")]
    out: list[Violation] = []
    for name, spec in schema.properties.items():
        value = values.get(name)
        if value is None:
            if spec.required:
                out.append(Violation(MISSING_PROPERTY, f"{bag}.{name}: required, missing"))
        elif not _is_type(value, spec.type):
            out.append(
                Violation(
                    TYPE_VIOLATION,
                    f"{bag}.{name}: expected {spec.type}, got {_json_type(value)} {value!r:.60}",
                )
            )
    if not schema.allow_unplanned:
        for name in values:
            if name not in schema.properties:
                out.append(Violation(UNPLANNED_PROPERTY, f"{bag}.{name}: not in the plan"))
    return out


def _is_type(value: Any, type_: str) -> bool:
    # bool is a subclass of int in Python, but true is not a number in JSON.
    if type_ == "string":
        return isinstance(value, str)
    if type_ == "boolean":
        return isinstance(value, bool)
    if type_ == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if type_ == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_ == "object":
        return isinstance(value, dict)
    if type_ == "array":
        return isinstance(value, list)
    if type_ == "datetime":
        return isinstance(value, str) and parse_timestamp(value) is not None
    return False


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def parse_timestamp(value: str) -> datetime | None:
    """An aware ISO 8601 timestamp, or None. Without an offset it is UTC, as Segment reads it."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ------------------------------------------------------------------------ loading


def load_tracking_plan(path: Path | None = None) -> TrackingPlan:
    """Read and check the tracking plan YAML (see the header of the default file)."""
    path = path or DEFAULT_PLAN_PATH
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise TrackingPlanError(f"cannot read tracking plan {path}: {error}") from error
    if not isinstance(raw, dict):
        raise TrackingPlanError(f"{path}: expected a mapping at the top level")
    unknown = set(raw) - {*CALLS, "unplanned_properties"}
    if unknown:
        raise TrackingPlanError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {CALLS}")
    default_allow = _allow(raw.get("unplanned_properties", "allow"), f"{path}")
    events: dict[str, Schema] = {}
    for name, body in (raw.get("track") or {}).items():
        events[str(name)] = _schema(body, "properties", default_allow, f"{path}: track.{name}")
    calls: dict[str, Schema] = {}
    for call in ("page", "screen", "identify", "alias", "group"):
        if call in raw:
            bag = "traits" if call == "identify" else "properties"
            calls[call] = _schema(raw[call], bag, default_allow, f"{path}: {call}")
    return TrackingPlan(calls=calls, events=events)


def _allow(value: Any, where: str) -> bool:
    if value not in ("allow", "reject"):
        raise TrackingPlanError(f"{where}: unplanned_properties must be allow or reject")
    return value == "allow"


def _schema(body: Any, bag: str, default_allow: bool, where: str) -> Schema:
    body = body or {}
    if not isinstance(body, dict):
        raise TrackingPlanError(f"{where}: expected a mapping, got {body!r}")
    unknown = set(body) - {bag, "unplanned_properties"}
    if unknown:
        raise TrackingPlanError(f"{where}: unknown key(s) {sorted(unknown)}; expected {bag}")
    allow = (
        _allow(body.get("unplanned_properties"), where)
        if "unplanned_properties" in body
        else default_allow
    )
    props: dict[str, PropertySpec] = {}
    for name, spec in (body.get(bag) or {}).items():
        if isinstance(spec, str):
            spec = {"type": spec}
        if not isinstance(spec, dict) or spec.get("type") not in _TYPES:
            raise TrackingPlanError(
                f"{where}.{bag}.{name}: type must be one of {sorted(_TYPES)}, got {spec!r}"
            )
        props[str(name)] = PropertySpec(type=spec["type"], required=bool(spec.get("required")))
    return Schema(properties=props, allow_unplanned=allow)
