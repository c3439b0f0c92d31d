"""The YAML segment compiler: output per operator, validation messages, generated files."""

from pathlib import Path

import pytest
import yaml

from cdp_pipeline.segments.compiler import (
    SegmentDefinitionError,
    auto_segment_sql,
    build,
    hand_written_problems,
    project_yml_with_segments,
    segment_sql,
    stale_files,
    trait_types,
)
from cdp_pipeline.segments.spec import SegmentSpec
from cdp_pipeline.settings import DBT_PROJECT_DIR

TYPES = trait_types()


def _sql(where: dict) -> str:
    spec = SegmentSpec.model_validate(
        {"name": "s", "description": "test", "owner": "me", "where": where}
    )
    return segment_sql(spec, "test.yml", TYPES)


def test_generated_files_are_up_to_date() -> None:
    stale = stale_files()
    assert stale == [], f"run `cdp segments compile`; out of date: {stale}"


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"op": "eq", "value": 4}, "traits.rfm_recency_score = 4"),
        ({"op": "ne", "value": 4}, "traits.rfm_recency_score <> 4"),
        ({"op": "gt", "value": 4}, "traits.rfm_recency_score > 4"),
        ({"op": "gte", "value": 4}, "traits.rfm_recency_score >= 4"),
        ({"op": "lt", "value": 2}, "traits.rfm_recency_score < 2"),
        ({"op": "lte", "value": 2}, "traits.rfm_recency_score <= 2"),
        ({"op": "in", "value": [1, 2]}, "traits.rfm_recency_score in (1, 2)"),
        ({"op": "not_in", "value": [1, 2]}, "traits.rfm_recency_score not in (1, 2)"),
        ({"op": "is_null"}, "traits.rfm_recency_score is null"),
        ({"op": "is_not_null"}, "traits.rfm_recency_score is not null"),
    ],
)
def test_trait_operators(condition: dict, expected: str) -> None:
    sql = _sql({"trait": "rfm_recency_score", **condition})
    assert f"where {expected}\n" in sql
    assert "profiles.profile_id in (select condition_1.profile_id from condition_1)" in sql
    assert "{{ ref('profile_traits') }}" in sql


def test_trait_values_are_quoted_and_time_ops_are_relative() -> None:
    sql = _sql({"trait": "district", "value": "Sint-Job-in-'t-Goor"})
    assert "traits.district = 'Sint-Job-in-''t-Goor'" in sql
    sql = _sql({"trait": "last_seen_at", "op": "within_days", "value": 30})
    assert "traits.last_seen_at >= {{ dbt.dateadd('day', -30, as_of_date()) }}" in sql
    sql = _sql({"trait": "last_seen_at", "op": "older_than_days", "value": 30})
    assert "traits.last_seen_at < {{ dbt.dateadd('day', -30, as_of_date()) }}" in sql
    assert "traits.has_children = true" in _sql({"trait": "has_children", "value": True})


def test_event_with_window_category_and_count() -> None:
    sql = _sql({"event": "ticket_purchase", "category": ["Concert"], "within_days": 90,
                "min_count": 2})  # fmt: skip
    assert "base_events.interaction_type = 'ticket_purchase'" in sql
    assert "base_events.occurred_at >= {{ dbt.dateadd('day', -90, as_of_date()) }}" in sql
    assert "base_events.occurred_at < {{ dbt.dateadd('day', 1, as_of_date()) }}" in sql
    assert "lower(base_events.category) in ('concert')" in sql
    assert "having count(*) >= 2" in sql
    sql = _sql({"event": "ticket_purchase", "category_group": "culture"})
    assert "lower(base_events.category) in {{ culture_categories() }}" in sql
    assert "-90" not in sql


def test_event_not_followed_by() -> None:
    sql = _sql({"event": "wishlist_add", "within_days": 30,
                "not_followed_by": {"event": "ticket_purchase", "within_days": 7}})  # fmt: skip
    assert "base_events.item_name = 'Added to Wishlist'" in sql
    assert "not exists (" in sql
    assert "follow_ups.interaction_type = 'ticket_purchase'" in sql
    assert "follow_ups.occurred_at < {{ dbt.dateadd('day', 7, 'base_events.occurred_at') }}" in sql
    assert "follow_ups.event_id = base_events.event_id" in sql
    # Only adds whose 7-day window has passed by the as-of date.
    assert "base_events.occurred_at < {{ dbt.dateadd('day', -6, as_of_date()) }}" in sql
    sql = _sql({"event": "wishlist_add", "not_followed_by": {
        "event": "ticket_purchase", "within_days": 7, "same_event": False}})  # fmt: skip
    assert "follow_ups.event_id" not in sql


