"""The personal-data inventory: which tables hold personal data, and how a person is found.

Three parts, merged:

* dbt ``meta`` (``contains_pii``/``pii_columns``) on sources and models, read from the
  project's YAML so it needs no compiled manifest;
* ``cdp_pipeline/config/privacy.yml`` for the tables that dbt does not describe (identity,
  the ML tables) and for whole dbt layers rebuilt each night;
* the Python-side stores outside the warehouse (activation sync state, serving snapshots,
  exported files, the identity decisions file), declared below.

Erasure and access use ``RAW_IDENTIFIERS`` (how each raw table names a person) and
``IDENTIFIER_COLUMNS`` (the column names that carry an identifier anywhere else);
``uncovered_columns`` is what the inventory test and the nightly check fail on.
"""

import fnmatch
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import duckdb
import yaml

from cdp_pipeline.settings import CONFIG_DIR, DBT_PROJECT_DIR

PRIVACY_CONFIG = CONFIG_DIR / "privacy.yml"

# How each raw table names a person: (identifier kind, SQL expression over the table). The
# expressions are code, not input; values are normalised in Python before matching.
RAW_IDENTIFIERS: dict[str, list[tuple[str, str]]] = {
    "citizen_accounts": [
        ("record", "_source || '|' || account_id"),
        ("a_profiel_id", "account_id"),
        ("email", "email"),
        ("phone", "phone"),
    ],
    "ticket_orders": [
        ("record", "_source || '|' || order_id"),
        ("email", "email"),
        ("phone", "phone"),
        ("a_profiel_id", "a_profiel_id"),
    ],
    "registrations": [
        ("record", "_source || '|' || registration_id"),
        ("email", "contact_email"),
        ("phone", "contact_phone"),
        ("a_profiel_id", "a_profiel_id"),
    ],
    "newsletter_contacts": [
        ("record", "_source || '|' || trim(list_name) || ':' || lower(trim(email))"),
        ("email", "email"),
    ],
    "email_events": [("email", "email")],
    "web_events": [
        ("anonymous_id", "anonymous_id"),
        ("anonymous_id", "previous_id"),
        ("a_profiel_id", "user_id"),
        ("email", "traits->>'email'"),
    ],
    "app_devices": [
        ("record", "_source || '|' || device_id"),
        ("device_id", "device_id"),
        ("a_profiel_id", "a_profiel_id"),
    ],
    "consent_events": [
        ("a_profiel_id", "case when lower(trim(subject_type)) = 'a_profiel' then subject_id end"),
        ("email", "case when lower(trim(subject_type)) = 'email' then subject_id end"),
        ("device_id", "case when lower(trim(subject_type)) = 'device' then subject_id end"),
    ],
}

# The privacy office's own requests are kept (as evidence) with the identifier hashed.
REQUEST_IDENTIFIER_KINDS = {
    "email": "email",
    "phone": "phone",
    "a_profiel_id": "a_profiel_id",
    "device_id": "device_id",
    "anonymous_id": "anonymous_id",
}

# Column names that carry an identifier in every table outside raw (dbt, identity, ML,
# snapshots, sync state). A pair (source, record_key) is a `record` as well.
IDENTIFIER_COLUMNS: dict[str, str] = {
    "profile_id": "profile_id",
    "other_profile_id": "profile_id",
    "record_id": "record_id",
    "record_id_l": "record_id",
    "record_id_r": "record_id",
    "household_key": "record_id",
    "email": "email",
    "email_normalised": "email",
    "contact_email": "email",
    "covered_email": "email",
    "phone": "phone",
    "phone_e164": "phone",
    "contact_phone": "phone",
    "a_profiel_id": "a_profiel_id",
    "account_id": "a_profiel_id",
    "user_id": "a_profiel_id",
    "device_id": "device_id",
    "anonymous_id": "anonymous_id",
    "previous_id": "anonymous_id",
}

# Column names that look personal; a column so named must be in the inventory.
PERSONAL_LOOKING = re.compile(
    r"(e_?mail|phone|first_name|last_name|given_name|family_name|full_name|birth|street|"
    r"house_number|address|postcode|municipality|city|(^|_)ip($|_)|token|anonymous|device_id|"
    r"a_profiel|account_id|user_id|subject|identifier_value|raw_record|traits|context|"
    r"record_key|record_id|profile_id|household)"
)

# Stores outside the warehouse, for the documentation and the access export.
PYTHON_SIDE_STORES: dict[str, list[str]] = {
    "state/activation/<destination>.duckdb member_state": ["profile_id", "vendor_key"],
    "state/activation/<destination>.duckdb pruned_tokens": ["token_sha256"],
    "<warehouse folder>/snapshots/serving-*.duckdb": ["every table (profile_id)"],
    "exports/<destination>/*": ["the destination's fields"],
    "state/identity/decisions.jsonl": ["record_ids"],
    "privacy/access/<request_id>/*": ["everything held on the requester"],
}


