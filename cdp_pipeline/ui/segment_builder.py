"""The segment form: rule rows → a segment of the YAML format, its estimated size, saving.

The form offers the conditions a marketer builds most (traits compared with a value, and
consents), combined with ``all``. The estimate runs the same rules on the serving
snapshot's ``traits`` and ``consents`` with bound parameters; the saved segment is a YAML
file in the marketer segment folder, validated by the segment compiler's own checks, and
becomes a dbt model at the next ``cdp segments compile``.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import yaml
from pydantic import ValidationError

from cdp_pipeline.segments.compiler import (
    LoadedSegment,
    SegmentDefinitionError,
    hand_written_segments,
    load_segments,
    trait_types,
    validate_segments,
)
from cdp_pipeline.segments.spec import SegmentSpec
from cdp_pipeline.ui.data import columns_of

FORM_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "is_null", "is_not_null")
_SQL_OPS = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
PURPOSES = ("email_marketing", "push_marketing", "ad_targeting", "profiling")
CHANNELS = ("email", "push", "ads", "sms", "post")


@dataclass
class Rule:
    """One row of the form: a trait with an operator and a value, or a consent purpose."""

    kind: str  # "trait" or "consent"
    name: str
    op: str = "eq"
    value: str = ""


@dataclass
class SegmentForm:
    name: str = ""
    description: str = ""
    owner: str = ""
    purpose: str = "email_marketing"
    channels: list[str] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)


def _number_or_text(text: str, data_type: str) -> Any:
    text = text.strip()
    lowered = data_type.lower()
    if lowered.startswith(("int", "bigint")):
        return int(text)
    if lowered.startswith(("double", "float", "decimal", "numeric")):
        return float(text)
    if lowered.startswith("bool"):
        return text.lower() in ("true", "1", "yes", "ja")
    return text


def to_condition(rule: Rule, types: dict[str, str]) -> dict[str, Any]:
    """The YAML condition of one rule."""
    if rule.kind == "consent":
        return {"consent": rule.name}
    data_type = types.get(rule.name, "string")
    condition: dict[str, Any] = {"trait": rule.name, "op": rule.op}
    if rule.op in ("is_null", "is_not_null"):
        return condition
    if rule.op == "in":
        condition["value"] = [
            _number_or_text(part, data_type) for part in rule.value.split(",") if part.strip()
        ]
    else:
        condition["value"] = _number_or_text(rule.value, data_type)
    return condition


def to_spec_dict(form: SegmentForm, types: dict[str, str]) -> dict[str, Any]:
    conditions = [to_condition(rule, types) for rule in form.rules]
    where: dict[str, Any] = conditions[0] if len(conditions) == 1 else {"all": conditions}
    return {
        "name": form.name.strip(),
        "description": form.description.strip(),
        "owner": form.owner.strip(),
        "channels": list(form.channels),
        "purpose": form.purpose,
        "where": where,
    }


def _rule_sql(rule: Rule, types: dict[str, str], traits: list[str]) -> tuple[str, list[Any]]:
    if rule.kind == "consent":
        if rule.name not in PURPOSES:
            raise ValueError(f"consent purpose {rule.name!r}; allowed: {list(PURPOSES)}")
        return (
            "profiles.profile_id in (select profile_id from consents"
            " where purpose = ? and status = 'granted')",
            [rule.name],
        )
    if rule.name not in traits:
        raise ValueError(f"trait {rule.name!r} is not a column of the snapshot's traits")
    if rule.op not in FORM_OPS:
        raise ValueError(f"operator {rule.op!r}; allowed: {list(FORM_OPS)}")
    # The column name is checked against the table's own columns above; only values bind.
    column = 'traits."' + rule.name.replace('"', '""') + '"'
    condition = to_condition(rule, types)
    if rule.op == "is_null":
        return f"{column} is null", []
    if rule.op == "is_not_null":
        return f"{column} is not null", []
    if rule.op == "in":
        values = condition["value"]
        return f"{column} in ({', '.join('?' for _ in values)})", list(values)
    return f"{column} {_SQL_OPS[rule.op]} ?", [condition["value"]]


def estimate(
    snapshot: duckdb.DuckDBPyConnection, form: SegmentForm, sample: int = 20
) -> tuple[int, list[dict]]:
    """How many profiles of the snapshot match all rules now, and the first ``sample``."""
    types = trait_types()
    traits = columns_of(snapshot, "main", "traits")
    clauses, params = [], []
    for rule in form.rules:
        sql, values = _rule_sql(rule, types, traits)
        clauses.append(sql)
        params += values
    where = " and ".join(clauses) or "true"
    base = (
        f"from profiles left join traits on profiles.profile_id = traits.profile_id where {where}"
    )
    total = snapshot.execute(f"select count(*) {base}", params).fetchone()
    cursor = snapshot.execute(
        f"select profiles.profile_id, profiles.first_name, profiles.last_name {base}"
        " order by profiles.profile_id limit ?",
        [*params, sample],
    )
    names = [column[0] for column in cursor.description]
    members = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return int(total[0]) if total else 0, members


def validate(form: SegmentForm, config_dir: Path) -> tuple[SegmentSpec | None, list[str]]:
    """The spec when the segment is valid beside the existing ones, else the problems."""
    types = trait_types()
    try:
        raw = to_spec_dict(form, types)
        spec = SegmentSpec.model_validate(raw)
    except ValidationError as error:
        return None, [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]
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
        {"segments": [spec.model_dump(mode="json", exclude_none=True)]},
        sort_keys=False,
        allow_unicode=True,
    )
    path.write_text(header + body, encoding="utf-8")
    return path