def test_consent_segment_and_propensity() -> None:
    sql = _sql({"consent": "email_marketing"})
    assert "consents.purpose = 'email_marketing'" in sql and "consents.status = 'granted'" in sql
    assert "{{ ref('consent_state') }}" in sql
    sql = _sql({"segment": "culture_lapsed_buyers"})
    assert "from {{ ref('seg_culture_lapsed_buyers') }} as seg" in sql
    sql = _sql({"propensity": "ticket_purchase_30d", "top_percent": 20})
    assert "propensity_scores.decile >= 9" in sql
    assert "{{ ml_source('propensity_scores') }}" in sql
    sql = _sql({"propensity": "newsletter_click", "min_decile": 10})
    assert "propensity_scores.model = 'newsletter_click'" in sql
    assert "propensity_scores.decile >= 10" in sql


def test_all_any_not() -> None:
    sql = _sql({"all": [
        {"consent": "email_marketing"},
        {"any": [{"segment": "culture_lapsed_buyers"}, {"trait": "has_children", "value": True}]},
        {"not": {"trait": "district", "value": "Deurne"}},
    ]})  # fmt: skip
    final = sql.split("final as (")[1]
    assert "in (select condition_1.profile_id from condition_1)\n        and (" in final
    assert "condition_2.profile_id from condition_2)\n            or profiles" in final
    assert "and not profiles.profile_id in (select condition_4.profile_id" in final
    assert sql.startswith("-- Generated by `cdp segments compile`")
    assert sql.rstrip().endswith("select * from final")


def test_auto_segment_model_is_the_shared_macro_for_its_slot() -> None:
    sql = auto_segment_sql("auto_3")
    assert sql.startswith("-- Generated by `cdp segments compile`")
    assert sql.rstrip().endswith("{{ auto_segment_members('auto_3') }}")
    # The macro reads the ml source and the profiles (test_segment_membership runs it).
    macro = (DBT_PROJECT_DIR / "macros" / "auto_segment_members.sql").read_text()
    assert "{{ ml_source('auto_segments') }}" in macro and "{{ ref('profiles') }}" in macro
    assert "where auto_segments.segment = '{{ segment_name }}'" in macro


def _write_config(tmp_path: Path, name: str, segments: list[dict]) -> Path:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / name).write_text(yaml.safe_dump({"segments": segments}))
    return config


def _project(tmp_path: Path) -> dict[str, Path]:
    models = tmp_path / "models" / "segments"
    models.mkdir(parents=True)
    (models / "seg_hand_made.sql").write_text("select 1 as profile_id\n")
    (models / "_segments__models.yml").write_text(yaml.safe_dump(_hand_made_yaml()))
    project_yml = tmp_path / "dbt_project.yml"
    project_yml.write_text(
        "vars:\n  segments:\n    # begin generated: segments\n    - x\n"
        "    # end generated: segments\n"
    )
    return {"models_dir": models, "project_yml": project_yml}


def _hand_made_yaml(**meta: object) -> dict:
    """The YAML of an analyst segment seg_hand_made that keeps the convention."""
    full = {"owner": "analysts", "description": "d", "channels": ["email"],
            "purpose": "email_marketing", **meta}  # fmt: skip
    return {"version": 2, "models": [{
        "name": "seg_hand_made",
        "config": {"meta": {k: v for k, v in full.items() if v is not None}},
        "columns": [{"name": "profile_id", "data_tests": ["unique", "not_null"]}],
    }]}  # fmt: skip


def _segment(name: str, where: dict) -> dict:
    return {"name": name, "description": "d", "owner": "o", "where": where}


