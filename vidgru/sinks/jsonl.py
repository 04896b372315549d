from __future__ import annotations

from pathlib import Path
from typing import Any

from vidgru.sinks.base import record_json


class JsonlSink:
    """One JSON object per line, flushed as each event is written so a crash loses nothing written.

    As a configured delivery sink it appends (``append=True``): records already delivered to it are not
    sent again, so truncating would lose them.
    """

    def __init__(self, path: str | Path, append: bool = False, label: str = "jsonl") -> None:
        self.path = Path(path)
        self.label = label
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a" if append else "w", encoding="utf-8")

    def emit(self, record: dict[str, Any]) -> None:
        self.send(record_json(record), record)

    def check(self) -> None:
        """Opening the file in ``__init__`` was the check."""

    def send(self, body: str, record: dict[str, Any]) -> None:
        self._fh.write(body + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
