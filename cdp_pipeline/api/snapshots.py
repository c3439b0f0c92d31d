"""The open serving snapshot, swapped for a newer one without a restart or a gap.

Each request takes a reference to the snapshot that is current when it starts and finishes
on it, even if a newer one is opened meanwhile. A swap opens (and warms) the new file
before it becomes current; the old connection is closed only when its last request has
released it. Threads query through their own cursor of the snapshot's connection because a
DuckDB connection must not run two queries at once.
"""

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from cdp_pipeline.publish.snapshot import read_pointer

logger = logging.getLogger(__name__)

# How often a request may look at the pointer file: one stat a second is free, and a new
# night's data a second late is not noticed by anyone.
DEFAULT_CHECK_INTERVAL_S = 1.0


class SnapshotUnavailable(RuntimeError):
    """No snapshot has been published yet (or none can be opened)."""


class OpenSnapshot:
    """One read-only connection to one snapshot file, shared by all request threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.name
        # One thread per query: a point look-up gains nothing from parallelism and DuckDB's
        # task scheduling would add latency to every one of them.
        self._connection = duckdb.connect(str(path), read_only=True, config={"threads": 1})
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._lock = threading.Lock()
        self._users = 0
        self._retired = False
        self._closed = False
        row = self._connection.execute(
            "select published_at, traits_present, scores_present from snapshot_info"
        ).fetchone()
        self.published_at = row[0] if row else None

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor on the snapshot."""
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            with self._lock:
                cursor = self._connection.cursor()
                self._cursors.append(cursor)
            self._local.cursor = cursor
        return cursor

    def warm(self) -> None:
        """Load the look-up indexes now, so the first requests after a swap are not slow."""
        cursor = self.cursor()
        cursor.execute(
            "select profile_id from identifiers where lookup_key = ?", ["profile_id:"]
        ).fetchall()
        cursor.execute(
            "select profile_id from profile_cards where profile_id = ?", [""]
        ).fetchall()

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
            cursors, self._cursors = self._cursors, []
        for cursor in cursors:
            cursor.close()
        self._connection.close()
        logger.info("Closed serving snapshot %s", self.name)


class SnapshotReader:
    """Follows the ``CURRENT`` pointer of a snapshot folder."""

    def __init__(
        self, directory: Path, check_interval_s: float = DEFAULT_CHECK_INTERVAL_S
    ) -> None:
        self._directory = directory
        self._interval = check_interval_s
        self._current: OpenSnapshot | None = None
        self._signature: tuple[int, int, int] | None = None
        self._checked_at = float("-inf")
        self._swap_lock = threading.Lock()
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
        """Open the snapshot CURRENT names if it changed; at most once per interval."""
        now = time.monotonic()
        if not force and now - self._checked_at < self._interval:
            return
        # One thread swaps; the others keep answering from the snapshot they have.
        if not self._swap_lock.acquire(blocking=force):
            return
        try:
            self._checked_at = now
            pointer = self._directory / "CURRENT"
            try:
                stat = pointer.stat()
                signature: tuple[int, int, int] | None = (
                    stat.st_ino, stat.st_mtime_ns, stat.st_size,
                )
            except FileNotFoundError:
                signature = None
            if signature == self._signature and self._current is not None:
                return
            path = read_pointer(self._directory)
            if path is None or (self._current is not None and path.name == self._current.name):
                self._signature = signature
                return
            try:
                fresh = OpenSnapshot(path)
                fresh.warm()
            except (duckdb.Error, OSError):
                # Keep the snapshot we have; the next check tries again.
                logger.exception("Could not open serving snapshot %s", path.name)
                return
            previous, self._current = self._current, fresh
            self._signature = signature
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