def test_compiler_writes_models_yaml_and_the_var(tmp_path: Path) -> None:
    config = _write_config(tmp_path, "a.yml", [
        _segment("b_first", {"segment": "hand_made"}),
        _segment("a_second", {"segment": "b_first"}),
    ])  # fmt: skip
    paths = _project(tmp_path)
    compiled = build(config_dir=config, **paths)
    assert compiled.segment_names[:3] == ["hand_made", "b_first", "a_second"]
    assert compiled.segment_names[3] == "auto_1"
    project = yaml.safe_load(compiled.files[paths["project_yml"]])
    assert project["vars"]["segments"] == compiled.segment_names
    models = yaml.safe_load(
        compiled.files[paths["models_dir"] / "generated/_generated__models.yml"]
    )
    first = models["models"][0]
    assert first["name"] == "seg_b_first"
    assert first["config"]["meta"]["generated_from"].endswith("a.yml")
    assert [t if isinstance(t, str) else "relationships" for t in first["columns"][0][
        "data_tests"]] == ["unique", "not_null", "relationships"]  # fmt: skip


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        ([_segment("s1", {"trait": "shoe_size", "op": "gt", "value": 3})],
         "a.yml: segment 's1': field where.trait: unknown trait 'shoe_size'"),
        ([_segment("s1", {"trait": "rfm_recency_score", "op": "bigger", "value": 3})],
         "a.yml: segment 's1': field where.trait.op: Input should be 'eq'"),
        ([_segment("s1", {"all": [{"consent": "email_marketing"},
                                  {"trait": "district", "op": "gt", "value": "x"}]})],
         "segment 's1': field where.all[1].trait: op gt needs a numeric or date trait"),
        ([_segment("s1", {"trait": "ticket_purchases", "value": "many"})],
         "segment 's1': field where.trait: value 'many' is no number"),
        ([_segment("s1", {"event": "purchase"})],
         "segment 's1': field where.event: unknown event 'purchase'"),
        ([_segment("s1", {"consent": "telepathy"})],
         "segment 's1': field where.consent: unknown purpose 'telepathy'"),
        ([_segment("s1", {"segment": "nope"})],
         "segment 's1': field where.segment: unknown segment 'nope'"),
        ([_segment("s1", {"propensity": "ticket_purchase_30d", "top_percent": 25})],
         "segment 's1': field where.propensity.top_percent: Input should be a multiple of 10"),
        ([_segment("s1", {"propensity": "ticket_purchase_30d"})],
         "segment 's1': field where.propensity: Value error, give exactly one of"),
        ([_segment("s1", {"colour": "blue"})],
         "segment 's1': field where: a condition needs exactly one of the keys"),
        ([_segment("S 1", {"consent": "email_marketing"})],
         "segment 'S 1': field name: String should match pattern"),
        ([{"name": "s1", "owner": "o", "where": {"consent": "email_marketing"}}],
         "segment 's1': field description: Field required"),
        ([_segment("s1", {"segment": "s2"}), _segment("s2", {"segment": "s1"})],
         "segment 's1': field where: segments refer to each other in a cycle (s1 -> s2 -> s1)"),
        ([_segment("s1", {"consent": "email_marketing"})] * 2,
         "segment 's1': field name: also defined in"),
        ([_segment("hand_made", {"consent": "email_marketing"})],
         "segment 'hand_made': field name: a hand-written model seg_hand_made.sql"),
        ([_segment("auto_9", {"consent": "email_marketing"})],
         "segment 'auto_9': field name: the prefix auto_ is reserved"),
    ],
)  # fmt: skip
def test_invalid_definitions_name_file_segment_and_field(
    tmp_path: Path, segments: list[dict], expected: str
) -> None:
    config = _write_config(tmp_path, "a.yml", segments)
    with pytest.raises(SegmentDefinitionError) as raised:
        build(config_dir=config, **_project(tmp_path))
    assert expected in str(raised.value)


def test_var_block_markers_are_required() -> None:
    with pytest.raises(ValueError, match="begin generated: segments"):
        project_yml_with_segments("vars:\n  segments: []\n", ["a"])


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"owner": None}, "segment 'hand_made': field config.meta.owner: missing or empty"),
        ({"description": " "},
         "segment 'hand_made': field config.meta.description: missing or empty"),
        ({"channels": ["email", "fax"]},
         "segment 'hand_made': field config.meta.channels: needs a list of"),
        ({"purpose": "spam"}, "segment 'hand_made': field config.meta.purpose: needs one of"),
    ],
)  # fmt: skip
def test_analyst_segments_keep_the_metadata_convention(
    tmp_path: Path, meta: dict, expected: str
) -> None:
    config = _write_config(tmp_path, "a.yml", [_segment("s1", {"consent": "email_marketing"})])
    paths = _project(tmp_path)
    models_yaml = paths["models_dir"] / "_segments__models.yml"
    models_yaml.write_text(yaml.safe_dump(_hand_made_yaml(**meta)))
    with pytest.raises(SegmentDefinitionError) as raised:
        build(config_dir=config, **paths)
    assert f"{models_yaml}: {expected}" in str(raised.value)


def test_analyst_segments_need_a_yaml_entry_and_profile_id_tests(tmp_path: Path) -> None:
    paths = _project(tmp_path)
    models = paths["models_dir"]
    (models / "seg_undocumented.sql").write_text("select 1 as profile_id\n")
    document = _hand_made_yaml()
    document["models"][0]["columns"][0]["data_tests"] = ["not_null"]
    (models / "_segments__models.yml").write_text(yaml.safe_dump(document))
    problems = hand_written_problems(models)
    assert problems == [
        f"{models / '_segments__models.yml'}: segment 'hand_made': field"
        " columns.profile_id.data_tests: no unique test",
        f"{models}: segment 'undocumented': field models: seg_undocumented.sql has no entry"
        " (name, description, config.meta, profile_id tests) in a YAML file",
    ]


def test_the_project_s_analyst_segments_keep_the_convention() -> None:
    assert hand_written_problems() == []


def test_every_trait_is_documented_with_a_type() -> None:
    document = yaml.safe_load((DBT_PROJECT_DIR / "models/traits/_traits__models.yml").read_text())
    (model,) = [m for m in document["models"] if m["name"] == "profile_traits"]
    undocumented = [
        c["name"] for c in model["columns"] if not str(c.get("description", "")).strip()
    ]
    untyped = [c["name"] for c in model["columns"] if not c.get("data_type")]
    assert (undocumented, untyped) == ([], [])
