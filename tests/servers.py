"""Real servers for the sink tests, on 127.0.0.1 and free ports, each in its own temp folder.

- :class:`RedisServer`: Debian's redis-server with an fsync-always append-only file, so a restart keeps
  what was acknowledged (a lost entry is then vidgru's fault, not the server's).
- :class:`Mosquitto`: Debian's mosquitto with persistence, so a durable subscriber's session and queued
  messages survive a restart.
- :class:`WebhookReceiver`: an ``http.server`` in a thread that records every POST, checks its signature,
  and answers with ``status`` (set it to 503 to play a receiver that is down).
- :class:`MqttCollector`: a durable QoS 1 subscriber (paho) that records every message.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.server
import json
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import redis
from paho.mqtt.enums import CallbackAPIVersion

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} within {timeout}s: {log.read_text()[-2000:]}")


class _Server:
    """A server process that can be stopped and started again on the same port, as a restart would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = root / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        _wait_for_port(self.port, self.proc, self.log)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class RedisServer(_Server):
    def command(self) -> list[str]:
        return [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.root),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def records(self, stream: str = "vidgru:events") -> list[dict[str, Any]]:
        """Every record in the stream, in order, checking the flat fields match the JSON."""
        out = []
        with self.client() as r:
            for _entry, fields in r.xrange(stream):
                record = json.loads(fields[b"event"])
                assert fields[b"id"].decode() == record["id"] and fields[b"type"].decode() == record["type"]
                out.append(record)
        return out


class Mosquitto(_Server):
    def command(self) -> list[str]:
        conf = self.root / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.root}/\n"
            "user root\n"  # run as root: mosquitto would otherwise drop to a user that cannot write root
        )
        return [MOSQUITTO, "-c", str(conf)]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def record(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    secret: str
    status: int = 200
    port: int = 0
    received: list[Received] = field(default_factory=list)
    bad_signatures: int = 0

    def __post_init__(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # vidgru's start-up reachability check
                self.send_response(200)
                self.end_headers()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.status == 200:
                    expected = (
                        "sha256=" + hmac.new(receiver.secret.encode(), body, hashlib.sha256).hexdigest()
                    )
                    if hmac.compare_digest(expected, self.headers.get("X-Vidgru-Signature", "")):
                        receiver.received.append(Received(self.path, dict(self.headers), body))
                    else:
                        receiver.bad_signatures += 1
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def records(self) -> list[dict[str, Any]]:
        return [r.record() for r in self.received]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class MqttCollector:
    """A durable subscriber (fixed client id, clean_session=False, QoS 1) to ``<prefix>/#``: the broker
    keeps its subscription and queues its messages across a broker restart."""

    def __init__(self, port: int, prefix: str = "vidgru", client_id: str = "vidgru-test-collector") -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=False
        )
        client.on_connect = lambda c, *_: c.subscribe(f"{prefix}/#", qos=1)
        client.on_subscribe = lambda *_: self._subscribed.set()
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=2)
        client.connect("127.0.0.1", port)
        client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("the test subscriber could not subscribe")
        self._client = client

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def on(self, topic: str) -> list[mqtt.MQTTMessage]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def records(self, topic: str = "vidgru/events") -> list[dict[str, Any]]:
        return [json.loads(m.payload) for m in self.on(topic)]

    def wait_for(self, count: int, topic: str = "vidgru/events", timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.on(topic)) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
