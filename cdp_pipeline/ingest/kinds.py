"""Kinds: the platform's canonical record types and the raw table each one lands in.

A *kind* is what the platform knows about a record (a ticket order, a web event);
a *source* is one configured delivery of a kind. The fields below follow
docs/architecture.md exactly, in order, because staging models select them by name.
"""

from dataclasses import dataclass
from enum import StrEnum


class FieldType(StrEnum):
    """The value types a raw column can have; each has one explicit conversion."""

    TEXT = "varchar"
    TIMESTAMP = "timestamp"
    DATE = "date"
    INTEGER = "integer"
    DECIMAL = "decimal(12,2)"
    BOOLEAN = "boolean"
    JSON = "json"


@dataclass(frozen=True)
class KindField:
    """One typed column of a raw table."""

    name: str
    type: FieldType = FieldType.TEXT
    required: bool = False


@dataclass(frozen=True)
class Kind:
    """A canonical record type: its raw table and its ordered, typed fields."""

    name: str
    table: str
    fields: tuple[KindField, ...]
    # Fields computed by the loader rather than mapped from a source column.
    derived: frozenset[str] = frozenset()

    @property
    def qualified_table(self) -> str:
        """The table name with its schema, quoted for SQL."""
        return f'raw."{self.table}"'

    @property
    def column_names(self) -> list[str]:
        """Every column of the raw table, in insert order: lineage, fields, ``_extra``."""
        return [n for n, _ in LINEAGE_COLUMNS] + self.field_names + [EXTRA_COLUMN]

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def required_fields(self) -> list[str]:
        return [f.name for f in self.fields if f.required]

    def field(self, name: str) -> KindField:
        """The field called ``name``; KeyError names the kind when it does not exist."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"kind {self.name!r} has no field {name!r}")


# Every raw table starts with these lineage columns (docs/architecture.md).
LINEAGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_source", "varchar"),
    ("_file", "varchar"),
    ("_line", "bigint"),
    ("_file_hash", "varchar"),
    ("_loaded_at", "timestamp"),
)

T, TS, D, INT, DEC, B, J = (
    FieldType.TEXT,
    FieldType.TIMESTAMP,
    FieldType.DATE,
    FieldType.INTEGER,
    FieldType.DECIMAL,
    FieldType.BOOLEAN,
    FieldType.JSON,
)


def _f(name: str, type_: FieldType = T, required: bool = False) -> KindField:
    return KindField(name, type_, required)


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "citizen_account",
            "citizen_accounts",
            (
                _f("account_id", required=True),
                _f("email"),
                _f("given_name"),
                _f("family_name"),
                _f("birth_date", D),
                _f("gender"),
                _f("phone"),
                _f("street"),
                _f("house_number"),
                _f("box"),
                _f("postcode"),
                _f("municipality"),
                _f("country"),
                _f("language"),
                _f("created_at", TS),
                _f("updated_at", TS),
                _f("status"),
            ),
        ),
        Kind(
            "ticket_order",
            "ticket_orders",
            (
                _f("order_id", required=True),
                _f("ordered_at", TS, required=True),
                _f("channel"),
                _f("first_name"),
                _f("last_name"),
                _f("email"),
                _f("phone"),
                _f("postcode"),
                _f("a_profiel_id"),
                _f("event_id"),
                _f("event_name"),
                _f("venue"),
                _f("category"),
                _f("performance_at", TS),
                _f("quantity", INT),
                _f("amount_eur", DEC),
                _f("status"),
            ),
        ),
        Kind(
            "registration",
            "registrations",
            (
                _f("registration_id", required=True),
                _f("registered_at", TS),
                _f("activity_id"),
                _f("activity_name"),
                _f("activity_type"),
                _f("participant_first_name"),
                _f("participant_last_name"),
                _f("participant_birth_date", D),
                _f("contact_first_name"),
                _f("contact_last_name"),
                _f("contact_email"),
                _f("contact_phone"),
                _f("street"),
                _f("house_number"),
                _f("postcode"),
                _f("city"),
                _f("a_profiel_id"),
                _f("price_eur", DEC),
                _f("status"),
            ),
        ),
        Kind(
            "newsletter_contact",
            "newsletter_contacts",
            (
                _f("email", required=True),
                _f("first_name"),
                _f("last_name"),
                _f("list_name", required=True),
                _f("status"),
                _f("opt_in_at", TS),
                _f("unsubscribed_at", TS),
                _f("language"),
            ),
        ),
        Kind(
            "email_event",
            "email_events",
            (
                _f("email", required=True),
                _f("campaign_id"),
                _f("event_type", required=True),
                _f("url"),
                _f("occurred_at", TS, required=True),
            ),
        ),
        Kind(
            "web_event",
            "web_events",
            (
                _f("message_id", required=True),
                _f("event_type", required=True),
                _f("anonymous_id"),
                _f("user_id"),
                _f("previous_id"),
                _f("event_name"),
                _f("properties", J),
                _f("context", J),
                _f("traits", J),
                _f("occurred_at", TS, required=True),
                _f("event_date", D),
                # When the platform received the event (Segment receivedAt): tells a late
                # event from a wrong phone clock. Last, so older tables gain it by ALTER.
                _f("received_at", TS),
            ),
            # The Brussels calendar day of occurred_at, computed at load.
            derived=frozenset({"event_date"}),
        ),
        Kind(
            "app_device",
            "app_devices",
            (
                _f("device_id", required=True),
                _f("platform"),
                _f("push_token"),
                _f("app_version"),
                _f("a_profiel_id"),
                _f("push_opt_in", B),
                _f("first_seen_at", TS),
                _f("last_seen_at", TS),
            ),
        ),
        Kind(
            "consent_event",
            "consent_events",
            (
                _f("subject_type", required=True),
                _f("subject_id", required=True),
                _f("purpose", required=True),
                _f("status", required=True),
                _f("occurred_at", TS, required=True),
                _f("consent_source"),
            ),
        ),
        Kind(
            "privacy_request",
            "privacy_requests",
            (
                _f("request_id", required=True),
                _f("request_type", required=True),
                _f("identifier_type", required=True),
                _f("identifier_value", required=True),
                _f("received_at", TS),
            ),
        ),
    )
}


# Columns a source delivers that its mapping does not know are kept, not dropped: they
# land as one JSON object per record in this last column (null when there are none).
EXTRA_COLUMN = "_extra"


def kind_table_ddl(kind: Kind) -> str:
    """CREATE TABLE statement for the raw table of ``kind`` (lineage first, ``_extra`` last)."""
    columns = [f'"{name}" {type_}' for name, type_ in LINEAGE_COLUMNS]
    columns += [f'"{f.name}" {f.type.value}' for f in kind.fields]
    columns.append(f'"{EXTRA_COLUMN}" json')
    return f"create table if not exists {kind.qualified_table} ({', '.join(columns)})"


# Tables created before a column was added get it on the next load (DuckDB keeps data).
KIND_TABLE_MIGRATIONS = (
    f'alter table {{table}} add column if not exists "{EXTRA_COLUMN}" json',
    # web_event.received_at; the statement is skipped for the other kinds.
    'alter table {table} add column if not exists "received_at" timestamp',
)


FILES_DDL = """
create table if not exists raw._files (
    source varchar,
    file varchar,
    file_hash varchar,
    size_bytes bigint,
    rows_read bigint,
    rows_loaded bigint,
    rows_quarantined bigint,
    status varchar,
    message varchar,
    loaded_at timestamp,
    file_mtime timestamp
)
"""

# file_mtime lets a nightly run skip unchanged files by (size, mtime) without reading them.
FILES_MIGRATIONS = ("alter table raw._files add column if not exists file_mtime timestamp",)

QUARANTINE_DDL = """
create table if not exists raw._quarantine (
    source varchar,
    file varchar,
    line bigint,
    column_name varchar,
    value varchar,
    reason varchar,
    raw_record varchar,
    file_hash varchar,
    quarantined_at timestamp
)
"""
