"""Normalise the identity input records once, into the columns matching works on."""

import polars as pl

from cdp_pipeline.identity import normalise
from cdp_pipeline.identity.config import MatchingConfig

RECORD_COLUMNS = (
    "record_id",
    "source",
    "record_key",
    "role",
    "first_name",
    "last_name",
    "birth_date",
    "email",
    "phone",
    "street",
    "house_number",
    "postcode",
    "municipality",
    "a_profiel_id",
    "device_id",
    "anonymous_id",
    "is_child_record",
    "household_key",
    "observed_at",
)


def nickname_table(config: MatchingConfig) -> normalise.NicknameTable:
    """The built-in nickname groups plus the configured ones."""
    return normalise.NicknameTable(
        [*normalise.DEFAULT_NICKNAMES, *[tuple(g) for g in config.nicknames]]
    )


def _blocked_mask(series: pl.Series, values) -> pl.Series:
    """True where a normalised value is listed (exactly or by regex) as never-evidence."""
    return normalise.map_distinct(series, values.matches, pl.Boolean).fill_null(False)


def prepare_records(records: pl.DataFrame, config: MatchingConfig) -> pl.DataFrame:
    """One row per record with the normalised keys used by every rule.

    Placeholder e-mails and phones (blocked values, or values shared by more
    distinct first names than the configured maximum) become null here, so no
    later rule can use them as evidence.
    """
    return drop_shared_values(prepare_rows(records, config), config)


def prepare_rows(records: pl.DataFrame, config: MatchingConfig) -> pl.DataFrame:
    """The part of ``prepare_records`` that depends on each record alone (cacheable)."""
    for column in RECORD_COLUMNS:
        if column not in records.columns:
            records = records.with_columns(pl.lit(None).alias(column))
    nicknames = nickname_table(config)
    blocked_names = {normalise.name_key(v) for v in config.blocked_values.name.exact}
    blocked_names.discard(None)

    def key(value):
        k = normalise.name_key(value, blocked_names)
        if k is not None and config.blocked_values.name.regex:
            if config.blocked_values.name.matches(k):
                return None
        return k

    str_cols = ("first_name", "last_name", "email", "phone", "street", "house_number", "postcode")
    frame = records.with_columns(
        [pl.col(c).cast(pl.Utf8) for c in str_cols]
        + [pl.col("birth_date").cast(pl.Date, strict=False)]
    )
    first_key = normalise.map_distinct(frame["first_name"], key, pl.Utf8)
    last_key = normalise.map_distinct(frame["last_name"], key, pl.Utf8)
    email = normalise.map_distinct(frame["email"], normalise.email, pl.Utf8)
    phone_struct = normalise.map_distinct(
        frame["phone"],
        lambda v: dict(
            zip(("e164", "line"), normalise.phone(v, config.region) or (None, None), strict=True)
        ),
        pl.Struct({"e164": pl.Utf8, "line": pl.Utf8}),
    )
    house = normalise.map_distinct(
        frame["house_number"],
        lambda v: dict(zip(("number", "box"), normalise.house_number(v), strict=True)),
        pl.Struct({"number": pl.Utf8, "box": pl.Utf8}),
    )
    out = pl.DataFrame(
        {
            "record_id": frame["record_id"].cast(pl.Utf8),
            "source": frame["source"].cast(pl.Utf8),
            "record_key": frame["record_key"].cast(pl.Utf8),
            "role": frame["role"].cast(pl.Utf8),
            "first_key": first_key,
            "last_key": last_key,
            "birth_date": frame["birth_date"],
            "email_normalised": email,
            "phone_e164": phone_struct.struct.field("e164"),
            "phone_type": phone_struct.struct.field("line"),
            "house_no": house.struct.field("number"),
            "house_box": house.struct.field("box"),
            "street_key": normalise.map_distinct(frame["street"], normalise.street_key, pl.Utf8),
            "postcode": normalise.map_distinct(frame["postcode"], normalise.postcode, pl.Utf8),
            "a_profiel_id": frame["a_profiel_id"].cast(pl.Utf8),
            "device_id": frame["device_id"].cast(pl.Utf8),
            "anonymous_id": frame["anonymous_id"].cast(pl.Utf8),
            "is_child_record": frame["is_child_record"].cast(pl.Boolean).fill_null(False),
            "household_key": frame["household_key"].cast(pl.Utf8),
        }
    )
    out = out.with_columns(
        first_canon=normalise.map_distinct(out["first_key"], nicknames.groups, pl.List(pl.Utf8)),
        # An A-profiel account is its own a_profiel_id even when the column is empty.
        a_profiel_id=pl.when(pl.col("source") == "aprofiel")
        .then(pl.coalesce("a_profiel_id", "record_key"))
        .otherwise(pl.col("a_profiel_id")),
    )
    out = out.with_columns(
        email_normalised=pl.when(
            _blocked_mask(out["email_normalised"], config.blocked_values.email)
        )
        .then(None)
        .otherwise(pl.col("email_normalised")),
        phone_e164=pl.when(_blocked_mask(out["phone_e164"], config.blocked_values.phone))
        .then(None)
        .otherwise(pl.col("phone_e164")),
    )
    extra = {
        name: attr.column or name
        for name, attr in config.attributes.items()
        if attr.comparison in ("exact", "person_id")
    }
    for name, column in extra.items():
        values = records[column] if column in records.columns else pl.Series([None] * len(out))
        out = out.with_columns(
            values.cast(pl.Utf8).str.strip_chars().str.to_lowercase().alias(f"x_{name}")
        )
    return out


