"""Retention: raw rows older than their source's retention period are deleted each night."""

from datetime import date

import duckdb
from dateutil.relativedelta import relativedelta

from cdp_pipeline.ingest.config import load_sources_config
from cdp_pipeline.privacy.inventory import load_privacy_config, quote


def enforce_retention(
    con: duckdb.DuckDBPyConnection, as_of: date, config: dict | None = None
) -> dict[str, int]:
    """Delete raw rows past retention; rows deleted per source."""
    rules = (config if config is not None else load_privacy_config()).get("retention") or {}
    sources = {s.name: s for s in load_sources_config()}
    deleted: dict[str, int] = {}
    for name, rule in sorted(rules.items()):
        source = sources.get(name)
        if source is None:
            raise ValueError(f"privacy.yml retention names an unknown source {name!r}")
        kind = source.kind_def
        column = rule.get("column", "occurred_at")
        kind.field(column)  # KeyError names the kind when the column does not exist
        cutoff = as_of - relativedelta(months=int(rule["months"]))
        exists = con.execute(
            "select count(*) from information_schema.tables where table_schema = 'raw'"
            " and table_name = ?",
            [kind.table],
        ).fetchall()[0][0]
        if not exists:
            continue
        predicate = f"_source = $source and {quote(column)} < $cutoff"
        params = {"source": name, "cutoff": cutoff}
        (n,) = con.execute(
            f"select count(*) from {kind.qualified_table} where {predicate}", params
        ).fetchall()[0]
        if n:
            con.execute(f"delete from {kind.qualified_table} where {predicate}", params)
        deleted[name] = int(n)
    return deleted
