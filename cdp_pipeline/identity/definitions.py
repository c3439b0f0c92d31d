"""Dagster wiring of identity resolution: one multi-asset writing the three identity tables."""

import dagster as dg

from cdp_pipeline.identity.config import load_config
from cdp_pipeline.identity.resolve import resolve
from cdp_pipeline.resources import WarehouseResource

RECORD_PROFILES = dg.AssetKey(["identity", "record_profiles"])
LINKS = dg.AssetKey(["identity", "links"])
PROFILE_HISTORY = dg.AssetKey(["identity", "profile_history"])
REVIEW_QUEUE = dg.AssetKey(["identity", "review_queue"])
LINK_EVIDENCE = dg.AssetKey(["identity", "link_evidence"])
GOLDEN_ATTRIBUTES = dg.AssetKey(["identity", "golden_attributes"])
INPUTS = [
    dg.AssetKey(["intermediate", "int_identity__records"]),
    dg.AssetKey(["intermediate", "int_identity__web_identities"]),
]

A_PROFIEL_CHECK = "one_a_profiel_id_per_profile"
SIZE_CHECK = "largest_profile_under_max_size"

# Distinct A-profiel accounts per profile: accounts themselves, records that carry
# an id (children excluded: they carry their parent's) and identified web visitors.
_A_PROFIEL_IDS_SQL = """
with ids as (
    select rp.profile_id,
        case when r.source = 'aprofiel' then coalesce(r.a_profiel_id, r.record_key)
             when not coalesce(r.is_child_record, false) then r.a_profiel_id end as a_profiel_id
    from identity.record_profiles as rp
    inner join intermediate.int_identity__records as r on r.record_id = rp.record_id
)
select count(*) from (
    select profile_id from ids where a_profiel_id is not null
    group by profile_id having count(distinct a_profiel_id) > 1
)
"""


class IdentityRunConfig(dg.Config):
    """Run options of identity resolution."""

    retrain: bool = False  # train the Splink model again even if a saved one fits the config


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            RECORD_PROFILES,
            deps=INPUTS,
            group_name="identity",
            description="Every person-bearing source record with the profile it belongs to.",
        ),
        dg.AssetSpec(
            LINKS,
            deps=INPUTS,
            group_name="identity",
            description="The links that joined records into profiles, with their evidence.",
        ),
        dg.AssetSpec(
            PROFILE_HISTORY,
            deps=INPUTS,
            group_name="identity",
            description="Profiles created, merged, split or retired by each run.",
        ),
        dg.AssetSpec(
            REVIEW_QUEUE,
            deps=INPUTS,
            group_name="identity",
            description="Pairs between the review and auto-merge thresholds, for a person.",
        ),
        dg.AssetSpec(
            LINK_EVIDENCE,
            deps=INPUTS,
            group_name="identity",
            description="Per link and attribute: the comparison level and its weight.",
        ),
        dg.AssetSpec(
            GOLDEN_ATTRIBUTES,
            deps=INPUTS,
            group_name="identity",
            description="Per profile and golden attribute: the surviving value and its origin.",
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            A_PROFIEL_CHECK,
            asset=RECORD_PROFILES,
            description="No profile holds two A-profiel accounts.",
        ),
        dg.AssetCheckSpec(
            SIZE_CHECK,
            asset=RECORD_PROFILES,
            description="The largest profile is below the configured maximum.",
        ),
    ],
    can_subset=False,
)
def identity_resolution(
    context: dg.AssetExecutionContext, config: IdentityRunConfig, warehouse: WarehouseResource
):
    """Resolve source records into stable profiles (deterministic rules, Splink, guards)."""
    matching = load_config()
    with warehouse.connect() as con:
        stats = resolve(con, context.run.run_id, matching, retrain=config.retrain or None)
        violations = con.execute(_A_PROFIEL_IDS_SQL).fetchall()[0][0]
    context.log.info(
        f"identity: {stats.records} records, {stats.profiles} profiles, "
        f"{sum(stats.links_by_type.values())} links, {stats.pairs_blocked_by_guards} pairs "
        f"blocked, model {stats.model}, {stats.pairs_scored} pairs scored "
        f"({'incremental' if stats.incremental else 'full'}, {stats.records_rescored} "
        f"records new or changed, {stats.records_reclustered} re-resolved), {stats.seconds}s"
    )
    links_md = {f"links_{kind}": dg.MetadataValue.int(n) for kind, n in stats.links_by_type.items()}
    yield dg.MaterializeResult(
        asset_key=RECORD_PROFILES,
        metadata={
            "dagster/row_count": dg.MetadataValue.int(stats.records),
            "records": dg.MetadataValue.int(stats.records),
            "profiles": dg.MetadataValue.int(stats.profiles),
            "auto_merged_pairs": dg.MetadataValue.int(stats.auto_merged_pairs),
            "pairs_blocked_by_guards": dg.MetadataValue.int(stats.pairs_blocked_by_guards),
            "blocked_by_reason": dg.MetadataValue.json(stats.blocked_by_reason),
            "largest_profile_size": dg.MetadataValue.int(stats.largest_profile),
            "singletons_rate": dg.MetadataValue.float(stats.singletons_rate),
            "model": dg.MetadataValue.text(stats.model),
            "pairs_scored": dg.MetadataValue.int(stats.pairs_scored),
            "incremental": dg.MetadataValue.bool(stats.incremental),
            "records_rescored": dg.MetadataValue.int(stats.records_rescored),
            "records_reclustered": dg.MetadataValue.int(stats.records_reclustered),
            "seconds": dg.MetadataValue.float(stats.seconds),
        },
    )
    yield dg.MaterializeResult(
        asset_key=LINKS,
        metadata={
            "dagster/row_count": dg.MetadataValue.int(sum(stats.links_by_type.values())),
            **links_md,
        },
    )
    yield dg.MaterializeResult(
        asset_key=PROFILE_HISTORY,
        metadata={f"changes_{k}": dg.MetadataValue.int(n) for k, n in stats.history.items()},
    )
    yield dg.MaterializeResult(
        asset_key=REVIEW_QUEUE,
        metadata={"open_pairs": dg.MetadataValue.int(stats.review_pairs)},
    )
    yield dg.MaterializeResult(asset_key=LINK_EVIDENCE)
    yield dg.MaterializeResult(asset_key=GOLDEN_ATTRIBUTES)
    yield dg.AssetCheckResult(
        check_name=A_PROFIEL_CHECK,
        asset_key=RECORD_PROFILES,
        passed=violations == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"profiles_with_several_accounts": dg.MetadataValue.int(violations)},
    )
    yield dg.AssetCheckResult(
        check_name=SIZE_CHECK,
        asset_key=RECORD_PROFILES,
        passed=stats.largest_profile <= matching.max_profile_size,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "largest_profile_size": dg.MetadataValue.int(stats.largest_profile),
            "max_profile_size": dg.MetadataValue.int(matching.max_profile_size),
        },
    )


# Resources are bound once, by the root definitions.
defs = dg.Definitions(assets=[identity_resolution])


def identity_run_config(retrain: bool = False) -> dg.RunConfig:
    """Run config of a job that includes identity resolution."""
    return dg.RunConfig(ops={"identity_resolution": IdentityRunConfig(retrain=retrain)})
