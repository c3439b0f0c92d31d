"""The UI's form logic without a warehouse: matching editor fields and the segment form."""

from datetime import date
from pathlib import Path

import duckdb
import pytest
import yaml

from cdp_pipeline.identity.config import DEFAULT_CONFIG_PATH
from cdp_pipeline.segments.spec import SegmentSpec
from cdp_pipeline.ui import matching_editor, segment_builder


def _current() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))


def _fields_of(config: dict) -> dict[str, str]:
    """The editor's fields as the page fills them for ``config``."""
    fields: dict[str, str] = {}
    for index, (name, attribute) in enumerate(config["attributes"].items()):
        fields[f"attr_name_{index}"] = name
        fields[f"attr_use_{index}"] = "1"
        fields[f"attr_comparison_{index}"] = attribute["comparison"]
        fields[f"attr_column_{index}"] = attribute.get("column", "")
        if attribute.get("tf_adjustment"):
            fields[f"attr_tf_{index}"] = "1"
        if attribute.get("block"):
            fields[f"attr_block_{index}"] = "1"
    fields["blocking_rules"] = "\n".join(", ".join(rule) for rule in config["blocking_rules"])
    for key, value in config["thresholds"].items():
        fields[key] = str(value)
    for flag in matching_editor.GUARD_FLAGS:
        if config["guards"].get(flag, True):
            fields[f"guard_{flag}"] = "1"
    fields["guard_min_non_name_weight"] = str(config["guards"]["min_non_name_weight"])
    for kind in matching_editor.BLOCKED_KINDS:
        fields[f"blocked_{kind}_exact"] = "\n".join(config["blocked_values"][kind]["exact"])
        fields[f"blocked_{kind}_regex"] = "\n".join(config["blocked_values"][kind]["regex"])
    fields["blocked_max_distinct_names_per_value"] = str(
        config["blocked_values"]["max_distinct_names_per_value"]
    )
    return fields


def test_the_unchanged_form_gives_the_settings_in_force() -> None:
    current = _current()
    candidate = matching_editor.candidate_from_form(current, _fields_of(current))
    assert matching_editor.config_diff(current, candidate) == []
    parsed, problems = matching_editor.validate(candidate)
    assert parsed is not None and problems == []


def test_editing_thresholds_attributes_and_blocking_shows_in_the_diff() -> None:
    current = _current()
    fields = _fields_of(current)
    fields["match_probability"] = "0.95"
    phone = list(current["attributes"]).index("phone")
    del fields[f"attr_use_{phone}"]  # stop comparing phones
    fields["blocking_rules"] = "email\nlast_name, address"
    fields["guard_min_non_name_weight"] = ""
    candidate = matching_editor.candidate_from_form(current, fields)
    parsed, problems = matching_editor.validate(candidate)
    assert problems == [] and parsed is not None
    assert "phone" not in parsed.attributes
    assert parsed.thresholds.match_probability == 0.95
    assert parsed.guards.min_non_name_weight is None
    changed = {change["key"] for change in matching_editor.config_diff(current, candidate)}
    assert changed == {
        "thresholds.match_probability",
        "attributes.phone",
        "blocking_rules",
        "guards.min_non_name_weight",
    }


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"review_match_probability": "0.999"}, "thresholds"),
        ({"blocking_rules": "email\nshoe_size"}, "blocking_rules[1]"),
        ({"attr_comparison_1": "first_name"}, "attributes.last_name"),
        ({"blocked_email_regex": "(unclosed"}, "blocked_values.email.regex"),
    ],
)
def test_invalid_settings_name_their_key(change: dict[str, str], key: str) -> None:
    current = _current()
    candidate = matching_editor.candidate_from_form(current, {**_fields_of(current), **change})
    parsed, problems = matching_editor.validate(candidate)
    assert parsed is None
    assert any(key in problem for problem in problems), problems


def test_a_bad_number_names_its_field() -> None:
    current = _current()
    with pytest.raises(ValueError, match="match_probability: 'abc'"):
        matching_editor.candidate_from_form(
            current, {**_fields_of(current), "match_probability": "abc"}
        )


def test_diff_of_assignments_finds_merges_and_splits() -> None:
    before = {"r1": "p1", "r2": "p1", "r3": "p2", "r4": "p3", "r5": "p4", "r6": "p4"}
    after = {"r1": "c1", "r2": "c1", "r3": "c1", "r4": "c2", "r5": "c3", "r6": "c4"}
    found = matching_editor.diff_assignments(before, after)
    assert found["merges"] == 1 and found["profiles_merged"] == 2
    assert found["merge_sample"] == [{"profiles": ["p1", "p2"]}]
    assert found["splits"] == 1
    assert found["split_sample"] == [{"profile_id": "p4", "parts": 2}]
    assert matching_editor.diff_assignments(before, before)["merges"] == 0


