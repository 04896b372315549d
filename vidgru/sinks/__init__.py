"""Where events go. Every sink takes the same record (see :meth:`vidgru.events.Event.to_record`)."""

from __future__ import annotations

from typing import Any, Protocol

from vidgru.sinks.jsonl import JsonlSink


class Sink(Protocol):
    def emit(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


__all__ = ["JsonlSink", "Sink"]
