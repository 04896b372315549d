from __future__ import annotations

import sys
from typing import Any


class StdoutSink:
    """One JSON object per line on standard output, flushed per record, for piping into another program."""

    def __init__(self, label: str = "stdout") -> None:
        self.label = label

    def check(self) -> None:
        """Standard output is always there."""

    def send(self, body: str, record: dict[str, Any]) -> None:
        sys.stdout.write(body + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        """Standard output belongs to the process, not to this sink."""
