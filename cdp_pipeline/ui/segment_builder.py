"""The segment form: rule rows → a segment of the YAML format, its estimated size, saving.

Each row of the form is one condition of the segment format (``docs/segments.md``): a
trait compared with a value, an event in a time window (with categories, a minimum count
and an event that must not follow), a consent status, membership of another segment or a
propensity decile; a row can be negated (``not``). Rows sit at the top level or in one of
two groups; a group is ``all``, ``any`` or ``none`` (``not`` over ``any``) of its rows and
the top level is ``all`` or ``any`` of its rows and groups: one level of nesting.

The estimate uses the segment compiler's own SQL (``compiler.segment_sql``, the text of the
dbt model the saved segment becomes), rendered with this module's versions of the few dbt
macros it calls (``ref``, ``dbt.dateadd``, ``as_of_date``, ``culture_categories``,
``ml_source``), and runs it on the UI's replica of the marts: the estimate and the dbt
model share every condition's semantics. ``ref('seg_<x>')`` reads the current members of
segment ``x`` in ``marts.segment_members`` (a segment saved but not yet run has none).
The saved segment is a YAML file in the marketer segment folder, validated by the segment
compiler's own checks, and becomes a dbt model at the next ``cdp segments compile``.
"""

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import jinja2
import yaml
from pydantic import ValidationError

from cdp_pipeline.segments.clusters import auto_segment_names
from cdp_pipeline.segments.compiler import (
    CONSENT_PURPOSES,
    DBT_PROJECT_YML,
    EVENT_FILTERS,
    LoadedSegment,
    SegmentDefinitionError,
    hand_written_segments,
    load_segments,
    segment_sql,
    trait_types,
    validate_segments,
)
from cdp_pipeline.segments.features import PROPENSITY_MODELS
from cdp_pipeline.segments.spec import SegmentSpec
from cdp_pipeline.ui.data import table_exists

KINDS = ("trait", "event", "consent", "segment", "propensity")
FORM_OPS = (
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "not_in",
    "is_null",
    "is_not_null",
    "within_days",
    "older_than_days",
)
PURPOSES = CONSENT_PURPOSES
CONSENT_STATUSES = ("granted", "withdrawn", "unknown")
CHANNELS = ("email", "push", "ads", "sms", "post")
EVENTS = tuple(sorted(EVENT_FILTERS))
PROPENSITIES = tuple(sorted(PROPENSITY_MODELS))
GROUPS = ("a", "b")
GROUP_MODES = ("all", "any", "none")
TOP_MODES = ("all", "any")
ROWS = 8
# The name the estimate compiles a form under while its own name is still empty or taken.
_ESTIMATE_NAME = "ui_form_estimate"
# Tables of the replica the compiled model's refs read.
_REFS = {
    "profiles": "marts.profiles",
    "profile_traits": "marts.profile_traits",
    "interactions": "marts.interactions",
    "consent_state": "marts.consent_state",
}
_EMPTY_PROPENSITY = (
    "(select cast(null as varchar) as profile_id, cast(null as varchar) as model,"
    " cast(null as double) as score, cast(null as integer) as decile,"
    " cast(null as timestamp) as scored_at where 1 = 0) as ml_propensity_scores"
)


@dataclass
class Rule:
    """One row of the form; which fields count depends on ``kind``."""

    kind: str  # one of KINDS
    name: str  # the trait, event type, consent purpose, segment or propensity model
    op: str = "eq"  # trait
    value: str = ""  # trait (a,b for in / not_in)
    negate: bool = False
    group: str = ""  # "" (top level) or one of GROUPS
    within_days: str = ""  # event
    min_count: str = ""  # event
    category: str = ""  # event: comma-separated categories, or "culture" for the group
    follow_event: str = ""  # event: not followed by
    follow_days: str = ""  # event
    status: str = "granted"  # consent
    top_percent: str = ""  # propensity


