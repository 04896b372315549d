"""The durable outbox: every record is stored here before any sink sees it, with a delivered flag per sink.

SQLite in WAL mode with ``synchronous=FULL``, so a record that :meth:`Outbox.add` returned for survives a
SIGKILL or a power cut. A record is marked delivered only after its sink acknowledged it; dying between
the two means it is sent again, which consumers de-duplicate by (id, type).

Example::

    outbox = Outbox("events.outbox.sqlite")
    outbox.add("3f2…|end", body, sinks=["redis:redis://127.0.0.1:6379#vidgru:events"])
    for seq, body in outbox.pending("redis:…", limit=100):
        ...
        outbox.mark_delivered("redis:…", seq)
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from vidgru.errors import OutboxError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,          -- "<id>|<type>": the same record emitted twice is stored once
    body TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER NOT NULL REFERENCES records(seq),
    sink TEXT NOT NULL,
    delivered REAL,                    -- NULL while pending
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (sink, seq)
);
CREATE INDEX IF NOT EXISTS pending ON deliveries (sink, seq) WHERE delivered IS NULL;
"""


class Outbox:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One connection shared under a lock: the statements are tiny, and SQLite serialises writers anyway.
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as err:
            raise OutboxError(
                f"cannot open the outbox {self.path}: {err}; set 'delivery.outbox' to a writable file"
            ) from err

    def _write(self, sql: str, params: Sequence[object] = ()) -> None:
        try:
            with self._lock:
                self._db.execute(sql, params)
        except sqlite3.Error as err:
            raise OutboxError(f"outbox {self.path}: {err}; check the disk and the file") from err

    def add(self, key: str, body: str, sinks: Sequence[str]) -> None:
        """Store a record as pending for ``sinks`` (a sink that already has it keeps its delivered flag)."""
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.execute(
                        "INSERT OR IGNORE INTO records (key, body, created) VALUES (?, ?, ?)",
                        (key, body, time.time()),
                    )
                    (seq,) = self._db.execute("SELECT seq FROM records WHERE key = ?", (key,)).fetchone()
                    self._db.executemany(
                        "INSERT OR IGNORE INTO deliveries (seq, sink) VALUES (?, ?)",
                        [(seq, s) for s in sinks],
                    )
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as err:
            raise OutboxError(f"cannot append to the outbox {self.path}: {err}; check the disk") from err

    def pending(self, sink: str, limit: int = 100) -> list[tuple[int, str]]:
        """Oldest first: ``(seq, body)`` of records not yet delivered to ``sink``."""
        with self._lock:
            return self._db.execute(
                "SELECT d.seq, r.body FROM deliveries d JOIN records r USING (seq) "
                "WHERE d.sink = ? AND d.delivered IS NULL ORDER BY d.seq LIMIT ?",
                (sink, limit),
            ).fetchall()

    def mark_delivered(self, sink: str, seq: int) -> None:
        self._write(
            "UPDATE deliveries SET delivered = ?, attempts = attempts + 1, last_error = NULL "
            "WHERE sink = ? AND seq = ?",
            (time.time(), sink, seq),
        )

    def note_failure(self, sink: str, seq: int, error: str) -> None:
        self._write(
            "UPDATE deliveries SET attempts = attempts + 1, last_error = ? WHERE sink = ? AND seq = ?",
            (error[:500], sink, seq),
        )

    def pending_counts(self) -> dict[str, int]:
        """Records still to deliver, per sink key (sinks with none pending are left out)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT sink, COUNT(*) FROM deliveries WHERE delivered IS NULL GROUP BY sink"
            ).fetchall()
        return dict(rows)

    def prune(self, older_than_s: float) -> int:
        """Forget records every sink has and that are older than ``older_than_s``; returns how many.

        A forgotten record emitted again is stored and sent again, so keep them as long as a re-run of the
        same analysis is likely."""
        cutoff = time.time() - older_than_s
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    done = (
                        "SELECT seq FROM records WHERE created < ? AND seq NOT IN "
                        "(SELECT seq FROM deliveries WHERE delivered IS NULL)"
                    )
                    self._db.execute(f"DELETE FROM deliveries WHERE seq IN ({done})", (cutoff,))
                    count = self._db.execute(f"DELETE FROM records WHERE seq IN ({done})", (cutoff,)).rowcount
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as err:
            raise OutboxError(f"cannot prune the outbox {self.path}: {err}; check the disk") from err
        return count

    def close(self) -> None:
        with self._lock:
            self._db.close()
