"""What a marketer's screens call: explain a profile, list and decide review pairs.

Every function takes an open DuckDB connection to the warehouse (read-only is
enough except where noted) and returns plain Python data (dicts, lists) that
serialise to JSON as they are. Decisions are not written to the warehouse: they
go to ``state_dir/identity/decisions.jsonl`` (see ``decisions``), survive every
rebuild and win over the model from the next identity run on.
"""

import json
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from cdp_pipeline.identity.decisions import Decisions, append_decision, read_decisions

REVIEW_STATUSES = ("open", "accepted", "rejected")
_RECORD_COLUMNS = (
    "record_id",
    "source",
    "record_key",
    "role",
    "first_name_normalised",
    "last_name_normalised",
    "email_normalised",
    "phone_e164",
    "birth_date",
    "postcode",
)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict]:
    cursor = con.execute(sql, params)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _jsonable(row: dict) -> dict:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()}


def explain_profile(con: duckdb.DuckDBPyConnection, profile_id: str) -> dict:
    """The records of a profile and the evidence of every link that joined them.

    Returns ``{"profile_id", "records": [...], "links": [...], "history": [...]}``.
    Each record carries its normalised matching attributes; each link its two
    record_ids, ``link_type`` (``a_profiel_id``, ``email``, ``splink``,
    ``name_postcode``, ``manual``…), match weight and probability (Splink links
    only) and ``evidence``: per attribute the comparison level (``exact``,
    ``nickname``, ``different``…) and its match weight (``None`` for
    deterministic links, which need no weight). Raises
    ``KeyError`` when the profile does not exist.
    """
    records = _rows(
        con,
        f"select {', '.join(_RECORD_COLUMNS)} from identity.record_profiles "
        "where profile_id = ? order by record_id",
        [profile_id],
    )
    if not records:
        raise KeyError(f"no profile {profile_id!r} in identity.record_profiles")
    links = _rows(
        con,
        "select l.record_id_l, l.record_id_r, l.link_type, l.match_weight, "
        "l.match_probability, l.evidence from identity.links as l "
        "inner join identity.record_profiles as rp on rp.record_id = l.record_id_l "
        "where rp.profile_id = ? order by l.record_id_l, l.record_id_r",
        [profile_id],
    )
    for link in links:
        evidence = json.loads(link["evidence"] or "{}")
        link["evidence"] = evidence
        link["agreed"] = sorted(
            name
            for name, item in evidence.items()
            if item.get("level") not in ("null", "different", "different postcode", None)
        )
    history = _rows(
        con,
        "select run_id, change, other_profile_id, n_records, changed_at "
        "from identity.profile_history where profile_id = ? order by changed_at, change",
        [profile_id],
    )
    return {
        "profile_id": profile_id,
        "records": [_jsonable(r) for r in records],
        "links": links,
        "history": [_jsonable(h) for h in history],
    }


def review_queue(
    con: duckdb.DuckDBPyConnection, status: str = "open", limit: int = 100, offset: int = 0
) -> list[dict]:
    """Pairs of ``identity.review_queue`` with this status, strongest first.

    Each pair: ``record_id_l``/``_r``, their ``profile_id_l``/``_r``, ``match_weight``,
    ``match_probability``, ``evidence`` (per attribute: level and weight), ``reason``
    (``below_auto_merge`` or the guard that vetoed an auto-merge) and ``status``.
    """
    if status not in REVIEW_STATUSES:
        raise ValueError(f"status {status!r}; allowed: {list(REVIEW_STATUSES)}")
    pairs = _rows(
        con,
        "select record_id_l, record_id_r, profile_id_l, profile_id_r, match_weight, "
        "match_probability, evidence, reason, status from identity.review_queue "
        "where status = ? order by match_weight desc, record_id_l, record_id_r "
        "limit ? offset ?",
        [status, limit, offset],
    )
    for pair in pairs:
        pair["evidence"] = json.loads(pair["evidence"] or "{}")
    return pairs


def decide_pair(
    record_id_l: str,
    record_id_r: str,
    accept: bool,
    by: str,
    note: str | None = None,
    path: Path | None = None,
) -> dict:
    """Record a reviewer's decision on a pair: ``accept`` → same person, else different.

    The decision is appended to the decisions log (a manual decision, which wins
    over the model from the next identity run on and can label the next training,
    see ``labelled_pairs``). Returns the stored entry.
    """
    kind = "same" if accept else "different"
    return append_decision(kind, [record_id_l, record_id_r], by, note or "review", path)


def labelled_pairs(decisions: Decisions | None = None) -> pl.DataFrame:
    """Manual decisions as Splink clerical labels.

    Columns ``unique_id_l``, ``unique_id_r``, ``clerical_match_score`` (1.0 same,
    0.0 different): the layout ``linker.training.estimate_m_from_pairwise_labels``
    reads.
    """
    decisions = decisions or read_decisions()
    rows = [(a, b, 1.0) for a, b in sorted(decisions.same)]
    rows += [(a, b, 0.0) for a, b in sorted(decisions.different)]
    return pl.DataFrame(
        rows,
        orient="row",
        schema={"unique_id_l": pl.Utf8, "unique_id_r": pl.Utf8, "clerical_match_score": pl.Float64},
    )
