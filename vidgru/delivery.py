"""At-least-once delivery of event records to every configured sink, through a durable outbox.

:func:`open_delivery` checks every sink (settings, secrets, reachability) and fails at start with a
:class:`~vidgru.errors.DeliveryError` naming the sink. The :class:`Delivery` it returns is a
:class:`~vidgru.sinks.Sink`: ``emit(record)`` stores the record in the outbox (SQLite), writes it to the
``--events`` JSONL file and returns; one thread per sink sends what is pending for it, oldest first, and
marks each record delivered once the sink acknowledged it. A sink that is down is retried with
exponential backoff while the pipeline goes on. ``close()`` waits up to ``drain_timeout_s`` for the
sinks to catch up; what is still pending stays in the outbox and is sent by the next run that opens it.

Example::

    delivery = open_delivery(cfg.delivery, Path("events.jsonl"))
    delivery.emit(event.to_record("end"))
    delivery.close()          # {"sinks[0] (redis)": 0}: nothing left pending
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from pathlib import Path
from typing import Any

from vidgru import telemetry
from vidgru.config.sinks import DeliveryConfig, SinkConfig
from vidgru.errors import DeliveryError, OutboxError
from vidgru.sinks.base import DeliverySink, SinkUnavailable, record_json
from vidgru.sinks.jsonl import JsonlSink
from vidgru.sinks.outbox import Outbox

log = logging.getLogger(__name__)


def outbox_path(cfg: DeliveryConfig, events_jsonl: Path) -> Path:
    return cfg.outbox or events_jsonl.with_name(f"{events_jsonl.stem}.outbox.sqlite")


def sink_label(index: int, sink: SinkConfig) -> str:
    return f"sinks[{index}] ({sink.type}{' ' + sink.name if sink.name else ''})"


def build_sink(sink: SinkConfig, label: str) -> DeliverySink:
    """The sink object for one config entry; client libraries are imported only for the types in use."""
    if sink.type == "jsonl":
        try:
            return JsonlSink(sink.path, append=True, label=label)
        except OSError as err:
            raise DeliveryError(f"{label}: cannot open {sink.path}: {err}; fix 'path'") from err
    if sink.type == "stdout":
        from vidgru.sinks.stdout import StdoutSink

        return StdoutSink(label)
    if sink.type == "webhook":
        from vidgru.sinks.webhook import WebhookSink

        return WebhookSink(sink, label)
    if sink.type == "redis":
        from vidgru.sinks.redis_stream import RedisStreamSink

        return RedisStreamSink(sink, label)
    if sink.type == "mqtt":
        from vidgru.sinks.mqtt import MqttSink

        return MqttSink(sink, label)
    from vidgru.sinks.kafka import KafkaSink

    return KafkaSink(sink, label)


class _SinkWorker(threading.Thread):
    """Sends one sink's pending records in order; on failure waits (doubling, with jitter) and retries."""

    def __init__(self, key: str, sink: DeliverySink, outbox: Outbox, cfg: DeliveryConfig) -> None:
        super().__init__(name=f"vidgru-delivery {sink.label}", daemon=True)
        self.key, self.sink, self.outbox, self.cfg = key, sink, outbox, cfg
        self.wake, self.stop = threading.Event(), threading.Event()
        self.delivered = self.failures = 0

    def run(self) -> None:
        self.failures = 0
        while not self.stop.is_set():
            try:
                batch = self.outbox.pending(self.key)
                telemetry.outbox_backlog(self.sink.label, self.outbox.pending_counts().get(self.key, 0))
                if not batch:
                    self.wake.wait(1.0)
                    self.wake.clear()
                    continue
                self._send(batch)
            except OutboxError as err:
                log.error("%s: %s", self.sink.label, err)
                self.stop.wait(self.cfg.retry_max_s)
            except Exception:  # a dead thread would strand this sink's records until the next run
                log.exception("%s: delivery thread error; retrying", self.sink.label)
                self.stop.wait(self.cfg.retry_initial_s)

    def _send(self, batch: list[tuple[int, str]]) -> None:
        for seq, body in batch:
            if self.stop.is_set():
                return
            record = json.loads(body)
            try:
                self.sink.send(body, record)
            except SinkUnavailable as err:
                error = str(err)
            except Exception as err:  # a client library's surprise must not kill the thread: keep retrying
                error = f"{type(err).__name__}: {err}"
                log.error("%s: unexpected delivery error: %s", self.sink.label, error)
            else:
                self.outbox.mark_delivered(self.key, seq)
                self.delivered += 1
                telemetry.event_emitted(self.sink.label, str(record.get("type")))
                if self.failures:
                    log.warning(
                        "%s: delivering again after %d failed attempt(s)", self.sink.label, self.failures
                    )
                    self.failures = 0
                continue
            self.failures += 1
            telemetry.sink_failed(self.sink.label)
            self.outbox.note_failure(self.key, seq, error)
            self._log_failure(self.failures, error)
            self.stop.wait(self._backoff(self.failures))
            return

    def _backoff(self, failures: int) -> float:
        delay = min(self.cfg.retry_max_s, self.cfg.retry_initial_s * 2 ** (failures - 1))
        return delay * random.uniform(0.8, 1.0)  # jitter, so several vidgru processes do not retry in step

    def _log_failure(self, failures: int, error: str) -> None:
        if failures == 1:
            log.warning(
                "%s: delivery failed (%s); retrying with backoff, records stay in %s",
                self.sink.label,
                error,
                self.outbox.path,
            )
        else:
            log.debug("%s: attempt %d failed: %s", self.sink.label, failures, error)


