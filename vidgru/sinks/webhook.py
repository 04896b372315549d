"""HTTP POST of each record, signed so the receiver can tell it came from vidgru.

The signature header is ``sha256=`` + hex HMAC-SHA256 of the exact body bytes under the shared secret,
as GitHub does. A receiver checks it with::

    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    hmac.compare_digest(expected, request.headers["X-Vidgru-Signature"])

Any 2xx answer is delivery; anything else (5xx, 4xx, a timeout, a refused connection) leaves the record
pending and it is retried with backoff. 4xx answers are logged as errors: they usually mean a wrong
secret or URL, which no retry fixes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

import httpx

from vidgru.config.sinks import WebhookSinkConfig
from vidgru.errors import DeliveryError
from vidgru.sinks.base import SinkUnavailable

log = logging.getLogger(__name__)
# httpx logs every request at INFO; one line per event would drown `--verbose` output.
logging.getLogger("httpx").setLevel(logging.WARNING)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSink:
    def __init__(self, cfg: WebhookSinkConfig, label: str) -> None:
        self.cfg, self.label = cfg, label
        secret = cfg.resolve_secret()
        if secret is None:
            raise DeliveryError(
                f"{label}: environment variable {cfg.secret_env} is not set or empty; export the shared "
                "secret in it or set 'secret'"
            )
        self._secret = secret
        self._client = httpx.Client(timeout=cfg.timeout_s, headers=cfg.headers)

    def check(self) -> None:
        # Any HTTP answer proves the receiver is there; only a transport failure is fatal at start.
        try:
            self._client.head(self.cfg.url)
        except httpx.TransportError as err:
            raise DeliveryError(
                f"{self.label}: cannot reach {self.cfg.url}: {err or type(err).__name__}; start the receiver "
                "or fix 'url'"
            ) from err

    def send(self, body: str, record: dict[str, Any]) -> None:
        data = body.encode()
        headers = {
            "Content-Type": "application/json",
            self.cfg.signature_header: sign(self._secret, data),
            "X-Vidgru-Event-Id": str(record.get("id", "")),
            "X-Vidgru-Event-Type": str(record.get("type", "")),
        }
        try:
            response = self._client.post(self.cfg.url, content=data, headers=headers)
        except httpx.TransportError as err:
            raise SinkUnavailable(f"POST {self.cfg.url}: {err or type(err).__name__}") from err
        if response.is_success:
            return
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            log.error(
                "%s: %s answered %d %s; check the URL and the shared secret (the record is kept and retried)",
                self.label,
                self.cfg.url,
                response.status_code,
                response.reason_phrase,
            )
        raise SinkUnavailable(f"POST {self.cfg.url}: HTTP {response.status_code} {response.reason_phrase}")

    def close(self) -> None:
        self._client.close()
