"""Produce each record to a Kafka topic with confluent-kafka (``pip install 'vidgru[kafka]'``).

Records are keyed by event id, so an event's start and end land in the same partition, in order. The
producer waits for all in-sync replicas (``acks=all``) and is idempotent; a record counts as delivered
when its delivery report comes back without error.
"""

from __future__ import annotations

from typing import Any

from vidgru.config.sinks import KafkaSinkConfig
from vidgru.errors import DeliveryError
from vidgru.sinks.base import SinkUnavailable

try:
    from confluent_kafka import KafkaError, KafkaException, Producer
except ImportError:  # optional extra: the error names the fix when a kafka sink is configured
    Producer = None  # type: ignore[assignment,misc]


class KafkaSink:
    def __init__(self, cfg: KafkaSinkConfig, label: str) -> None:
        self.cfg, self.label = cfg, label
        if Producer is None:
            raise DeliveryError(f"{label}: the kafka sink needs confluent-kafka; pip install 'vidgru[kafka]'")
        settings: dict[str, Any] = {
            "bootstrap.servers": cfg.bootstrap_servers,
            "acks": "all",
            "enable.idempotence": True,
            "message.timeout.ms": int(cfg.timeout_s * 1000),
            **cfg.config,
        }
        try:
            self._producer = Producer(settings)
        except KafkaException as err:
            raise DeliveryError(f"{label}: bad producer settings: {err}; fix 'config'") from err

    def check(self) -> None:
        try:
            self._producer.list_topics(timeout=self.cfg.timeout_s)
        except KafkaException as err:
            raise DeliveryError(
                f"{self.label}: cannot reach {self.cfg.bootstrap_servers}: {err}; start the brokers or fix "
                "'bootstrap_servers'"
            ) from err

    def send(self, body: str, record: dict[str, Any]) -> None:
        reports: list[KafkaError | None] = []
        try:
            self._producer.produce(
                self.cfg.topic,
                value=body.encode(),
                key=str(record.get("id", "")).encode(),
                on_delivery=lambda err, _msg: reports.append(err),
            )
        except (KafkaException, BufferError) as err:
            raise SinkUnavailable(f"produce to {self.cfg.topic}: {err}") from err
        self._producer.flush(self.cfg.timeout_s)
        if not reports:
            raise SinkUnavailable(
                f"no delivery report from {self.cfg.bootstrap_servers} within {self.cfg.timeout_s:g}s"
            )
        if reports[0] is not None:
            raise SinkUnavailable(f"produce to {self.cfg.topic}: {reports[0].str()}")

    def close(self) -> None:
        self._producer.flush(self.cfg.timeout_s)
