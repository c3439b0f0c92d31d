"""API keys: created once with their scopes, stored only as SHA-256 hashes.

A key is ``cdp_<key id>_<43 url-safe characters>``: 256 random bits from ``secrets``. With
that much entropy a brute-force search is hopeless whatever the hash costs, so a plain
SHA-256 is enough and keeps verification to a dictionary look-up per request; a slow hash
(scrypt, argon2) is meant for low-entropy passwords and would cost tens of milliseconds per
call. The key id is not secret: it names the key in logs and in ``revoke_key``.

The file (``<state dir>/api/keys.json``) holds key id, name, scopes, hash and creation time,
never a key. It is rewritten atomically, readable by the owner only, and reloaded by the
server when it changes, so a new or revoked key takes effect without a restart.
"""

import hashlib
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cdp_pipeline.settings import Settings, get_settings

logger = logging.getLogger(__name__)

# contact is never implied by the others: names, e-mail and phone need an explicit grant.
SCOPES = ("segments", "traits", "scores", "consents", "contact")
KEY_PREFIX = "cdp_"
_RELOAD_INTERVAL_S = 1.0


@dataclass(frozen=True)
class ApiKey:
    """A stored key: what it may read, never the key itself."""

    key_id: str
    name: str
    scopes: frozenset[str]
    sha256: str
    created_at: str


def default_keys_path(settings: Settings | None = None) -> Path:
    """Where the keys live: beside the other state that must survive a warehouse rebuild."""
    return (settings or get_settings()).state_dir / "api" / "keys.json"


def hash_key(plaintext: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def validate_scopes(scopes: list[str] | tuple[str, ...] | set[str]) -> frozenset[str]:
    """The scopes as a set; a ValueError naming any scope that does not exist."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"Unknown scope(s) {unknown}; choose from {list(SCOPES)}")
    if not scopes:
        raise ValueError(f"A key needs at least one scope; choose from {list(SCOPES)}")
    return frozenset(scopes)


def create_key(name: str, scopes: list[str], keys_path: Path | None = None) -> str:
    """Store a new key with ``scopes`` and return it in clear: the only time it is shown."""
    if not name.strip():
        raise ValueError("A key needs a name that says who uses it (e.g. 'website')")
    granted = validate_scopes(scopes)
    path = keys_path or default_keys_path()
    key_id = secrets.token_hex(4)
    plaintext = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    entries = _read_entries(path)
    entries.append(
        {
            "key_id": key_id,
            "name": name.strip(),
            "scopes": sorted(granted),
            "sha256": hash_key(plaintext),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    _write_entries(path, entries)
    logger.info("Created API key %s with %d scope(s)", key_id, len(granted))
    return plaintext


def revoke_key(key_id: str, keys_path: Path | None = None) -> bool:
    """Remove the key ``key_id``; False when there was none."""
    path = keys_path or default_keys_path()
    entries = _read_entries(path)
    kept = [entry for entry in entries if entry.get("key_id") != key_id]
    if len(kept) == len(entries):
        return False
    _write_entries(path, kept)
    logger.info("Revoked API key %s", key_id)
    return True


def list_keys(keys_path: Path | None = None) -> list[ApiKey]:
    """Every stored key (without any secret)."""
    return [_to_key(entry) for entry in _read_entries(keys_path or default_keys_path())]


class KeyStore:
    """Verifies presented keys against the file, re-reading it when it changes."""

    def __init__(self, path: Path, reload_interval_s: float = _RELOAD_INTERVAL_S) -> None:
        self._path = path
        self._interval = reload_interval_s
        self._lock = threading.Lock()
        self._by_hash: dict[str, ApiKey] = {}
        self._signature: tuple[int, int] | None = None
        self._checked_at = float("-inf")
        self._refresh(force=True)

    def verify(self, presented: str) -> ApiKey | None:
        """The key ``presented`` is, or None when it is not (or no longer) valid."""
        self._refresh()
        digest = hash_key(presented)
        key = self._by_hash.get(digest)
        if key is None:
            # A key created a moment ago works at once: a miss looks at the file (one stat).
            self._refresh(now=True)
            key = self._by_hash.get(digest)
        return key

    def _refresh(self, force: bool = False, now: bool = False) -> None:
        checked = time.monotonic()
        if not (force or now) and checked - self._checked_at < self._interval:
            return
        with self._lock:
            self._checked_at = checked
            try:
                stat = self._path.stat()
                signature: tuple[int, int] | None = (stat.st_ino, stat.st_mtime_ns)
            except FileNotFoundError:
                signature = None
            if signature == self._signature and not force:
                return
            try:
                entries = _read_entries(self._path)
            except ValueError:
                # Keep serving with the keys we had rather than locking every caller out.
                logger.exception("Could not read the API key file; keeping the previous keys")
                return
            self._by_hash = {entry["sha256"]: _to_key(entry) for entry in entries}
            self._signature = signature
            logger.info("Loaded %d API key(s)", len(self._by_hash))


def _to_key(entry: dict) -> ApiKey:
    return ApiKey(
        key_id=str(entry["key_id"]),
        name=str(entry.get("name", "")),
        scopes=frozenset(scope for scope in entry.get("scopes", []) if scope in SCOPES),
        sha256=str(entry["sha256"]),
        created_at=str(entry.get("created_at", "")),
    )


def _read_entries(path: Path) -> list[dict]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    entries = document.get("keys", []) if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{path} has no 'keys' list")
    return [entry for entry in entries if isinstance(entry, dict) and "sha256" in entry]


def _write_entries(path: Path, entries: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump({"version": 1, "keys": entries}, handle, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
