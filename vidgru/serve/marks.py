"""Review marks: which events an operator marked as false positives, in a small SQLite file of the
service's own (never the delivery outbox, which is pruned).

Example::

    marks = ReviewMarks(Path("review.sqlite"))
    marks.set("3f2c…", false_positive=True, note="a bird")
    marks.all()["3f2c…"].false_positive      # True
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from vidgru.errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS marks (
    event_id TEXT PRIMARY KEY,
    false_positive INTEGER NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    marked_at TEXT NOT NULL          -- ISO-8601 UTC
);
"""


@dataclass(frozen=True)
class Mark:
    event_id: str
    false_positive: bool
    note: str
    marked_at: str


class ReviewMarks:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as err:
            raise ConfigError(
                f"cannot open the review marks file {path}: {err}; set 'serve.marks' (or --marks) to a writable file"
            ) from err

    def set(self, event_id: str, false_positive: bool, note: str = "") -> Mark:
        mark = Mark(
            event_id,
            false_positive,
            note,
            dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        )
        with self._lock:
            self._db.execute(
                "INSERT INTO marks (event_id, false_positive, note, marked_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (event_id) DO UPDATE SET false_positive = excluded.false_positive, "
                "note = excluded.note, marked_at = excluded.marked_at",
                (mark.event_id, int(mark.false_positive), mark.note, mark.marked_at),
            )
        return mark

    def clear(self, event_id: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM marks WHERE event_id = ?", (event_id,)).rowcount > 0

    def get(self, event_id: str) -> Mark | None:
        with self._lock:
            row = self._db.execute(
                "SELECT event_id, false_positive, note, marked_at FROM marks WHERE event_id = ?", (event_id,)
            ).fetchone()
        return None if row is None else Mark(row[0], bool(row[1]), row[2], row[3])

    def all(self) -> dict[str, Mark]:
        with self._lock:
            rows = self._db.execute("SELECT event_id, false_positive, note, marked_at FROM marks").fetchall()
        return {r[0]: Mark(r[0], bool(r[1]), r[2], r[3]) for r in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()


def default_marks_path(sources: list[Path]) -> Path:
    """``review.sqlite`` beside the first events file, or inside the first events folder."""
    first = sources[0]
    return (first if first.is_dir() else first.parent) / "review.sqlite"