@dataclass
class SegmentForm:
    name: str = ""
    description: str = ""
    owner: str = ""
    purpose: str = "email_marketing"
    channels: list[str] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    match: str = "all"  # the top level: one of TOP_MODES
    group_modes: dict[str, str] = field(default_factory=lambda: {"a": "any", "b": "all"})


def form_from_fields(data: dict[str, Any]) -> SegmentForm:
    """The form from posted fields (strings; ``channels`` a list), numbered ``<field>_<i>``."""

    def text(key: str, default: str = "") -> str:
        return str(data.get(key, default) or default).strip()

    rules = []
    for index in range(ROWS):
        kind = text(f"kind_{index}")
        if kind not in KINDS:
            continue
        name = text(f"{kind}_{index}") or text(f"name_{index}")
        if not name:
            continue
        rules.append(
            Rule(
                kind=kind,
                name=name,
                op=text(f"op_{index}", "eq"),
                value=text(f"value_{index}"),
                negate=bool(data.get(f"not_{index}")),
                group=text(f"group_{index}"),
                within_days=text(f"days_{index}"),
                min_count=text(f"count_{index}"),
                category=text(f"category_{index}"),
                follow_event=text(f"follow_{index}"),
                follow_days=text(f"follow_days_{index}"),
                status=text(f"status_{index}", "granted"),
                top_percent=text(f"top_{index}"),
            )
        )
    channels = data.get("channels", [])
    return SegmentForm(
        name=text("name"),
        description=text("description"),
        owner=text("owner"),
        purpose=text("purpose", "email_marketing"),
        channels=[channels] if isinstance(channels, str) else list(channels),
        rules=rules,
        match=text("match", "all"),
        group_modes={group: text(f"group_mode_{group}", "all") for group in GROUPS},
    )


def _number_or_text(text: str, data_type: str) -> Any:
    text = text.strip()
    lowered = data_type.lower()
    try:
        if lowered in ("integer", "bigint") or lowered.startswith("int"):
            return int(text)
        if lowered in ("number", "double", "float") or lowered.startswith(("decimal", "numeric")):
            return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number (the trait is {data_type})") from None
    if lowered.startswith("bool"):
        return text.lower() in ("true", "1", "yes", "ja")
    return text


def _whole(text: str, label: str) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{label}: {text!r} is not a whole number") from None


def to_condition(rule: Rule, types: dict[str, str]) -> dict[str, Any]:
    """The YAML condition of one row (wrapped in ``not`` when the row is negated)."""
    condition: dict[str, Any]
    if rule.kind == "consent":
        condition = {"consent": rule.name, "status": rule.status or "granted"}
    elif rule.kind == "segment":
        condition = {"segment": rule.name}
    elif rule.kind == "propensity":
        top = _whole(rule.top_percent, f"propensity {rule.name}: top percent") or 10
        condition = {"propensity": rule.name, "top_percent": top}
    elif rule.kind == "event":
        condition = {"event": rule.name}
        days = _whole(rule.within_days, f"event {rule.name}: within days")
        if days is not None:
            condition["within_days"] = days
        count = _whole(rule.min_count, f"event {rule.name}: at least")
        if count is not None and count != 1:
            condition["min_count"] = count
        categories = [part.strip() for part in rule.category.split(",") if part.strip()]
        if categories == ["culture"]:
            condition["category_group"] = "culture"
        elif categories:
            condition["category"] = categories
        if rule.follow_event:
            follow_days = _whole(rule.follow_days, f"event {rule.name}: not followed within")
            condition["not_followed_by"] = {
                "event": rule.follow_event,
                "within_days": follow_days or 7,
            }
    else:
        data_type = types.get(rule.name, "string")
        condition = {"trait": rule.name, "op": rule.op}
        if rule.op in ("in", "not_in"):
            condition["value"] = [
                _number_or_text(part, data_type) for part in rule.value.split(",") if part.strip()
            ]
        elif rule.op in ("within_days", "older_than_days"):
            condition["value"] = _whole(rule.value, f"trait {rule.name}: days")
        elif rule.op not in ("is_null", "is_not_null"):
            condition["value"] = _number_or_text(rule.value, data_type)
    return {"not": condition} if rule.negate else condition


