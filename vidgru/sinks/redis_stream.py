"""XADD of each record to a Redis stream, capped with ``MAXLEN ~``.

Each entry has the fields ``id``, ``type`` and ``camera`` (to filter without parsing) and ``event``,
the record's JSON. Read them with ``XREAD`` or a consumer group (``XREADGROUP``)::

    for _, entries in r.xread({"vidgru:events": "0-0"}):
        for entry_id, fields in entries:
            record = json.loads(fields[b"event"])
"""

from __future__ import annotations

import os
from typing import Any

import redis

from vidgru.config.sinks import RedisSinkConfig
from vidgru.errors import DeliveryError
from vidgru.sinks.base import SinkUnavailable


class RedisStreamSink:
    def __init__(self, cfg: RedisSinkConfig, label: str) -> None:
        self.cfg, self.label = cfg, label
        password = None
        if cfg.password_env:
            password = os.environ.get(cfg.password_env)
            if not password:
                raise DeliveryError(
                    f"{label}: environment variable {cfg.password_env} is not set or empty; export the Redis "
                    "password in it or remove 'password_env'"
                )
        options: dict[str, Any] = {"socket_timeout": cfg.timeout_s, "socket_connect_timeout": cfg.timeout_s}
        if password:
            options["password"] = password
        try:
            self._redis = redis.Redis.from_url(cfg.url, **options)
        except ValueError as err:
            raise DeliveryError(f"{label}: bad 'url' {cfg.url!r}: {err}; use redis://HOST:PORT/DB") from err

    def check(self) -> None:
        try:
            self._redis.ping()
        except redis.AuthenticationError as err:
            raise DeliveryError(
                f"{self.label}: {self.cfg.target()} refused the password: {err}; fix it"
            ) from err
        except redis.RedisError as err:
            raise DeliveryError(
                f"{self.label}: cannot reach {self.cfg.target()}: {err}; start it or fix 'url'"
            ) from err

    def send(self, body: str, record: dict[str, Any]) -> None:
        fields = {
            "id": str(record.get("id", "")),
            "type": str(record.get("type", "")),
            "camera": str(record.get("camera", "")),
            "event": body,
        }
        try:
            self._redis.xadd(self.cfg.stream, fields, maxlen=self.cfg.maxlen, approximate=True)
        except redis.RedisError as err:
            raise SinkUnavailable(f"XADD {self.cfg.stream}: {err}") from err

    def close(self) -> None:
        self._redis.close()