class Delivery:
    """The pipeline's sink: JSONL file + outbox + one delivery thread per configured sink."""

    def __init__(
        self,
        cfg: DeliveryConfig,
        jsonl: JsonlSink | None,
        outbox: Outbox | None,
        sinks: list[tuple[str, DeliverySink]],
    ) -> None:
        self.cfg, self.jsonl, self.outbox = cfg, jsonl, outbox
        self._keys = [key for key, _ in sinks]
        self._workers = [_SinkWorker(key, sink, outbox, cfg) for key, sink in sinks if outbox is not None]
        self._emit_lock = threading.Lock()
        self._closed = False
        for worker in self._workers:
            worker.start()

    @property
    def sinks(self) -> list[DeliverySink]:
        return [w.sink for w in self._workers]

    def emit(self, record: dict[str, Any]) -> None:
        body = record_json(record)
        with self._emit_lock:
            if self.outbox is not None:
                self.outbox.add(f"{record.get('id')}|{record.get('type')}", body, self._keys)
            if self.jsonl is not None:
                self.jsonl.send(body, record)
                telemetry.event_emitted(telemetry.EVENTS_FILE_SINK, str(record.get("type")))
        for worker in self._workers:
            worker.wake.set()

    def pending(self) -> dict[str, int]:
        """Records not yet delivered, per sink label."""
        if self.outbox is None:
            return {}
        counts = self.outbox.pending_counts()
        return {w.sink.label: counts.get(w.key, 0) for w in self._workers}

    def delivered(self) -> dict[str, int]:
        """Records delivered since this Delivery was opened, per sink label."""
        return {w.sink.label: w.delivered for w in self._workers}

    def drain(self, timeout: float) -> dict[str, int]:
        """Wait until every sink has every record or ``timeout`` seconds pass; returns what is pending."""
        deadline = time.monotonic() + timeout
        pending = self.pending()
        while any(pending.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
            pending = self.pending()
        return pending

    def close(self, timeout: float | None = None) -> dict[str, int]:
        """Drain up to ``timeout`` (default ``drain_timeout_s``) seconds, stop the sinks; returns the records
        left pending, per sink."""
        if self._closed:
            return {}
        self._closed = True
        pending = self.drain(self.cfg.drain_timeout_s if timeout is None else timeout)
        for worker in self._workers:
            worker.stop.set()
            worker.wake.set()
        for worker in self._workers:
            # A send blocked on a dead peer ends at its own timeout; the thread is a daemon in any case.
            worker.join(timeout=30)
            try:
                worker.sink.close()
            except Exception as err:  # a failing close must not hide the pending report below
                log.warning("%s: closing failed: %s", worker.sink.label, err)
        if self.outbox is not None:
            pending = self.pending()
            for label, count in pending.items():
                telemetry.outbox_backlog(label, count)
                if count:
                    log.warning(
                        "%s: %d record(s) not delivered yet; they stay in %s and are sent by the next run with "
                        "this outbox (or 'vidgru deliver')",
                        label,
                        count,
                        self.outbox.path,
                    )
            self.outbox.close()
        if self.jsonl is not None:
            self.jsonl.close()
        return pending


def open_delivery(
    cfg: DeliveryConfig, events_jsonl: Path | None, append: bool = False, check: bool | None = None
) -> Delivery:
    """Check and start every configured sink, open the outbox and the ``--events`` JSONL file.

    ``events_jsonl=None`` writes no JSONL file (``vidgru deliver`` only sends what the outbox holds; then
    ``cfg.outbox`` must be set). ``check`` overrides ``cfg.check_at_start``.
    """
    built: list[tuple[str, DeliverySink]] = []
    outbox: Outbox | None = None
    try:
        for index, sink_cfg in enumerate(cfg.sinks):
            built.append((sink_cfg.key(), build_sink(sink_cfg, sink_label(index, sink_cfg))))
        if cfg.check_at_start if check is None else check:
            for _, sink in built:
                sink.check()
        if built:
            if events_jsonl is None and cfg.outbox is None:
                raise DeliveryError("no outbox to deliver from; pass --events or set 'delivery.outbox'")
            outbox = Outbox(outbox_path(cfg, events_jsonl or Path("events.jsonl")))
            outbox.prune(cfg.keep_delivered_days * 86400)
            _warn_orphans(outbox, {key for key, _ in built})
        jsonl = None
        if events_jsonl is not None:
            try:
                jsonl = JsonlSink(events_jsonl, append=append)
            except OSError as err:
                raise DeliveryError(
                    f"cannot write the events file {events_jsonl}: {err}; pass a writable --events path"
                ) from err
    except BaseException:
        if outbox is not None:
            outbox.close()
        for _, sink in built:
            try:
                sink.close()
            except Exception as err:  # the start-up error matters more than a failed clean-up
                log.debug("%s: close after a failed start: %s", sink.label, err)
        raise
    delivery = Delivery(cfg, jsonl, outbox, built)
    # For `vidgru deliver` (no events file of its own) sending what is left is the whole job, not news.
    if outbox is not None and events_jsonl is not None and any(delivery.pending().values()):
        log.warning("outbox %s holds records from an earlier run; sending them first", outbox.path)
    return delivery


def _warn_orphans(outbox: Outbox, configured: set[str]) -> None:
    for key, count in outbox.pending_counts().items():
        if key not in configured:
            log.warning(
                "outbox %s holds %d undelivered record(s) for '%s', which is no longer configured; they are "
                "not sent (put the sink back in 'delivery.sinks' to send them)",
                outbox.path,
                count,
                key,
            )
