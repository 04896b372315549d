"""Where events are delivered besides the ``--events`` JSONL file: the ``delivery`` section.

Each sink is one entry of ``delivery.sinks``, told apart by ``type``. Secrets can be given inline or,
better, as the name of an environment variable (``secret_env``). Example (see configs/sinks.example.yaml)::

    delivery:
      sinks:
        - {type: redis, url: "redis://127.0.0.1:6379/0", stream: "vidgru:events"}
        - {type: mqtt, host: 127.0.0.1, port: 1883}
        - {type: webhook, url: "https://alerts.example.com/vidgru", secret_env: VIDGRU_WEBHOOK_SECRET}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from vidgru.config.base import StrictModel


class _SinkBase(StrictModel):
    name: str | None = Field(
        None,
        description="Name of this sink in logs and in the outbox's delivery records; default: its type and "
        "target. Changing it (or the target) makes it a new sink that gets only new events.",
    )

    def target(self) -> str:
        """Where records go, as shown in messages; with the type, the sink's default identity."""
        raise NotImplementedError

    def key(self) -> str:
        return self.name or f"{self.type}:{self.target()}"  # type: ignore[attr-defined]


class JsonlSinkConfig(_SinkBase):
    """A second JSONL file, appended to (the ``--events`` file is always written)."""

    type: Literal["jsonl"] = Field(description="JSON lines appended to a file.")
    path: Path = Field(description="File to append one JSON object per line to.")

    def target(self) -> str:
        return str(self.path)


class StdoutSinkConfig(_SinkBase):
    """One JSON object per line on standard output, for piping into another program."""

    type: Literal["stdout"] = Field(description="JSON lines on standard output.")

    def target(self) -> str:
        return "stdout"