def to_where(form: SegmentForm, types: dict[str, str]) -> dict[str, Any]:
    """The ``where`` of the segment: top-level rows and groups, in the order they appear."""
    if form.match not in TOP_MODES:
        raise ValueError(f"match {form.match!r}; allowed: {list(TOP_MODES)}")
    items: list[dict[str, Any]] = []
    groups: dict[str, list[dict[str, Any]]] = {}
    for rule in form.rules:
        condition = to_condition(rule, types)
        if not rule.group:
            items.append(condition)
            continue
        if rule.group not in GROUPS:
            raise ValueError(f"group {rule.group!r}; allowed: {list(GROUPS)}")
        if rule.group not in groups:
            groups[rule.group] = []
            items.append({"group": rule.group})  # placeholder, filled below
        groups[rule.group].append(condition)
    where_items = []
    for item in items:
        if "group" not in item:
            where_items.append(item)
            continue
        members = groups[item["group"]]
        mode = form.group_modes.get(item["group"], "all")
        if mode not in GROUP_MODES:
            raise ValueError(f"group {item['group']}: mode {mode!r}; allowed: {list(GROUP_MODES)}")
        if mode == "none":
            where_items.append({"not": {"any": members}})
        else:
            where_items.append({mode: members})
    if not where_items:
        raise ValueError("add at least one rule")
    return where_items[0] if len(where_items) == 1 else {form.match: where_items}


def to_spec_dict(form: SegmentForm, types: dict[str, str]) -> dict[str, Any]:
    return {
        "name": form.name.strip(),
        "description": form.description.strip(),
        "owner": form.owner.strip(),
        "channels": list(form.channels),
        "purpose": form.purpose,
        "where": to_where(form, types),
    }


def _problems(error: ValidationError) -> list[str]:
    return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]


def _existing(config_dir: Path) -> list[LoadedSegment]:
    try:
        return load_segments(config_dir)
    except SegmentDefinitionError:
        return []  # a broken file elsewhere is the compiler's to report, not the form's


def segment_names(config_dir: Path) -> list[str]:
    """Segments a condition may refer to: hand-written, YAML and automatic."""
    names = {*hand_written_segments(), *(s.spec.name for s in _existing(config_dir))}
    return sorted(names | set(auto_segment_names()))


def check_conditions(
    form: SegmentForm, config_dir: Path
) -> tuple[SegmentSpec | None, dict[str, str], list[str]]:
    """The form compiled under a stand-in name, checked by the compiler (names of traits,
    events, consents, segments, models); for the estimate, before name and owner exist."""
    types = trait_types()
    try:
        raw = to_spec_dict(form, types)
    except ValueError as error:
        return None, types, [str(error)]
    raw |= {
        "name": _ESTIMATE_NAME,
        "description": raw["description"] or "estimate",
        "owner": raw["owner"] or "estimate",
    }
    try:
        spec = SegmentSpec.model_validate(raw)
    except ValidationError as error:
        return None, types, _problems(error)
    others = [s for s in _existing(config_dir) if s.spec.name != _ESTIMATE_NAME]
    try:
        validate_segments([*others, LoadedSegment(spec, "(form)")], types, hand_written_segments())
    except SegmentDefinitionError as error:
        return None, types, [str(problem) for problem in error.problems if "(form)" in problem]
    return spec, types, []


class _Dbt:
    """The one cross-database macro the compiled segments call, as dbt-duckdb renders it."""

    @staticmethod
    def dateadd(datepart: str, interval: Any, from_date_or_timestamp: str) -> str:
        unit = str(datepart).lower()
        if unit not in ("day", "month", "year", "hour", "minute", "second"):
            raise ValueError(f"dateadd unit {datepart!r} is not used by segments")
        return f"({from_date_or_timestamp} + cast({interval} as bigint) * interval 1 {unit})"