@dataclass(frozen=True)
class InventoryEntry:
    """Personal-data columns of one relation (or of every relation a pattern matches)."""

    relation: str
    pii_columns: frozenset[str]
    origin: str
    rebuilt: bool = False

    def matches(self, relation: str) -> bool:
        return fnmatch.fnmatchcase(relation, self.relation)


@dataclass(frozen=True)
class Inventory:
    entries: tuple[InventoryEntry, ...] = field(default_factory=tuple)

    def entries_for(self, relation: str) -> list[InventoryEntry]:
        return [e for e in self.entries if e.matches(relation)]

    def covers(self, relation: str, column: str) -> bool:
        return any(column in e.pii_columns for e in self.entries_for(relation))

    def pii_columns(self, relation: str) -> set[str]:
        return {c for e in self.entries_for(relation) for c in e.pii_columns}


def _dbt_meta_entries(models_dir: Path) -> list[InventoryEntry]:
    entries: list[InventoryEntry] = []
    for path in sorted(models_dir.rglob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for source in document.get("sources") or []:
            schema = source.get("schema") or source["name"]
            for table in source.get("tables") or []:
                entry = _meta_entry(f"{schema}.{table['name']}", table, path)
                if entry:
                    entries.append(entry)
        for model in document.get("models") or []:
            # Models land in their folder's schema; the name is unique across schemas.
            entry = _meta_entry(f"*.{model['name']}", model, path)
            if entry:
                entries.append(entry)
    return entries


def _meta_entry(relation: str, node: dict, path: Path) -> InventoryEntry | None:
    meta = node.get("meta") or (node.get("config") or {}).get("meta") or {}
    columns = set(meta.get("pii_columns") or [])
    for column in node.get("columns") or []:
        column_meta = column.get("meta") or {}
        if column_meta.get("pii") or column_meta.get("contains_pii"):
            columns.add(column["name"])
    if not meta.get("contains_pii") and not columns:
        return None
    return InventoryEntry(relation, frozenset(columns), f"dbt meta ({path.name})")


def load_privacy_config(path: Path | None = None) -> dict:
    """The parsed privacy.yml (retention and inventory tables)."""
    return yaml.safe_load((path or PRIVACY_CONFIG).read_text(encoding="utf-8")) or {}


@cache
def load_inventory(config_path: Path | None = None, models_dir: Path | None = None) -> Inventory:
    """dbt meta plus privacy.yml: every relation with personal data and its columns."""
    entries = _dbt_meta_entries(models_dir or DBT_PROJECT_DIR / "models")
    for relation, spec in (load_privacy_config(config_path).get("tables") or {}).items():
        entries.append(
            InventoryEntry(
                relation,
                frozenset(spec.get("pii_columns") or []),
                "privacy.yml",
                rebuilt=bool(spec.get("rebuilt")),
            )
        )
    # The privacy office's own bookkeeping.
    entries.append(InventoryEntry("raw._files", frozenset(), "ingest bookkeeping"))
    return Inventory(tuple(entries))


def personal_looking_columns(
    con: duckdb.DuckDBPyConnection, catalog: str | None = None
) -> list[tuple[str, str]]:
    """(schema.table, column) of every column of a table or view that looks personal."""
    sql = "select table_schema, table_name, column_name from information_schema.columns"
    params: list[str] = []
    if catalog:
        sql += " where table_catalog = ?"
        params.append(catalog)
    rows = con.execute(sql, params).fetchall()
    return sorted(
        (f"{schema}.{table}", column)
        for schema, table, column in rows
        if PERSONAL_LOOKING.search(column.lower())
    )


def uncovered_columns(
    con: duckdb.DuckDBPyConnection, inventory: Inventory | None = None
) -> list[str]:
    """``schema.table.column`` of personal-looking columns the inventory does not list."""
    inventory = inventory or load_inventory()
    return [
        f"{relation}.{column}"
        for relation, column in personal_looking_columns(con)
        if not inventory.covers(relation, column)
    ]


def identifier_columns(
    con: duckdb.DuckDBPyConnection, schema: str, table: str
) -> list[tuple[str, str]]:
    """(kind, SQL expression) of the identifier columns of a table outside raw."""
    columns = {
        row[0]
        for row in con.execute(
            "select column_name from information_schema.columns"
            " where table_schema = ? and table_name = ? and data_type = 'VARCHAR'",
            [schema, table],
        ).fetchall()
    }
    specs = [(IDENTIFIER_COLUMNS[c], quote(c)) for c in sorted(columns) if c in IDENTIFIER_COLUMNS]
    if {"source", "record_key"} <= columns:
        specs.append(("record", "source || '|' || record_key"))
    return specs


def quote(identifier: str) -> str:
    """Quote a table or column name taken from the catalog or the inventory."""
    return '"' + identifier.replace('"', '""') + '"'
