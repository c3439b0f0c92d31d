"""The open look-up store, swapped for a newer one without a restart or a gap.

Each request takes a reference to the publication that is current when it starts and
finishes on it, even if a newer one is opened meanwhile. A swap opens (and warms) the new
look-up store before it becomes current; the old connections are closed only when its last
request has released it. Each thread reads through its own SQLite connection (connections
are cheap, and one per thread needs no locking); the file is opened read-only and immutable.
"""

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cdp_pipeline.publish.lookup_store import FORMAT_VERSION, connect_read_only, lookup_store_of
from cdp_pipeline.publish.snapshot import POINTER_NAME, publication_name, read_pointer

logger = logging.getLogger(__name__)

# How often a request may look at the pointer file: one stat a second is free, and a new
# night's data a second late is not noticed by anyone.
DEFAULT_CHECK_INTERVAL_S = 1.0

_CARD_SQL = "select profile_id, card from cards where profile_id = ?"
# One statement, two primary-key descents (identifiers, then cards).
_CARD_BY_KEY_SQL = (
    "select cards.profile_id, cards.card from identifiers"
    " inner join cards on cards.profile_id = identifiers.profile_id"
    " where identifiers.lookup_key = ?"
)

# (profile id, card): UTF-8 bytes as stored; the card's parts are separated by 0x1F.
Card = tuple[bytes, bytes]


class SnapshotUnavailable(RuntimeError):
    """No snapshot has been published yet (or none can be opened)."""


class OpenSnapshot:
    """One publication's look-up store, read through one connection per thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = publication_name(path.name)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._users = 0
        self._retired = False
        self._closed = False
        row = self._connection().execute("select name, format from snapshot_info").fetchone()
        if row is None or row[1] != FORMAT_VERSION:
            self._close()
            raise sqlite3.DatabaseError(
                f"{path.name} is not a look-up store of format {FORMAT_VERSION}: {row!r}"
            )

    def card(self, profile_id: str) -> Card | None:
        """The card of ``profile_id``, or None when no such profile is published."""
        return self._connection().execute(_CARD_SQL, (profile_id,)).fetchone()

    def card_by_key(self, lookup_key: str) -> Card | None:
        """The card the identifier ``<kind>:<value>`` leads to, or None."""
        return self._connection().execute(_CARD_BY_KEY_SQL, (lookup_key,)).fetchone()

    def warm(self) -> None:
        """Open this thread's connection and read both tables' roots before the first request."""
        self.card("")
        self.card_by_key("")

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = connect_read_only(self.path)
            with self._lock:
                self._connections.append(connection)
            self._local.connection = connection
        return connection

    def acquire(self) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._users += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            close = self._retired and self._users == 0
        if close:
            self._close()

    def retire(self) -> None:
        """No new requests will use this snapshot; close it once the last one is done."""
        with self._lock:
            self._retired = True
            close = self._users == 0
        if close:
            self._close()

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        logger.info("Closed serving snapshot %s", self.name)


class SnapshotReader:
    """Follows the ``CURRENT`` pointer of a snapshot folder."""

    def __init__(self, directory: Path, check_interval_s: float = DEFAULT_CHECK_INTERVAL_S) -> None:
        self._directory = directory
        self._interval = check_interval_s
        self._current: OpenSnapshot | None = None
        self._signature: tuple[int, int, int] | None = None
        self._checked_at = float("-inf")
        self._swap_lock = threading.Lock()
        self._failed: str | None = None
        self.refresh()

    @property
    def current_name(self) -> str | None:
        snapshot = self._current
        return snapshot.name if snapshot else None

    @contextmanager
    def use(self) -> Iterator[OpenSnapshot]:
        """The current snapshot, held open for the duration of the block."""
        self.refresh()
        for _ in range(3):
            snapshot = self._current
            if snapshot is None:
                raise SnapshotUnavailable("No serving snapshot has been published yet")
            # acquire fails only if a swap closed it between the read and here; retry.
            if snapshot.acquire():
                break
        else:
            raise SnapshotUnavailable("The serving snapshot is being replaced; retry")
        try:
            yield snapshot
        finally:
            snapshot.release()

    def refresh(self, force: bool = False) -> None:
        """Open the look-up store CURRENT names if it changed; at most once per interval."""
        now = time.monotonic()
        if not force and now - self._checked_at < self._interval:
            return
        # One thread swaps; the others keep answering from the snapshot they have.
        if not self._swap_lock.acquire(blocking=force):
            return
        try:
            self._checked_at = now
            pointer = self._directory / POINTER_NAME
            try:
                stat = pointer.stat()
                signature: tuple[int, int, int] | None = (
                    stat.st_ino,
                    stat.st_mtime_ns,
                    stat.st_size,
                )
            except FileNotFoundError:
                signature = None
            if signature == self._signature and self._current is not None:
                return
            snapshot = read_pointer(self._directory)
            if snapshot is None or (
                self._current is not None and publication_name(snapshot.name) == self._current.name
            ):
                self._signature = signature
                return
            path = lookup_store_of(snapshot)
            try:
                fresh = OpenSnapshot(path)
                fresh.warm()
            except (sqlite3.Error, OSError):
                # Keep the snapshot we have; the next check tries again (and logs once).
                if self._failed != path.name:
                    logger.exception("Could not open the look-up store %s", path.name)
                    self._failed = path.name
                return
            previous, self._current = self._current, fresh
            self._signature = signature
            self._failed = None
            logger.info("Serving snapshot %s", fresh.name)
            if previous is not None:
                previous.retire()
        finally:
            self._swap_lock.release()

    def close(self) -> None:
        with self._swap_lock:
            if self._current is not None:
                self._current.retire()
                self._current = None
