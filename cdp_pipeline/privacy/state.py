"""The privacy office's state under ``state_dir/privacy``: salt, tombstones, requests, audit.

It lives beside the warehouse, not in it, so a rebuild of the warehouse from the landing
files never forgets who was erased. Nothing in it is readable personal data:

* ``salt`` — the development fallback of the secret salt (``CDP_PRIVACY_SALT`` wins);
* ``privacy.duckdb`` — ``tombstones`` (salted hashes and their kind), ``requests`` (id,
  type, status, dates) and ``sweeps`` (up to which load time raw rows were checked);
* ``audit.jsonl`` — one line per request handled: outcome, counts per layer, receipts.
"""

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from cdp_pipeline.privacy.identifiers import digest

SALT_FILE = "salt"
STATE_FILE = "privacy.duckdb"
AUDIT_FILE = "audit.jsonl"

_SCHEMA = (
    """
    create table if not exists tombstones (
        digest varchar primary key,
        kind varchar not null,
        created_at timestamp not null
    )
    """,
    """
    create table if not exists requests (
        request_id varchar primary key,
        request_type varchar not null,
        status varchar not null,
        received_at timestamp,
        processed_at timestamp
    )
    """,
    """
    create table if not exists sweeps (
        swept_at timestamp not null,
        loaded_before timestamp not null
    )
    """,
    "create table if not exists salt_check (fingerprint varchar not null)",
)


class SaltChanged(RuntimeError):
    """The salt differs from the one the tombstones were made with; they would match nothing."""


def privacy_dir(state_dir: Path) -> Path:
    return state_dir / "privacy"


def resolve_salt(configured: str, state_dir: Path) -> bytes:
    """The secret salt: the configured one, else a generated one kept in the state folder.

    The fallback suits a laptop; a deployment sets ``CDP_PRIVACY_SALT`` from its secret
    store, so a copy of the state folder alone cannot test an address against the hashes.
    """
    if configured:
        return configured.encode()
    path = privacy_dir(state_dir) / SALT_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 before the secret is written, so it is never world-readable.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text(encoding="utf-8").strip().encode()


@dataclass
class PrivacyState:
    """An open connection to ``privacy.duckdb`` and the paths of the state folder."""

    directory: Path
    con: duckdb.DuckDBPyConnection

    def check_salt(self, salt: bytes) -> None:
        """Fail loudly when the salt changed: old tombstones would silently stop matching."""
        fingerprint = digest(salt, "salt_check", "cdp")
        rows = self.con.execute("select fingerprint from salt_check").fetchall()
        if not rows:
            self.con.execute("insert into salt_check values (?)", [fingerprint])
        elif rows[0][0] != fingerprint:
            raise SaltChanged(
                "the privacy salt differs from the one the tombstones were made with; restore "
                "CDP_PRIVACY_SALT (or state/privacy/salt) before running the night"
            )

    def tombstones(self) -> frozenset[str]:
        return frozenset(
            row[0] for row in self.con.execute("select digest from tombstones").fetchall()
        )

    def add_tombstones(self, digests: dict[str, str]) -> int:
        """Store new tombstones (digest -> kind); the number that were new."""
        before = self.tombstone_count()
        now = _now()
        self.con.executemany(
            "insert or ignore into tombstones values (?, ?, ?)",
            [[d, kind, now] for d, kind in sorted(digests.items())],
        )
        return self.tombstone_count() - before

    def tombstone_count(self) -> int:
        return int(self.con.execute("select count(*) from tombstones").fetchall()[0][0])

    def handled_requests(self) -> set[str]:
        rows = self.con.execute(
            "select request_id from requests where status in ('completed', 'no_match')"
        ).fetchall()
        return {row[0] for row in rows}

    def record_request(
        self, request_id: str, request_type: str, status: str, received_at: datetime | None
    ) -> None:
        self.con.execute(
            "insert or replace into requests values (?, ?, ?, ?, ?)",
            [request_id, request_type, status, received_at, _now()],
        )

    def last_sweep(self) -> datetime | None:
        rows = self.con.execute("select max(loaded_before) from sweeps").fetchall()
        return rows[0][0] if rows else None

    def record_sweep(self, loaded_before: datetime) -> None:
        self.con.execute("insert into sweeps values (?, ?)", [_now(), loaded_before])

    def audit(self, entry: dict[str, Any]) -> None:
        """Append one request's outcome to the audit log (counts and receipts only)."""
        path = self.directory / AUDIT_FILE
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True, default=str) + "\n")


def read_audit(state_dir: Path) -> list[dict[str, Any]]:
    """Every audit entry, oldest first."""
    path = privacy_dir(state_dir) / AUDIT_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@contextmanager
def open_state(state_dir: Path) -> Iterator[PrivacyState]:
    """Open (creating if needed) the privacy state of ``state_dir`` for one step."""
    directory = privacy_dir(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(directory / STATE_FILE))
    try:
        for statement in _SCHEMA:
            con.execute(statement)
        yield PrivacyState(directory, con)
    finally:
        con.close()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