class WebhookSinkConfig(_SinkBase):
    """HTTP POST of each record as JSON, signed with HMAC-SHA256 over the body."""

    type: Literal["webhook"] = Field(description="HTTP POST per record.")
    url: str = Field(description="http:// or https:// URL that receives the POSTs.")
    secret: SecretStr | None = Field(
        None, description="Shared secret for the signature header; prefer secret_env."
    )
    secret_env: str | None = Field(
        None, description="Environment variable that holds the shared secret (e.g. VIDGRU_WEBHOOK_SECRET)."
    )
    signature_header: str = Field(
        "X-Vidgru-Signature",
        description="Header carrying 'sha256=' + hex HMAC-SHA256 of the raw body under the secret.",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers sent with every POST.")
    timeout_s: float = Field(5.0, gt=0, le=300, description="Seconds before a POST counts as failed.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return url

    @model_validator(mode="after")
    def _has_secret(self) -> WebhookSinkConfig:
        if self.secret is None and not self.secret_env:
            raise ValueError("a webhook needs 'secret_env' (an environment variable) or 'secret'")
        return self

    def target(self) -> str:
        return self.url

    def resolve_secret(self) -> str | None:
        """The secret's value, or None if the environment variable it names is unset or empty."""
        if self.secret_env:
            return os.environ.get(self.secret_env) or None
        return self.secret.get_secret_value() if self.secret else None


class RedisSinkConfig(_SinkBase):
    """XADD of each record to a Redis stream, capped with MAXLEN."""

    type: Literal["redis"] = Field(description="Redis Streams.")
    url: str = Field(
        "redis://127.0.0.1:6379/0", description="redis:// or rediss:// URL (a password in it is allowed)."
    )
    password_env: str | None = Field(
        None, description="Environment variable that holds the password, if not in the URL."
    )
    stream: str = Field("vidgru:events", description="Stream key the records are added to.")
    maxlen: int = Field(
        100_000, ge=1, description="Approximate cap on the stream's length (XADD MAXLEN ~); oldest go first."
    )
    timeout_s: float = Field(5.0, gt=0, le=300, description="Socket timeout for each command.")

    @field_validator("url")
    @classmethod
    def _redis_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return url

    def target(self) -> str:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        where = f"{parts.scheme}://{host}:{parts.port or 6379}" if host else self.url
        return f"{where}#{self.stream}"


class MqttSinkConfig(_SinkBase):
    """MQTT publish at QoS 1: every record on ``<prefix>/events``, camera status retained on
    ``<prefix>/<camera>/status``, and ``<prefix>/available`` online/offline (last will)."""

    type: Literal["mqtt"] = Field(description="MQTT broker.")
    host: str = Field("127.0.0.1", min_length=1, description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port.")
    topic_prefix: str = Field("vidgru", min_length=1, description="First level of every topic.")
    client_id: str = Field("", description="MQTT client id; empty: the broker assigns one.")
    username: str | None = Field(None, description="User name, if the broker requires one.")
    password: SecretStr | None = Field(None, description="Password; prefer password_env.")
    password_env: str | None = Field(None, description="Environment variable that holds the password.")
    qos: Literal[1, 2] = Field(
        1, description="QoS of published records (1 or 2: acknowledged by the broker)."
    )
    tls: bool = Field(False, description="Connect with TLS using the system's CA certificates.")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive interval.")
    timeout_s: float = Field(
        5.0, gt=0, le=300, description="Seconds to wait for the broker's acknowledgement."
    )

    def target(self) -> str:
        return f"mqtt://{self.host}:{self.port}/{self.topic_prefix}"

    def resolve_password(self) -> str | None:
        if self.password_env:
            return os.environ.get(self.password_env) or None
        return self.password.get_secret_value() if self.password else None


class KafkaSinkConfig(_SinkBase):
    """Produce each record to a Kafka topic (``pip install 'vidgru[kafka]'``), keyed by event id."""

    type: Literal["kafka"] = Field(description="Kafka topic (confluent-kafka).")
    bootstrap_servers: str = Field(description="Comma-separated host:port list of brokers.")
    topic: str = Field("vidgru-events", min_length=1, description="Topic the records are produced to.")
    config: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Extra librdkafka settings (security.protocol, sasl.*, ...); see librdkafka's CONFIGURATION.md.",
    )
    timeout_s: float = Field(
        10.0, gt=0, le=300, description="Seconds to wait for the brokers' acknowledgement."
    )

    def target(self) -> str:
        return f"kafka://{self.bootstrap_servers}/{self.topic}"


SinkConfig = Annotated[
    JsonlSinkConfig
    | StdoutSinkConfig
    | WebhookSinkConfig
    | RedisSinkConfig
    | MqttSinkConfig
    | KafkaSinkConfig,
    Field(discriminator="type"),
]


class DeliveryConfig(StrictModel):
    """Where events go besides the --events JSONL file, delivered at least once through a local outbox."""

    sinks: list[SinkConfig] = Field(
        default_factory=list,
        description="Sinks to deliver every record to, each with a 'type': jsonl, stdout, webhook, redis, mqtt "
        "or kafka (see configs/sinks.example.yaml). The --events JSONL file is always written as well.",
    )
    outbox: Path | None = Field(
        None,
        description="SQLite file that holds every record until each sink has it; what a run leaves undelivered "
        "is sent by the next run with the same outbox (or 'vidgru deliver'). null: <events>.outbox.sqlite "
        "beside the events JSONL.",
    )
    retry_initial_s: float = Field(0.5, gt=0, le=60, description="First wait after a failed delivery.")
    retry_max_s: float = Field(
        30.0, gt=0, le=3600, description="Longest wait between retries; waits double up to it."
    )
    drain_timeout_s: float = Field(
        30.0,
        ge=0,
        description="At the end of a run, how long to wait for pending records to be delivered before exiting "
        "(they stay in the outbox).",
    )
    keep_delivered_days: float = Field(
        7.0,
        ge=0,
        description="Records every sink has are forgotten from the outbox after this long (checked at start); "
        "until then the same record emitted again is not sent again.",
    )
    check_at_start: bool = Field(
        True,
        description="Refuse to start if a sink is unreachable (a sink that goes down later is retried).",
    )

    @model_validator(mode="after")
    def _unique_sinks(self) -> DeliveryConfig:
        seen: dict[str, int] = {}
        for i, sink in enumerate(self.sinks):
            key = sink.key()
            if key in seen:
                raise ValueError(
                    f"sinks[{seen[key]}] and sinks[{i}] are the same sink ({key}); remove one or give each a 'name'"
                )
            seen[key] = i
        return self
