"""Incremental nights after Splink: which records must be clustered again.

Clustering, guards, stable ids and golden attributes of a group of records depend
only on that group when nothing links it to other records. The *dependency graph*
joins two records when they share a grouping key of the deterministic rules
(A-profiel account, device, e-mail, phone, and first name + last name + postcode
when that group qualifies as evidence), when Splink scored them at or above the
auto-merge threshold and the pair guards (which read only the pair and its two
records) accept the pair, or when a manual ``same`` decision names both. Refusals
that depend on a whole cluster (limits, size, namesakes, nameless records) stay
inside one component. The pair guards' verdicts are cached beside the state
(``GUARD_CACHE``): only pairs with a new or changed record are judged again.

Each record carries a content hash: its input row, its normalised row (which holds
the effect of the delivery-wide rules, such as an e-mail shared by too many first
names becoming null), its grouping keys (with the web identities of a visitor), its
manual decisions and whether its name-and-postcode group qualifies (that depends on
name frequencies over the whole delivery). The hash and the component of every
record are kept in ``identity.resolution_state``, written in the same transaction
as the identity tables.

On the next night the *scope* is every component, old or new, that holds a new,
changed or removed record, grown along tonight's dependency edges until it is
closed. A component outside the scope has the same records, the same content and
the same edges as last night, so clustering it again would give last night's
result: its rows are carried over. ``identity.resolution_meta`` holds what the
state is valid for (the configuration, the versions, the state folder, a checksum
of ``identity.record_profiles``); any difference makes the night a full one.
"""

import functools
import hashlib
import importlib
import json
from collections import defaultdict
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from cdp_pipeline.identity.config import MatchingConfig
from cdp_pipeline.identity.decisions import Decisions
from cdp_pipeline.identity.prepare import drop_shared_values, prepare_rows

STATE_TABLE = "identity.resolution_state"
META_TABLE = "identity.resolution_meta"
# Bumped when the meaning of the state changes; a change to the code that reads records
# or resolves them changes the key by itself (``_code_fingerprint``).
STATE_VERSION = 2
_CODE = ("normalise", "prepare", "resolve", "golden", "incremental", "decisions")
_LIBRARIES = ("phonenumbers", "email-validator", "Unidecode", "rapidfuzz")

EDGE_SCHEMA = {"a": pl.Utf8, "b": pl.Utf8}
# Normalised rows of last night by record and input hash (a cache: any miss is
# normalised again). Normalising is per distinct value with phonenumbers and
# email-validator: 0.26 s of a 0.88 s incremental night on 3 000 people.
PREPARED_CACHE = "prepared_rows.{key}.parquet"
# The pair guards' verdict on last night's Splink pairs at or above auto-merge, named by
# the state key and the checksum of the record_profiles it was written with (a cache:
# a pair it lacks is judged again).
GUARD_CACHE = "guarded_pairs.{key}.{token}.parquet"
GUARD_SCHEMA = {
    "unique_id_l": pl.Utf8,
    "unique_id_r": pl.Utf8,
    "match_weight": pl.Float64,
    "accepted": pl.Boolean,
}


