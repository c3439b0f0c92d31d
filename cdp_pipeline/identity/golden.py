"""Survivorship: one value per profile and golden attribute (``identity.golden_attributes``).

The candidates of an attribute are the non-empty values of the profile's records
(or, for a custom attribute, of a column of another table joined on the record
key); the configured rule picks one. The winner keeps its source, record and
observation time, so a screen can show where a golden value came from.
"""

import duckdb
import polars as pl

from cdp_pipeline.identity.config import GoldenAttribute, MatchingConfig

# Record columns as the golden record shows them: names and address as delivered
# (trimmed), e-mail and phone normalised with placeholders removed.
_VALUE_COLUMNS = {
    "first_name": pl.col("first_name"),
    "last_name": pl.col("last_name"),
    "birth_date": pl.col("birth_date").cast(pl.Utf8),
    "email": pl.col("email_normalised"),
    "phone": pl.col("phone_e164"),
    "street": pl.col("street"),
    "house_number": pl.col("house_number"),
    "postcode": pl.col("postcode_normalised"),
    "municipality": pl.col("municipality"),
}

_RANK_SQL = """
with candidates as (
    select c.profile_id, c.attribute, c.value, c.source, c.record_id, c.observed_at,
        o.rule as survivorship_rule,
        count(*) over (partition by c.profile_id, c.attribute, c.value) as n_same,
        coalesce(list_position(o.sources, c.source), 1000) as source_rank
    from _golden_candidates as c
    inner join _golden_rules as o on o.attribute = c.attribute
    where o.rule <> 'source_order' or list_contains(o.sources, c.source)
),

ranked as (
    select *, row_number() over (
        partition by profile_id, attribute
        order by
            case when survivorship_rule = 'source_order' then source_rank else 0 end,
            case when survivorship_rule = 'most_frequent' then -n_same else 0 end,
            observed_at desc nulls last, record_id
    ) as pick
    from candidates
)

select profile_id::varchar as profile_id, attribute::varchar as attribute,
    value::varchar as value, source::varchar as source, record_id::varchar as record_id,
    observed_at::timestamp as observed_at, survivorship_rule::varchar as rule
from ranked where pick = 1
order by profile_id, attribute
"""
_COLUMNS = "profile_id, attribute, value, source, record_id, observed_at, rule"


def _custom_values(
    con: duckdb.DuckDBPyConnection, name: str, attr: GoldenAttribute, base: pl.DataFrame
) -> pl.DataFrame:
    """A custom attribute's candidates: ``attr.table`` joined on the record key."""
    schema, table = attr.table.split(".")  # validated as lower-case identifiers on load
    exists = con.execute(
        "select count(*) from information_schema.columns where table_schema = ? "
        "and table_name = ? and column_name in (?, ?)",
        [schema, table, attr.key, attr.column],
    ).fetchall()[0][0]
    if exists < 2:
        return base.clear()
    values = con.sql(
        f'select distinct cast("{attr.key}" as varchar) as record_key, '
        f'cast("{attr.column}" as varchar) as value from {attr.table} '
        f'where "{attr.column}" is not null'
    ).pl()
    return (
        base.filter(pl.col("source") == attr.source)
        .drop("value")
        .join(values, on="record_key", how="inner")
        .with_columns(attribute=pl.lit(name))
        .select(base.columns)
    )


def _base(records: pl.DataFrame) -> pl.DataFrame:
    return records.select(
        "profile_id",
        "record_id",
        "record_key",
        "source",
        pl.col("observed_at").cast(pl.Datetime),
        pl.lit(None, pl.Utf8).alias("value"),
        pl.lit(None, pl.Utf8).alias("attribute"),
    )


def build_golden(
    con: duckdb.DuckDBPyConnection,
    records: pl.DataFrame,
    config: MatchingConfig,
    *,
    custom_records: pl.DataFrame | None = None,
    replace_profiles: pl.Series | None = None,
) -> int:
    """Write ``identity.golden_attributes``; returns the number of rows written.

    ``records``: one row per record with profile_id, record_id, record_key, source,
    observed_at and the columns of ``_VALUE_COLUMNS``.
    ``replace_profiles``: None rewrites the whole table from ``records``. Otherwise
    only these profiles' rows are replaced (incremental nights: ``records`` holds
    the records of the profiles that changed), and the custom attributes of every
    profile, taken from ``custom_records`` (profile_id, record_id, record_key,
    source, observed_at of all records): their table can change on any night
    without a record changing.
    """
    base = _base(records)
    custom_base = base if custom_records is None else _base(custom_records)
    parts = []
    for name, attr in config.golden_attributes.items():
        if attr.table is not None:
            parts.append(_custom_values(con, name, attr, custom_base))
            continue
        part = records.select(
            "profile_id",
            "record_id",
            "record_key",
            "source",
            pl.col("observed_at").cast(pl.Datetime),
            _VALUE_COLUMNS[attr.column].cast(pl.Utf8).str.strip_chars().alias("value"),
            pl.lit(name).alias("attribute"),
        )
        parts.append(part.filter(pl.col("value").is_not_null() & (pl.col("value") != "")))
    candidates = pl.concat(parts) if parts else base.clear()
    rules = pl.DataFrame(
        {
            "attribute": list(config.golden_attributes),
            "rule": [a.rule for a in config.golden_attributes.values()],
            "sources": [a.sources for a in config.golden_attributes.values()],
        },
        schema={"attribute": pl.Utf8, "rule": pl.Utf8, "sources": pl.List(pl.Utf8)},
    )
    custom = [name for name, attr in config.golden_attributes.items() if attr.table is not None]
    con.execute("create schema if not exists identity")
    con.register("_golden_candidates", candidates.to_arrow())
    con.register("_golden_rules", rules.to_arrow())
    try:
        if replace_profiles is None:
            con.execute(f"create or replace table identity.golden_attributes as {_RANK_SQL}")
            return con.execute("select count(*) from identity.golden_attributes").fetchall()[0][0]
        con.register("_golden_replace", pl.DataFrame({"profile_id": replace_profiles}).to_arrow())
        con.execute(f"create or replace temp table _golden_new as {_RANK_SQL}")
        con.execute("begin transaction")
        try:
            con.execute(
                "delete from identity.golden_attributes where profile_id in "
                "(select profile_id from _golden_replace) or list_contains(?, attribute)",
                [custom],
            )
            con.execute(
                f"insert into identity.golden_attributes select {_COLUMNS} from _golden_new"
            )
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
        return con.execute("select count(*) from _golden_new").fetchall()[0][0]
    finally:
        con.unregister("_golden_candidates")
        con.unregister("_golden_rules")
        if replace_profiles is not None:
            con.unregister("_golden_replace")
            con.execute("drop table if exists _golden_new")
