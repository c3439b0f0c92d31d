"""Dagster assets of the privacy group: erasure before staging, access and inventory after.

Wiring (root definitions and the dbt translator): every pre_identity dbt model depends on
``ERASURE_KEY``, so staging never reads a row an erasure or a tombstone removes.
"""

import os
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from cdp_pipeline.ingest import sources_by_kind
from cdp_pipeline.privacy.access import answer_access, pending_access
from cdp_pipeline.privacy.erasure import (
    ErasureOutcome,
    clear_matcher,
    find_person,
    hash_request_identifiers,
    pending_erasures,
    purge_access_exports,
    purge_decisions,
    purge_export_files,
    purge_raw,
    purge_snapshots,
    purge_sync_state,
    purge_warehouse_tables,
    tombstone_matcher,
)
from cdp_pipeline.privacy.inventory import load_inventory, personal_looking_columns
from cdp_pipeline.privacy.minimisation import minimisation_violations
from cdp_pipeline.privacy.retention import enforce_retention
from cdp_pipeline.privacy.state import open_state, resolve_salt
from cdp_pipeline.resources import WarehouseResource
from cdp_pipeline.settings import get_settings

PRIVACY_GROUP = "privacy"
ERASURE_KEY = dg.AssetKey(["privacy", "erasure"])
ACCESS_KEY = dg.AssetKey(["privacy", "access_exports"])
INVENTORY_KEY = dg.AssetKey(["privacy", "inventory"])
SALT_ENV = "CDP_PRIVACY_SALT"


class PrivacyResource(dg.ConfigurableResource):
    """The secret salt of the tombstones; empty falls back to a generated file in state."""

    salt: str = ""

    def salt_bytes(self, state_dir: Path) -> bytes:
        return resolve_salt(self.salt, state_dir)


def privacy_resource() -> PrivacyResource:
    """The salt from ``CDP_PRIVACY_SALT`` when it is set, else the development fallback."""
    if os.environ.get(SALT_ENV):
        return PrivacyResource(salt=dg.EnvVar(SALT_ENV))
    return PrivacyResource()


def _raw_keys() -> list[dg.AssetKey]:
    return [dg.AssetKey(["raw", s]) for names in sources_by_kind().values() for s in names]


def _snapshots_dir(warehouse: WarehouseResource) -> Path:
    return warehouse.path.parent / "snapshots"


@dg.asset(
    key=ERASURE_KEY,
    deps=_raw_keys(),
    group_name=PRIVACY_GROUP,
    kinds={"duckdb", "python"},
)
def privacy_erasure(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, privacy: PrivacyResource
) -> dg.MaterializeResult:
    """Raw data cleared of erased people and of rows past retention, before staging reads it."""
    settings = get_settings()
    state_dir = settings.state_dir
    started = datetime.now(UTC).replace(tzinfo=None)
    outcomes: list[ErasureOutcome] = []
    with open_state(state_dir) as state, warehouse.connect() as con:
        salt = privacy.salt_bytes(state_dir)
        state.check_salt(salt)
        tombstones = tombstone_matcher(salt, state.tombstones())
        # 1. Rows loaded since the last night that an earlier erasure forbids.
        swept = purge_raw(con, tombstones, since=state.last_sweep())
        swept_state = purge_sync_state(state_dir, tombstones)
        # 2. Retention.
        expired = enforce_retention(con, settings.as_of_date)
        # 3. New erasure requests.
        handled = state.handled_requests()
        for request in pending_erasures(con, handled):
            person = find_person(con, request)
            matcher = clear_matcher(person)
            outcome = ErasureOutcome(
                request.request_id,
                "completed" if len(person.identifiers) > 1 or person.profile_ids else "no_match",
                profiles=len(person.profile_ids),
                identifiers=person.identifiers.counts(),
                shared_identifiers_kept=person.shared_kept,
            )
            outcome.tombstones_added = state.add_tombstones(person.identifiers.digests(salt))
            for layer, n in purge_raw(con, matcher).items():
                outcome.add(layer, n)
            for layer, n in purge_warehouse_tables(con, matcher).items():
                outcome.add(layer, n)
            outcome.receipts = purge_sync_state(state_dir, matcher)
            for destination, n in purge_export_files(settings.exports_dir, matcher).items():
                outcome.add(f"exports/{destination}", n)
            for layer, n in purge_snapshots(_snapshots_dir(warehouse), matcher).items():
                outcome.add(layer, n)
            outcome.add(
                "identity decisions",
                purge_decisions(state_dir / "identity" / "decisions.jsonl", matcher),
            )
            outcome.add(
                "access exports",
                purge_access_exports(
                    settings.data_dir / "privacy" / "access", person.profile_ids, matcher
                ),
            )
            state.record_request(request.request_id, "erasure", outcome.status, request.received_at)
            state.audit(outcome.audit_entry(request))
            outcomes.append(outcome)
        # 4. The requests keep their id, type and dates; the identifier becomes a hash.
        tombstones = tombstone_matcher(salt, state.tombstones())
        hashed = hash_request_identifiers(con, salt, tombstones, state.handled_requests())
        con.execute("checkpoint")
        state.record_sweep(started)
        tombstone_count = state.tombstone_count()
    erased_rows = sum(sum(o.rows_deleted.values()) for o in outcomes)
    context.log.info(
        f"Privacy: {len(outcomes)} erasure request(s) handled, {erased_rows} rows erased, "
        f"{sum(swept.values())} stale rows swept by tombstone, "
        f"{sum(expired.values())} rows past retention deleted"
    )
    return dg.MaterializeResult(
        metadata={
            "erasure_requests": dg.MetadataValue.int(len(outcomes)),
            "rows_erased": dg.MetadataValue.int(erased_rows),
            "rows_swept_by_tombstone": dg.MetadataValue.int(sum(swept.values())),
            "sync_state_swept": dg.MetadataValue.int(len(swept_state)),
            "receipts": dg.MetadataValue.int(sum(len(o.receipts) for o in outcomes)),
            "requests_hashed": dg.MetadataValue.int(hashed),
            "tombstones": dg.MetadataValue.int(tombstone_count),
            "rows_past_retention": dg.MetadataValue.json(expired),
            "erased_per_layer": dg.MetadataValue.json(
                {o.request_id: o.rows_deleted for o in outcomes}
            ),
        }
    )