def state_key(config: MatchingConfig, state_dir: Path) -> str:
    """What last night's identity tables depend on besides the records."""
    relevant = {
        "config": config.model_dump(mode="json", exclude={"training": {"retrain"}}),
        "polars": pl.__version__,  # hash() is stable within one Polars version only
        "duckdb": duckdb.__version__,
        "state_dir": str(state_dir.resolve()),
        "code": _code_fingerprint(),
        "version": STATE_VERSION,
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def prepare(
    records: pl.DataFrame, config: MatchingConfig, state_dir: Path, key: str
) -> tuple[pl.DataFrame, pl.Series]:
    """``prepare_records`` of the delivery, reusing last night's rows of unchanged records.

    Returns the prepared frame (in the order of ``records``) and each input row's hash.
    """
    raw = records.select(pl.struct(pl.all()).hash().alias("_raw")).to_series()
    probe = pl.DataFrame(
        {"record_id": records["record_id"].cast(pl.Utf8), "_raw": raw}
    ).with_row_index("_row")
    path = state_dir / PREPARED_CACHE.format(key=key)
    cached = pl.read_parquet(path) if path.exists() else None
    if cached is None:
        rows = prepare_rows(records, config).with_columns(_raw=raw)
    else:
        hits = probe.join(cached, on=["record_id", "_raw"], how="inner")
        missing = probe.join(hits.select("_row"), on="_row", how="anti")["_row"]
        parts = [hits]
        if len(missing):
            fresh = prepare_rows(records[missing], config).with_columns(
                _raw=raw.gather(missing), _row=missing
            )
            parts.append(fresh.select(hits.columns).cast(dict(hits.schema)))
        rows = pl.concat(parts).sort("_row").select(cached.columns)
    state_dir.mkdir(parents=True, exist_ok=True)
    for old in state_dir.glob(PREPARED_CACHE.format(key="*")):
        if old != path:
            old.unlink()
    rows.write_parquet(path)
    return drop_shared_values(rows.drop("_raw"), config), raw


@functools.cache
def _code_fingerprint() -> str:
    """The identity code and normalising libraries: a change makes the next night full."""
    digest = hashlib.sha256()
    for name in _CODE:
        module = importlib.import_module(f"cdp_pipeline.identity.{name}")
        digest.update(Path(module.__file__ or "").read_bytes())
    for library in _LIBRARIES:
        digest.update(f"{library}={metadata.version(library)}".encode())
    return digest.hexdigest()[:16]


def record_keys(
    prepared: pl.DataFrame, web: pl.DataFrame, name_groups: list[list[str]]
) -> pl.DataFrame:
    """record_id, key: every grouping key a deterministic rule may join records on.

    A superset is harmless (components get larger, results stay the same); a
    missing key would not be. First name + last name + postcode is a key only of
    the groups that qualify as evidence (``name_groups``): the others never link,
    and whether a record's group qualifies is part of its content hash.
    """
    rid = pl.col("record_id")
    parts = [
        prepared.filter(pl.col(column).is_not_null()).select(
            rid, pl.concat_str(pl.lit(prefix), pl.col(column)).alias("key")
        )
        for column, prefix in (
            ("a_profiel_id", "a:"),
            ("device_id", "d:"),
            ("anonymous_id", "d:"),  # an app install's anonymousId is its device id
            ("email_normalised", "e:"),
            ("phone_e164", "p:"),
        )
    ]
    grouped = pl.Series([r for group in name_groups for r in group], dtype=pl.Utf8)
    named = prepared.filter(rid.is_in(grouped.implode()))
    parts.append(
        named.select(
            rid,
            pl.concat_str(
                pl.lit("n:"), "first_key", "last_key", "postcode", separator="\x1f"
            ).alias("key"),
        )
    )
    if len(web):
        visitors = prepared.filter(pl.col("anonymous_id").is_not_null()).select(rid, "anonymous_id")
        parts.append(
            visitors.join(web, on="anonymous_id").select(
                rid, pl.concat_str(pl.lit("a:"), pl.col("user_id")).alias("key")
            )
        )
    return pl.concat(parts).unique()


def content_hashes(
    raw: pl.Series,
    prepared: pl.DataFrame,
    keys: pl.DataFrame,
    decisions: Decisions,
    name_groups: list[list[str]],
) -> pl.DataFrame:
    """record_id, content_hash: everything resolution reads of one record."""
    signature: dict[str, list[str]] = defaultdict(list)
    for kind, pairs in (("same", decisions.same), ("different", decisions.different)):
        for a, b in pairs:
            signature[a].append(f"{kind}:{b}")
            signature[b].append(f"{kind}:{a}")
    grouped = sorted({record_id for group in name_groups for record_id in group})
    # An order-free sum of 48-bit key hashes (no overflow below 65 536 keys a record):
    # sorting and joining the key strings instead took 1.0 s on 100 000 people.
    key_lists = keys.group_by("record_id").agg((pl.col("key").hash() // 65536).sum().alias("keys"))
    frame = pl.DataFrame(
        {
            "record_id": prepared["record_id"],
            "raw": raw,
            "prepared": prepared.select(pl.struct(pl.all()).hash()).to_series(),
        }
    ).join(key_lists, on="record_id", how="left")
    decided = pl.DataFrame(
        {
            "record_id": list(signature),
            "decisions": ["\x1f".join(sorted(v)) for v in signature.values()],
        },
        schema={"record_id": pl.Utf8, "decisions": pl.Utf8},
    )
    frame = frame.join(decided, on="record_id", how="left").with_columns(
        name_group=pl.col("record_id").is_in(pl.Series(grouped, dtype=pl.Utf8).implode())
    )
    return frame.select(
        "record_id", pl.struct(pl.exclude("record_id")).hash().alias("content_hash")
    )


def dependency_edges(
    outcomes: pl.DataFrame, decisions: Decisions, known: pl.Series
) -> pl.DataFrame:
    """a, b: Splink pairs the pair guards accept and manual ``same`` pairs of known records.

    A pair the guards refuse never becomes a link, whatever else the night holds:
    growing the scope along it chained households and namesakes together (100 000
    people: 1 % new records put 27 % of the records in the scope).
    """
    parts = [pl.DataFrame(schema=EDGE_SCHEMA)]
    if len(outcomes):
        parts.append(
            outcomes.filter("accepted").select(
                pl.col("unique_id_l").alias("a"), pl.col("unique_id_r").alias("b")
            )
        )
    if decisions.same:
        same = pl.DataFrame(sorted(decisions.same), schema=EDGE_SCHEMA, orient="row")
        ids = known.implode()
        parts.append(same.filter(pl.col("a").is_in(ids) & pl.col("b").is_in(ids)))
    return pl.concat(parts)


def clean(hashes: pl.DataFrame, state: pl.DataFrame) -> pl.Series:
    """Records whose content is the same as last night's."""
    return hashes.join(state, on=["record_id", "content_hash"], how="semi")["record_id"]


def guard_outcomes(
    above: pl.DataFrame,
    unchanged: pl.Series,
    cached: pl.DataFrame | None,
    judge: Callable[[pl.DataFrame], pl.DataFrame],
) -> pl.DataFrame:
    """unique_id_l, unique_id_r, match_weight, accepted for every pair of ``above``.

    ``above``: tonight's Splink pairs at or above auto-merge. The pair guards read
    only the pair (its weight and evidence) and the two records' prepared rows, so
    a pair of two unchanged records with last night's weight keeps last night's
    verdict; the others go to ``judge`` (pair rows → the accepted unique_id_l,
    unique_id_r).
    """
    keys = ["unique_id_l", "unique_id_r", "match_weight"]
    if cached is None:
        hits = pl.DataFrame(schema=GUARD_SCHEMA)
    else:
        ids = unchanged.implode()
        hits = (
            above.filter(pl.col("unique_id_l").is_in(ids) & pl.col("unique_id_r").is_in(ids))
            .select(keys)
            .join(cached, on=keys, how="inner")
        )
    misses = above.join(hits, on=keys, how="anti")
    accepted = judge(misses).with_columns(accepted=pl.lit(True))
    fresh = (
        misses.select(keys)
        .join(accepted, on=["unique_id_l", "unique_id_r"], how="left")
        .with_columns(pl.col("accepted").fill_null(False))
    )
    return pl.concat([hits.select(list(GUARD_SCHEMA)), fresh.select(list(GUARD_SCHEMA))])


def read_guarded(state_dir: Path, key: str, token: str) -> pl.DataFrame | None:
    path = state_dir / GUARD_CACHE.format(key=key, token=token)
    return pl.read_parquet(path).cast(GUARD_SCHEMA) if path.exists() else None


def write_guarded(state_dir: Path, key: str, token: str, outcomes: pl.DataFrame) -> None:
    path = state_dir / GUARD_CACHE.format(key=key, token=token)
    state_dir.mkdir(parents=True, exist_ok=True)
    for old in state_dir.glob(GUARD_CACHE.format(key="*", token="*")):
        if old != path:
            old.unlink()
    outcomes.select(list(GUARD_SCHEMA)).write_parquet(path)


def state_token(con: duckdb.DuckDBPyConnection) -> str:
    """The record_profiles checksum last night's meta was written with."""
    n_records, checksum = con.execute(f"select n_records, checksum from {META_TABLE}").fetchall()[0]
    return f"{n_records}-{checksum}"


def read_state(con: duckdb.DuckDBPyConnection, key: str) -> pl.DataFrame | None:
    """Last night's record_id, content_hash, component; None when it cannot be trusted."""
    present = {
        name
        for (name,) in con.execute(
            "select table_name from information_schema.tables where table_schema = 'identity'"
        ).fetchall()
    }
    needed = {"resolution_state", "resolution_meta", "record_profiles", "links", "review_queue"}
    if not needed <= present or "golden_attributes" not in present:
        return None
    meta = con.execute(f"select key, n_records, checksum from {META_TABLE}").fetchall()
    if len(meta) != 1 or meta[0][0] != key:
        return None
    if tuple(meta[0][1:]) != profiles_checksum(con):
        return None  # record_profiles was changed by something else than a night
    return con.sql(f"select record_id, content_hash, component from {STATE_TABLE}").pl()


def profiles_checksum(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Rows and an order-free checksum of identity.record_profiles' assignment."""
    row = con.execute(
        "select count(*), coalesce(bit_xor(hash(record_id, profile_id)), 0)::ubigint "
        "from identity.record_profiles"
    ).fetchall()[0]
    return int(row[0]), int(row[1])


def write_meta(con: duckdb.DuckDBPyConnection, key: str) -> str:
    """Write the meta row; returns its token (see ``state_token``)."""
    n_records, checksum = profiles_checksum(con)
    con.execute(
        f"create or replace table {META_TABLE} as select ?::varchar as key, "
        "?::bigint as n_records, ?::ubigint as checksum",
        [key, n_records, checksum],
    )
    return f"{n_records}-{checksum}"


def scope(
    hashes: pl.DataFrame, state: pl.DataFrame, keys: pl.DataFrame, edges: pl.DataFrame
) -> tuple[pl.Series, pl.Series]:
    """(records to resolve again tonight, records removed since last night).

    Starts from the components of new, changed and removed records and adds, until
    nothing changes, every record that tonight's keys or edges reach, with the whole
    of its last-night component.
    """
    current = hashes.join(
        state.rename({"content_hash": "previous_hash"}), on="record_id", how="left"
    )
    dirty = current.filter(
        pl.col("previous_hash").is_null() | (pl.col("previous_hash") != pl.col("content_hash"))
    )["record_id"]
    removed = state.join(hashes, on="record_id", how="anti")
    components = pl.concat(
        [
            current.filter(pl.col("record_id").is_in(dirty.implode()))["component"],
            removed["component"],
        ]
    ).drop_nulls()
    touched = current.filter(
        pl.col("component").is_in(components.implode()) | pl.col("record_id").is_in(dirty.implode())
    )["record_id"]
    frontier = touched
    while len(frontier):
        ids = frontier.implode()
        hit = keys.filter(pl.col("record_id").is_in(ids))["key"]
        reached = pl.concat(
            [
                keys.filter(pl.col("key").is_in(hit.implode()))["record_id"],
                edges.filter(pl.col("a").is_in(ids))["b"],
                edges.filter(pl.col("b").is_in(ids))["a"],
            ]
        )
        reached = reached.filter(~reached.is_in(touched.implode())).unique()
        if not len(reached):
            break
        more = current.filter(pl.col("record_id").is_in(reached.implode()))["component"]
        grown = pl.concat(
            [
                reached,
                current.filter(pl.col("component").is_in(more.drop_nulls().implode()))["record_id"],
            ]
        ).unique()
        frontier = grown.filter(~grown.is_in(touched.implode()))
        touched = pl.concat([touched, frontier])
    return touched.sort(), removed["record_id"].sort()


def components(ids: pl.Series, keys: pl.DataFrame, edges: pl.DataFrame) -> pl.DataFrame:
    """record_id, component (its smallest record_id) of the dependency graph over ``ids``."""
    index = pl.DataFrame({"record_id": ids}).with_row_index("i")
    keyed = keys.join(index, on="record_id")
    star = keyed.join(keyed.group_by("key").agg(pl.col("i").min().alias("j")), on="key").select(
        "i", "j"
    )
    paired = (
        edges.join(index, left_on="a", right_on="record_id")
        .join(index.rename({"i": "j"}), left_on="b", right_on="record_id")
        .select("i", "j")
    )
    both = pl.concat([star, paired])
    n = len(index)
    graph = coo_matrix(
        (np.ones(len(both), dtype=np.int8), (both["i"].to_numpy(), both["j"].to_numpy())),
        shape=(n, n),
    )
    _, labels = connected_components(graph, directed=False)
    return index.with_columns(label=pl.Series(labels)).select(
        "record_id", pl.col("record_id").min().over("label").alias("component")
    )
