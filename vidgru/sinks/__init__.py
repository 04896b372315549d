"""Where events go. Every sink takes the same record (see :meth:`vidgru.events.Event.to_record` and
``vidgru/schemas/event.schema.json``).

The pipeline emits into one :class:`Sink`; in the CLI that is :class:`vidgru.delivery.Delivery`, which
writes the ``--events`` JSONL file and delivers to the configured sinks (one module each: ``jsonl``,
``stdout``, ``webhook``, ``redis_stream``, ``mqtt``, ``kafka``) at least once through ``outbox``.
"""

from __future__ import annotations

from typing import Any, Protocol

from vidgru.sinks.jsonl import JsonlSink


class Sink(Protocol):
    def emit(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


__all__ = ["JsonlSink", "Sink"]
