"""Source configuration: which deliveries exist and how to read each one.

Sources live in ``cdp_pipeline/config/sources.yml`` so that a new delivery of a
known kind (a second ticket shop, another newsletter tool) is a config entry and
no code. The file is validated on load; every error names the source, the key
and the allowed values.
"""

import re
from collections import defaultdict
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cdp_pipeline.ingest.kinds import KINDS, FieldType, Kind
from cdp_pipeline.settings import CONFIG_DIR

DEFAULT_SOURCES_PATH = CONFIG_DIR / "sources.yml"

# Source names become asset keys and `_source` values; folder names and JSON
# paths are quoted into SQL, so they are held to a plain alphabet.
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_JSON_PATH_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z_][A-Za-z0-9_\-]*)*$")
# strptime formats are bound as SQL parameters; this only rejects obvious typos.
_FORMAT_RE = re.compile(r"^[%A-Za-z0-9 :/.,\-T+]+$")
ISO8601 = "iso8601"


class ConfigError(ValueError):
    """The sources configuration is invalid; the message says where and why."""


class SourceConfig(BaseModel):
    """One configured delivery of one kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Source name: asset key raw/<name> and the `_source` value.")
    kind: str = Field(description="One of the kinds in cdp_pipeline.ingest.kinds.KINDS.")
    description: str = Field(default="", description="One line on what the business gets here.")
    folder: str | None = Field(default=None, description="Sub-folder of the landing dir.")
    file_glob: str = Field(default="*", description="Which files of the folder belong to it.")
    format: Literal["csv", "jsonl"]
    encoding: Literal["utf-8", "utf-8-sig", "cp1252"] = "utf-8"
    delimiter: str = ","
    quote: str = '"'
    decimal_separator: Literal[".", ","] = "."
    date_format: str = "%Y-%m-%d"
    datetime_format: str = Field(
        default=ISO8601,
        description="strptime format of local times, or `iso8601` (offset honoured if given).",
    )
    timezone: str = "Europe/Brussels"
    columns: dict[str, str] = Field(
        description="Source column (CSV header) or JSON path (a.b) -> kind field. "
        "Several columns may feed one field: the first non-empty wins, in this order."
    )
    field_formats: dict[str, str] = Field(
        default_factory=dict,
        description="Per-field override of date_format/datetime_format.",
    )

    @property
    def folder_name(self) -> str:
        return self.folder or self.name

    @property
    def kind_def(self) -> Kind:
        return KINDS[self.kind]

    def fields_to_columns(self) -> dict[str, list[str]]:
        """For each mapped kind field, its source columns in priority order."""
        out: dict[str, list[str]] = defaultdict(list)
        for column, field in self.columns.items():
            out[field].append(column)
        return dict(out)

    def format_for(self, field: str) -> str:
        """The explicit date or datetime format of ``field``."""
        if field in self.field_formats:
            return self.field_formats[field]
        if self.kind_def.field(field).type is FieldType.DATE:
            return self.date_format
        return self.datetime_format

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(f"name {v!r} must match {_NAME_RE.pattern}")
        return v

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in KINDS:
            raise ValueError(f"kind {v!r} is unknown; allowed: {', '.join(sorted(KINDS))}")
        return v

    @field_validator("folder")
    @classmethod
    def _folder(cls, v: str | None) -> str | None:
        if v is not None and (v.startswith("/") or ".." in Path(v).parts):
            raise ValueError(f"folder {v!r} must be relative to the landing dir, without '..'")
        return v

    @field_validator("delimiter", "quote")
    @classmethod
    def _one_char(cls, v: str) -> str:
        if len(v) != 1 or v in "\r\n":
            raise ValueError(f"{v!r} must be a single character other than a newline")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"timezone {v!r} is not an IANA zone (e.g. Europe/Brussels)") from exc
        return v

    @field_validator("date_format", "datetime_format")
    @classmethod
    def _fmt(cls, v: str) -> str:
        if v != ISO8601 and not (_FORMAT_RE.match(v) and "%" in v):
            raise ValueError(f"format {v!r} must be {ISO8601!r} or a strptime format like %d/%m/%Y")
        return v

    @model_validator(mode="after")
    def _mapping(self) -> "SourceConfig":
        kind = self.kind_def
        allowed = [f.name for f in kind.fields if f.name not in kind.derived]
        for column, field in self.columns.items():
            if field not in allowed:
                raise ValueError(
                    f"columns: {column!r} maps to {field!r}, which is not a field of kind "
                    f"{kind.name!r}; allowed: {', '.join(allowed)}"
                )
            if self.format == "jsonl" and not _JSON_PATH_RE.match(column):
                raise ValueError(f"columns: JSON path {column!r} must look like key or key.sub")
        if self.format == "jsonl":
            # A path and a path below it (address, address.street) cannot both be read
            # from one parse of the line.
            for column in self.columns:
                for other in self.columns:
                    if other.startswith(column + "."):
                        raise ValueError(f"columns: {column!r} and {other!r} overlap; map one")
        mapped = set(self.columns.values())
        missing = [f for f in kind.required_fields if f not in mapped]
        if missing:
            raise ValueError(
                f"columns: required field(s) {', '.join(missing)} of kind {kind.name!r} "
                "are not mapped"
            )
        for field, fmt in self.field_formats.items():
            if field not in mapped:
                raise ValueError(f"field_formats: {field!r} is not a mapped field")
            if kind.field(field).type not in (FieldType.DATE, FieldType.TIMESTAMP):
                raise ValueError(f"field_formats: {field!r} is not a date or timestamp field")
            self._fmt(fmt)
        if self.decimal_separator == self.delimiter:
            raise ValueError("decimal_separator must differ from the delimiter")
        return self


class SourcesFile(BaseModel):
    """The whole sources.yml: a list of sources with unique names."""

    model_config = ConfigDict(extra="forbid")

    sources: list[SourceConfig]

    @model_validator(mode="after")
    def _unique(self) -> "SourcesFile":
        seen: set[str] = set()
        for s in self.sources:
            if s.name in seen:
                raise ValueError(f"source name {s.name!r} is configured twice")
            seen.add(s.name)
        return self


def _describe(exc: ValidationError, raw: dict) -> str:
    """Turn pydantic's errors into lines that name the source and the key."""
    lines = []
    entries = raw.get("sources") if isinstance(raw, dict) else None
    for err in exc.errors():
        loc = list(err["loc"])
        where = ".".join(str(p) for p in loc)
        if len(loc) >= 2 and loc[0] == "sources" and isinstance(loc[1], int) and entries:
            entry = entries[loc[1]] if loc[1] < len(entries) else {}
            name = entry.get("name", f"#{loc[1]}") if isinstance(entry, dict) else f"#{loc[1]}"
            key = ".".join(str(p) for p in loc[2:]) or "(entry)"
            where = f"source {name!r}, key {key!r}"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {msg}")
    return "; ".join(lines)


def load_sources_config(path: str | Path | None = None) -> list[SourceConfig]:
    """Read and validate sources.yml (default: the packaged one) into source configs."""
    path = Path(path) if path else DEFAULT_SOURCES_PATH
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:
        return SourcesFile.model_validate(raw).sources
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc, raw)}") from None


def sources_by_kind(path: str | Path | None = None) -> dict[str, list[str]]:
    """Kind name -> the configured source names of that kind (every kind present)."""
    out: dict[str, list[str]] = {k: [] for k in KINDS}
    for source in load_sources_config(path):
        out[source.kind].append(source.name)
    return out
