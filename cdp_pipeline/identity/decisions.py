"""Manual identity decisions: ``state_dir/identity/decisions.jsonl``.

One JSON object a line: ``{"type": "same" | "different", "record_ids": [...],
"by": "...", "at": "ISO time", "note": "..."}``. The file lives in the state
folder so it survives a rebuild of the warehouse. Later lines win over earlier
ones for the same pair of records.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path

from cdp_pipeline.settings import get_settings

DECISION_TYPES = ("same", "different")


def identity_state_dir() -> Path:
    return get_settings().state_dir / "identity"


def decisions_path() -> Path:
    return identity_state_dir() / "decisions.jsonl"


@dataclass(frozen=True)
class Decisions:
    """Pairs to join (``same``) and pairs no path may join (``different``)."""

    same: frozenset[tuple[str, str]]
    different: frozenset[tuple[str, str]]


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def append_decision(
    decision_type: str,
    record_ids: list[str],
    by: str,
    note: str | None = None,
    path: Path | None = None,
) -> dict:
    """Append one decision (``same`` or ``different`` over two or more records)."""
    if decision_type not in DECISION_TYPES:
        raise ValueError(f"decision type {decision_type!r}; allowed: {list(DECISION_TYPES)}")
    ids = list(dict.fromkeys(str(r) for r in record_ids))
    if len(ids) < 2:
        raise ValueError("a decision needs at least two distinct record_ids")
    entry = {
        "type": decision_type,
        "record_ids": ids,
        "by": by,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if note:
        entry["note"] = note
    path = path or decisions_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return entry


def mark_same(record_ids: list[str], by: str, note: str | None = None) -> dict:
    return append_decision("same", record_ids, by, note)


def mark_different(record_ids: list[str], by: str, note: str | None = None) -> dict:
    return append_decision("different", record_ids, by, note)


def read_decisions(path: Path | None = None) -> Decisions:
    """Fold the decision log into pair sets; a missing file means no decisions.

    ``same`` over [a, b, c] joins a-b and a-c; ``different`` over [a, b, c]
    forbids every pair. A later decision on a pair replaces an earlier one.
    """
    path = path or decisions_path()
    state: dict[tuple[str, str], str] = {}
    if path.exists():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                kind = entry["type"]
                ids = [str(r) for r in entry["record_ids"]]
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a decision ({exc})") from None
            if kind not in DECISION_TYPES:
                raise ValueError(f"{path}:{number}: type {kind!r}; allowed {list(DECISION_TYPES)}")
            if kind == "same":
                pairs = [_pair(ids[0], other) for other in ids[1:] if other != ids[0]]
            else:
                pairs = [_pair(a, b) for a, b in combinations(ids, 2) if a != b]
            for pair in pairs:
                state[pair] = kind
    return Decisions(
        same=frozenset(p for p, k in state.items() if k == "same"),
        different=frozenset(p for p, k in state.items() if k == "different"),
    )
