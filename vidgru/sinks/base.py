"""What the delivery worker needs from a sink: check it at start, send one record, close.

A sink raises :class:`SinkUnavailable` when a record could not be handed over (broker down, timeout,
HTTP 5xx); the worker keeps the record in the outbox and tries again later. It returns only once the
other side has acknowledged the record, so a record marked delivered is really there.
"""

from __future__ import annotations

import json
from typing import Any, Protocol


class SinkUnavailable(Exception):
    """A record could not be delivered now; it stays pending and is retried."""


class DeliverySink(Protocol):
    label: str  # "sinks[1] (redis)", used in every message about this sink

    def check(self) -> None:
        """Raise :class:`vidgru.errors.DeliveryError` if the sink cannot be used (unreachable, no secret)."""
        ...

    def send(self, body: str, record: dict[str, Any]) -> None:
        """Deliver one record (``body`` is its JSON text); raise :class:`SinkUnavailable` if not acknowledged."""
        ...

    def close(self) -> None: ...


def record_json(record: dict[str, Any]) -> str:
    """The one serialisation every sink sends, so a webhook signature covers exactly the bytes stored."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)