def drop_shared_values(out: pl.DataFrame, config: MatchingConfig) -> pl.DataFrame:
    """E-mails and phones shared by too many first names are no one's: null (whole delivery)."""
    limit = config.blocked_values.max_distinct_names_per_value
    for column in ("email_normalised", "phone_e164"):
        shared = (
            out.filter(pl.col(column).is_not_null() & pl.col("first_key").is_not_null())
            .group_by(column)
            .agg(pl.col("first_key").n_unique().alias("n"))
            .filter(pl.col("n") > limit)[column]
        )
        if len(shared):
            out = out.with_columns(
                pl.when(pl.col(column).is_in(shared.implode()))
                .then(None)
                .otherwise(pl.col(column))
                .alias(column)
            )
    return out.with_columns(
        phone_type=pl.when(pl.col("phone_e164").is_null()).then(None).otherwise("phone_type")
    )


def splink_frame(prepared: pl.DataFrame, config: MatchingConfig) -> pl.DataFrame:
    """The model's input: ``unique_id`` plus one or more columns per configured attribute."""
    columns: list[pl.Expr] = [pl.col("record_id").alias("unique_id")]
    for name, attr in config.attributes.items():
        kind = attr.comparison
        if kind == "first_name":
            columns += [
                pl.col("first_key").alias(name),
                pl.col("first_canon").alias(f"{name}_canon"),
            ]
        elif kind == "last_name":
            columns.append(pl.col("last_key").alias(name))
        elif kind == "date":
            columns.append(pl.col("birth_date").cast(pl.Utf8).alias(name))
        elif kind == "email":
            columns += [
                pl.col("email_normalised").alias(name),
                pl.col("email_normalised").str.split("@").list.first().alias(f"{name}_local"),
            ]
        elif kind == "phone":
            columns.append(pl.col("phone_e164").alias(name))
        elif kind == "postcode":
            columns.append(pl.col("postcode").alias(name))
        elif kind == "address":
            columns += [
                pl.col("street_key").alias(f"{name}_street"),
                pl.when(pl.col("house_no").is_not_null())
                .then(
                    pl.concat_str(
                        [pl.col("house_no"), pl.col("house_box").fill_null("")], separator="|"
                    )
                )
                .alias(f"{name}_number"),
                pl.col("postcode").alias(f"{name}_postcode"),
            ]
        elif kind in ("exact", "person_id"):
            columns.append(pl.col(f"x_{name}").alias(name))
    # The swapped-name levels need both names whatever the attribute names are;
    # name_set (both names in sorted order) blocks swapped names together.
    columns += [
        pl.col("first_key").alias("swap_first"),
        pl.col("last_key").alias("swap_last"),
        pl.when(pl.col("first_key") <= pl.col("last_key"))
        .then(pl.concat_str(["first_key", "last_key"], separator="|"))
        .otherwise(pl.concat_str(["last_key", "first_key"], separator="|"))
        .alias("name_set"),
    ]
    return prepared.select(columns)
