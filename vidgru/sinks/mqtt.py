"""MQTT publish at QoS 1 (paho-mqtt 2.x), with topics as Frigate lays them out.

- ``<prefix>/events``: every record (start, end, camera_offline, camera_online) as JSON.
- ``<prefix>/<camera>/status``: camera status records, retained, so a new subscriber sees each camera's
  last state at once.
- ``<prefix>/available``: ``online`` (retained) while vidgru is connected; ``offline`` when it stops, or as
  the broker-sent last will if it dies.

A record is delivered once the broker has acknowledged it (PUBACK). paho reconnects by itself when the
broker goes away; until then records stay pending in the outbox.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from vidgru.config.sinks import MqttSinkConfig
from vidgru.errors import DeliveryError
from vidgru.sinks.base import SinkUnavailable

log = logging.getLogger(__name__)

STATUS_TYPES = ("camera_offline", "camera_online")


def topic_part(name: str) -> str:
    """A camera name as one topic level: '/', '+' and '#' would change the topic's meaning."""
    return name.replace("/", "_").replace("+", "_").replace("#", "_") or "_"


class MqttSink:
    def __init__(self, cfg: MqttSinkConfig, label: str) -> None:
        self.cfg, self.label = cfg, label
        self.events_topic = f"{cfg.topic_prefix}/events"
        self.available_topic = f"{cfg.topic_prefix}/available"
        self._connack = threading.Event()
        self._refused: str | None = None
        self._started = False
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=cfg.client_id, protocol=mqtt.MQTTv311, clean_session=True
        )
        if cfg.username:
            password = cfg.resolve_password()
            if cfg.password_env and password is None:
                raise DeliveryError(
                    f"{label}: environment variable {cfg.password_env} is not set or empty; export the MQTT "
                    "password in it or remove 'password_env'"
                )
            client.username_pw_set(cfg.username, password)
        if cfg.tls:
            client.tls_set()
        client.will_set(self.available_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._client = client

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            log.error("%s: %s refused the connection: %s", self.label, self.cfg.target(), reason)
        else:
            self._refused = None
            client.publish(self.available_topic, "online", qos=1, retain=True)
            log.info("%s: connected to %s", self.label, self.cfg.target())
        self._connack.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._connack.clear()
        if reason.is_failure:
            log.warning("%s: lost %s (%s); reconnecting", self.label, self.cfg.target(), reason)

    def check(self) -> None:
        try:
            self._client.connect(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        except (OSError, ValueError) as err:
            raise DeliveryError(
                f"{self.label}: cannot reach {self.cfg.target()}: {err}; start the broker or fix 'host'/'port'"
            ) from err
        self._client.loop_start()
        self._started = True
        if not self._connack.wait(self.cfg.timeout_s):
            raise DeliveryError(
                f"{self.label}: {self.cfg.target()} did not answer the MQTT CONNECT within "
                f"{self.cfg.timeout_s:g}s; check that it is an MQTT broker"
            )
        if self._refused:
            raise DeliveryError(
                f"{self.label}: {self.cfg.target()} refused the connection: {self._refused}; fix 'username' "
                "and the password"
            )

    def _start(self) -> None:
        # Without a start-up check, connect in the background; paho keeps retrying until the broker is there.
        self._client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        self._client.loop_start()
        self._started = True
        self._connack.wait(self.cfg.timeout_s)

    def send(self, body: str, record: dict[str, Any]) -> None:
        if not self._started:
            self._start()
        if not self._client.is_connected():
            # Publishing now would only pile copies into paho's queue; the outbox already holds the record.
            raise SinkUnavailable(f"not connected to {self.cfg.target()}")
        messages = [self._client.publish(self.events_topic, body, qos=self.cfg.qos)]
        if record.get("type") in STATUS_TYPES:
            topic = f"{self.cfg.topic_prefix}/{topic_part(str(record.get('camera', '')))}/status"
            messages.append(self._client.publish(topic, body, qos=self.cfg.qos, retain=True))
        for message in messages:
            try:
                message.wait_for_publish(self.cfg.timeout_s)
                acknowledged = message.is_published()
            except (RuntimeError, ValueError) as err:
                raise SinkUnavailable(f"publish to {self.cfg.target()}: {err}") from err
            if not acknowledged:
                raise SinkUnavailable(
                    f"{self.cfg.target()} did not acknowledge within {self.cfg.timeout_s:g}s"
                )

    def close(self) -> None:
        if not self._started:
            return
        if self._client.is_connected():
            # A clean disconnect suppresses the last will, so say "offline" ourselves, as Frigate does.
            message = self._client.publish(self.available_topic, "offline", qos=1, retain=True)
            try:
                message.wait_for_publish(self.cfg.timeout_s)
            except (RuntimeError, ValueError):
                log.warning("%s: could not publish 'offline' to %s", self.label, self.available_topic)
        self._client.disconnect()
        self._client.loop_stop()