def test_saving_keeps_the_previous_file(tmp_path: Path) -> None:
    from cdp_pipeline.settings import Settings

    settings = Settings(
        landing_dir=tmp_path / "landing",
        warehouse=tmp_path / "warehouse" / "cdp.duckdb",
        dagster_home=tmp_path / "dagster",
        engine="duckdb",
        as_of_date=date(2025, 12, 1),
    )
    assert matching_editor.current_config_path(settings) == DEFAULT_CONFIG_PATH
    first, kept = matching_editor.save(settings, _current(), "ada")
    assert kept is None and first == tmp_path / "state" / "identity" / "matching.yml"
    assert matching_editor.current_config_path(settings) == first
    changed = {**_current(), "max_profile_size": 40}
    second, kept = matching_editor.save(settings, changed, "ada")
    assert kept is not None and yaml.safe_load(kept.read_text())["max_profile_size"] == 50
    assert yaml.safe_load(second.read_text())["max_profile_size"] == 40
    assert "by ada" in second.read_text()


# ------------------------------------------------------------------ segment form


def _segment_fields() -> dict[str, str]:
    return {
        "name": "recent_buyers_reachable",
        "description": "Bought in 90 days; reachable by mail or push.",
        "owner": "mia",
        "match": "all",
        "group_mode_a": "any",
        "group_mode_b": "none",
        "kind_0": "event",
        "event_0": "ticket_purchase",
        "days_0": "90",
        "count_0": "2",
        "category_0": "culture",
        "kind_1": "consent",
        "group_1": "a",
        "consent_1": "email_marketing",
        "kind_2": "consent",
        "group_2": "a",
        "consent_2": "push_marketing",
        "kind_3": "segment",
        "group_3": "b",
        "segment_3": "culture_lapsed_buyers",
        "kind_4": "trait",
        "not_4": "1",
        "trait_4": "is_known",
        "op_4": "eq",
        "value_4": "false",
    }


def test_rows_and_groups_become_one_nested_condition() -> None:
    form = segment_builder.form_from_fields(_segment_fields())
    where = segment_builder.to_where(form, {"is_known": "boolean"})
    assert where == {
        "all": [
            {
                "event": "ticket_purchase",
                "within_days": 90,
                "min_count": 2,
                "category_group": "culture",
            },
            {
                "any": [
                    {"consent": "email_marketing", "status": "granted"},
                    {"consent": "push_marketing", "status": "granted"},
                ]
            },
            {"not": {"any": [{"segment": "culture_lapsed_buyers"}]}},
            {"not": {"trait": "is_known", "op": "eq", "value": False}},
        ]
    }
    SegmentSpec.model_validate(segment_builder.to_spec_dict(form, {"is_known": "boolean"}))


def test_the_estimate_runs_the_compiled_segment_sql() -> None:
    spec = SegmentSpec.model_validate(
        {
            "name": "x",
            "description": "x",
            "owner": "x",
            "where": {
                "all": [
                    {"event": "ticket_purchase", "within_days": 30},
                    {"not": {"segment": "other"}},
                ]
            },
        }
    )
    con = duckdb.connect()
    con.execute("create schema marts")
    con.execute(
        "create table marts.profiles (profile_id varchar, first_name varchar, last_name varchar)"
    )
    con.execute(
        "insert into marts.profiles values ('p1', 'An', 'A'), ('p2', 'Bo', 'B'), ('p3', 'Cas', 'C')"
    )
    con.execute(
        "create table marts.interactions (profile_id varchar, interaction_type varchar,"
        " occurred_at timestamp, category varchar, status varchar, item_name varchar,"
        " event_id varchar)"
    )
    con.execute(
        "insert into marts.interactions values"
        " ('p1', 'ticket_purchase', '2025-11-20 10:00', 'concert', null, null, 'e1'),"
        " ('p2', 'ticket_purchase', '2025-10-01 10:00', 'concert', null, null, 'e2'),"
        " ('p3', 'ticket_purchase', '2025-11-30 23:00', 'sport', null, null, 'e3'),"
        " ('p1', 'ticket_purchase', '2025-12-02 10:00', 'concert', null, null, 'e4')"
    )
    con.execute(
        "create table marts.segment_members (segment varchar, profile_id varchar,"
        " entered_at timestamp, exited_at timestamp)"
    )
    con.execute(
        "insert into marts.segment_members values ('other', 'p3', '2025-11-01', null),"
        " ('other', 'p1', '2025-01-01', '2025-02-01')"
    )
    size, members = segment_builder.estimate(con, spec, {}, date(2025, 12, 1))
    # p2 bought too long ago, p3 is in the other segment now; p1 left it in February.
    assert size == 1 and [m["profile_id"] for m in members] == ["p1"]