@dg.asset(
    key=ACCESS_KEY,
    deps=[
        dg.AssetKey(["marts", "profiles"]),
        dg.AssetKey(["marts", "profile_records"]),
        dg.AssetKey(["marts", "interactions"]),
        dg.AssetKey(["marts", "consent_state"]),
        dg.AssetKey(["marts", "segment_members"]),
    ],
    group_name=PRIVACY_GROUP,
    kinds={"duckdb", "python"},
)
def privacy_access_exports(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Answers to access requests: everything held on each requester, as JSON and a summary."""
    settings = get_settings()
    access_dir = settings.data_dir / "privacy" / "access"
    answered = []
    with open_state(settings.state_dir) as state, warehouse.connect(read_only=True) as con:
        for request in pending_access(con, state.handled_requests()):
            export = answer_access(con, settings.state_dir, access_dir, request)
            state.record_request(
                request.request_id,
                "access",
                "completed" if export.profiles else "no_match",
                request.received_at,
            )
            state.audit(
                {
                    "request_id": request.request_id,
                    "request_type": "access",
                    "identifier_type": request.identifier_type,
                    "received_at": request.received_at,
                    "handled_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "status": "completed" if export.profiles else "no_match",
                    "profiles": export.profiles,
                    "rows_exported": export.sections,
                }
            )
            answered.append(export)
    context.log.info(f"Privacy: {len(answered)} access request(s) answered")
    return dg.MaterializeResult(
        metadata={
            "access_requests": dg.MetadataValue.int(len(answered)),
            "folder": dg.MetadataValue.path(str(access_dir)),
        }
    )


@dg.asset(
    key=INVENTORY_KEY,
    deps=[ACCESS_KEY, dg.AssetKey(["marts", "segment_members"])],
    group_name=PRIVACY_GROUP,
    kinds={"duckdb"},
    check_specs=[
        dg.AssetCheckSpec(
            "inventory_covers_warehouse",
            asset=INVENTORY_KEY,
            description="Every personal-looking column of the warehouse is in the inventory.",
        ),
        dg.AssetCheckSpec(
            "analytics_marts_pseudonymous",
            asset=INVENTORY_KEY,
            description="Analytics-facing marts carry profile ids, not names or contact details.",
        ),
    ],
)
def privacy_inventory(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Which tables hold personal data tonight, and whether the inventory covers them all."""
    inventory = load_inventory()
    with warehouse.connect(read_only=True) as con:
        columns = personal_looking_columns(con)
        violations = minimisation_violations(con)
    uncovered = [f"{r}.{c}" for r, c in columns if not inventory.covers(r, c)]
    tables = sorted({r for r, _ in columns})
    context.log.info(
        f"Privacy inventory: {len(tables)} tables with personal data, "
        f"{len(uncovered)} uncovered columns, {len(violations)} minimisation violations"
    )
    return dg.MaterializeResult(
        metadata={
            "tables_with_personal_data": dg.MetadataValue.int(len(tables)),
            "personal_columns": dg.MetadataValue.int(len(columns)),
            "uncovered_columns": dg.MetadataValue.int(len(uncovered)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="inventory_covers_warehouse",
                passed=not uncovered,
                metadata={"uncovered": dg.MetadataValue.md("\n".join(uncovered) or "none")},
            ),
            dg.AssetCheckResult(
                check_name="analytics_marts_pseudonymous",
                passed=not violations,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"violations": dg.MetadataValue.md("\n".join(violations) or "none")},
            ),
        ],
    )


defs = dg.Definitions(
    assets=[privacy_erasure, privacy_access_exports, privacy_inventory],
    resources={"privacy": privacy_resource()},
)