def culture_categories(project_yml: Path = DBT_PROJECT_YML) -> list[str]:
    """var ``culture_categories`` of the dbt project (the same list the model reads)."""
    document = yaml.safe_load(project_yml.read_text(encoding="utf-8"))
    return [str(category).lower() for category in document["vars"]["culture_categories"]]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def render_sql(spec: SegmentSpec, types: dict[str, str], as_of: date, has_scores: bool) -> str:
    """The dbt model of ``spec`` (the compiler's text), rendered for the replica."""

    def ref(name: str) -> str:
        if name in _REFS:
            return _REFS[name]
        if name.startswith("seg_"):
            return (
                "(select segment_members.profile_id from marts.segment_members"
                f" where segment_members.segment = {_quote(name.removeprefix('seg_'))}"
                " and segment_members.exited_at is null)"
            )
        raise ValueError(f"ref({name!r}) is not a table the estimate knows")

    def ml_source(name: str) -> str:
        if name != "propensity_scores":
            raise ValueError(f"ml_source({name!r}) is not used by segment conditions")
        return "ml.propensity_scores as ml_propensity_scores" if has_scores else _EMPTY_PROPENSITY

    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    template = environment.from_string(segment_sql(spec, "(form)", types))
    return template.render(
        ref=ref,
        dbt=_Dbt(),
        as_of_date=lambda: f"cast({_quote(as_of.isoformat())} as date)",
        culture_categories=lambda: "(" + ", ".join(_quote(c) for c in culture_categories()) + ")",
        ml_source=ml_source,
    )


def estimate(
    replica: duckdb.DuckDBPyConnection,
    spec: SegmentSpec,
    types: dict[str, str],
    as_of: date,
    sample: int = 20,
) -> tuple[int, list[dict]]:
    """How many profiles the compiled segment holds on the replica now, and the first few."""
    has_scores = table_exists(replica, "ml", "propensity_scores")
    sql = render_sql(spec, types, as_of, has_scores)
    (total,) = replica.execute(f"select count(*) from ({sql}) as members").fetchone() or (0,)
    cursor = replica.execute(
        "select profiles.profile_id, profiles.first_name, profiles.last_name"
        f" from ({sql}) as members"
        " inner join marts.profiles as profiles on profiles.profile_id = members.profile_id"
        " order by profiles.profile_id limit ?",
        [sample],
    )
    names = [column[0] for column in cursor.description]
    members = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return int(total), members


def validate(form: SegmentForm, config_dir: Path) -> tuple[SegmentSpec | None, list[str]]:
    """The spec when the segment is valid beside the existing ones, else the problems."""
    types = trait_types()
    try:
        raw = to_spec_dict(form, types)
        spec = SegmentSpec.model_validate(raw)
    except ValidationError as error:
        return None, _problems(error)
    except (ValueError, IndexError) as error:
        return None, [str(error)]
    try:
        existing = load_segments(config_dir)
        validate_segments(
            [*existing, LoadedSegment(spec, "(form)")], types, hand_written_segments()
        )
    except SegmentDefinitionError as error:
        return None, [str(problem) for problem in getattr(error, "problems", [error])]
    return spec, []


def save(spec: SegmentSpec, config_dir: Path, by: str) -> Path:
    """Write the segment as its own YAML file; it joins the dbt models at the next compile."""
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / f"ui_{spec.name}.yml"
    if path.exists():
        raise FileExistsError(f"{path.name} exists; choose another segment name")
    header = f"# Created in the marketer UI by {by}; compiled by `cdp segments compile`.\n"
    body = yaml.safe_dump(
        {"segments": [spec.model_dump(mode="json", exclude_none=True, by_alias=True)]},
        sort_keys=False,
        allow_unicode=True,
    )
    path.write_text(header + body, encoding="utf-8")
    return path
