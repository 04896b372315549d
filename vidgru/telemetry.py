"""Prometheus metrics of the running pipeline, all named ``vidgru_*`` (prometheus-client).

The processes that do the work (``analyze``, ``evaluate``, ``watch``) count; ``vidgru serve`` shows what
they counted at ``/metrics``. They meet in a folder through prometheus-client's multiprocess mode: with
``VIDGRU_METRICS_DIR`` set (or :func:`enable` given a folder), every process writes its values to
memory-mapped files there and the server sums them on each scrape, so the counters of a finished run are
still there. ``VIDGRU_METRICS_PORT`` (``PORT`` or ``HOST:PORT``, host default 127.0.0.1) also serves the
process's own metrics for a live scrape while it runs.

Example::

    telemetry.enable()                                   # once, at the start of a pipeline command
    telemetry.frames_decoded("cam1", 16)
    with telemetry.inference_timer("cnn", frames=16):
        features = extract(batch)
    cam = telemetry.camera("cam1")                       # live cameras
    cam.up(True); cam.reader_totals(frames_in=1200, dropped=3); cam.analysed(captured=t, scored=time.time())

Metrics (labels in braces):

- ``vidgru_frames_decoded_total{camera}``, ``vidgru_frames_analysed_total{camera}``,
  ``vidgru_frames_dropped_total{camera}``: frames read, scored, and dropped because analysis fell behind.
  In batch analysis ``camera`` is the video file's stem.
- ``vidgru_inference_seconds{stage}`` (histogram) and ``vidgru_inference_frames_total{stage}``: one
  observation per call of a model (``cnn``: a batch of frames; ``gru``: a whole clip in batch analysis,
  one frame live); the frames total turns the sum into time per frame.
- ``vidgru_capture_to_score_seconds{camera}`` (histogram): live, capture of a frame to its score.
- ``vidgru_camera_up{camera}``, ``vidgru_camera_fps{camera}``,
  ``vidgru_camera_last_frame_timestamp_seconds{camera}``: live camera state, analysed frames per second
  and the capture time of the last analysed frame.
- ``vidgru_events_emitted_total{sink,type}``: records written, per sink (``events_file`` is the
  ``--events`` JSONL; configured sinks count when they acknowledge) and record type.
- ``vidgru_sink_failures_total{sink}``: failed delivery attempts; ``vidgru_outbox_backlog{sink}``: records
  in the outbox not yet delivered to the sink.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

METRICS_DIR_ENV = "VIDGRU_METRICS_DIR"
METRICS_PORT_ENV = "VIDGRU_METRICS_PORT"
PREFIX = "vidgru_"
EVENTS_FILE_SINK = "events_file"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


@dataclass(frozen=True)
class _Metrics:
    frames_decoded: Any
    frames_analysed: Any
    frames_dropped: Any
    inference_seconds: Any
    inference_frames: Any
    capture_to_score: Any
    camera_up: Any
    camera_fps: Any
    camera_last_frame: Any
    events_emitted: Any
    sink_failures: Any
    outbox_backlog: Any


_metrics: _Metrics | None = None
_create_lock = threading.Lock()
_enabled_dir: Path | None = None
_live_address: str | None = None


def _create() -> _Metrics:
    from prometheus_client import Counter, Gauge, Histogram

    # Gauges of several processes: the last value written wins, dead processes included, so a camera's
    # state survives the watch process for /metrics (watch sets cameras down when it stops).
    recent = "mostrecent"
    return _Metrics(
        frames_decoded=Counter("vidgru_frames_decoded", "Frames decoded.", ["camera"]),
        frames_analysed=Counter("vidgru_frames_analysed", "Frames scored by the model.", ["camera"]),
        frames_dropped=Counter(
            "vidgru_frames_dropped", "Frames dropped because analysis fell behind.", ["camera"]
        ),
        inference_seconds=Histogram(
            "vidgru_inference_seconds",
            "Seconds per model call (cnn: a batch of frames; gru: a clip in batch analysis, a frame live).",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
        ),
        inference_frames=Counter(
            "vidgru_inference_frames", "Frames that went through each model stage.", ["stage"]
        ),
        capture_to_score=Histogram(
            "vidgru_capture_to_score_seconds",
            "Live: seconds from a frame's capture to its score.",
            ["camera"],
            buckets=_LATENCY_BUCKETS,
        ),
        camera_up=Gauge(
            "vidgru_camera_up", "1 while a live camera delivers frames.", ["camera"], multiprocess_mode=recent
        ),
        camera_fps=Gauge(
            "vidgru_camera_fps", "Frames per second analysed, recent.", ["camera"], multiprocess_mode=recent
        ),
        camera_last_frame=Gauge(
            "vidgru_camera_last_frame_timestamp_seconds",
            "Capture time (seconds since the epoch) of the camera's last analysed frame.",
            ["camera"],
            multiprocess_mode=recent,
        ),
        events_emitted=Counter(
            "vidgru_events_emitted",
            "Records written to a sink (events_file: the --events JSONL; others once acknowledged).",
            ["sink", "type"],
        ),
        sink_failures=Counter("vidgru_sink_failures", "Failed delivery attempts.", ["sink"]),
        outbox_backlog=Gauge(
            "vidgru_outbox_backlog",
            "Records in the outbox not yet delivered to the sink.",
            ["sink"],
            multiprocess_mode=recent,
        ),
    )


def metrics() -> _Metrics:
    global _metrics
    if _metrics is None:
        # Several delivery threads count their first record at once: only one may register the metrics.
        with _create_lock:
            if _metrics is None:
                _metrics = _create()
    return _metrics


def enable(metrics_dir: str | Path | None = None, port: str | None = None) -> Path | None:
    """Share this process's metrics through ``metrics_dir`` (default ``$VIDGRU_METRICS_DIR``) and serve
    them live on ``port`` (default ``$VIDGRU_METRICS_PORT``); either may be unset. Call it once, before the
    first metric is counted. Returns the folder in use, if any."""
    global _enabled_dir, _live_address
    folder = metrics_dir or os.environ.get(METRICS_DIR_ENV) or None
    if folder is not None and _enabled_dir is None:
        if _metrics is not None:
            raise RuntimeError("telemetry.enable() must come before the first metric is counted")
        _enabled_dir = Path(folder)
        _enabled_dir.mkdir(parents=True, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_enabled_dir)
        from prometheus_client import values

        # prometheus-client picks its value store when first imported, and ray.init imports it: switch
        # to the multiprocess store if that happened before the variable was set.
        if not getattr(values.ValueClass, "_multiprocess", False):
            values.ValueClass = values.MultiProcessValue()
    address = port or os.environ.get(METRICS_PORT_ENV) or None
    if address and _live_address is None:
        _serve_live(address)
        _live_address = address
    return _enabled_dir


def _serve_live(address: str) -> None:
    from prometheus_client import start_http_server

    host, _, number = address.rpartition(":")
    try:
        port = int(number)
    except ValueError as err:
        from vidgru.errors import ConfigError

        raise ConfigError(
            f"{METRICS_PORT_ENV}={address!r} is not a port; set it to PORT or HOST:PORT, e.g. 9101"
        ) from err
    try:
        start_http_server(port, addr=host or "127.0.0.1")
    except OSError as err:
        from vidgru.errors import ConfigError

        raise ConfigError(
            f"cannot serve metrics on {address}: {err}; pick a free port in {METRICS_PORT_ENV}"
        ) from err
    log.info("metrics on http://%s:%d/metrics", host or "127.0.0.1", port)


def frames_decoded(camera: str, n: int = 1) -> None:
    metrics().frames_decoded.labels(camera).inc(n)


def frames_analysed(camera: str, n: int = 1) -> None:
    metrics().frames_analysed.labels(camera).inc(n)


def frames_dropped(camera: str, n: int = 1) -> None:
    metrics().frames_dropped.labels(camera).inc(n)


def observe_inference(stage: str, seconds: float, frames: int) -> None:
    m = metrics()
    m.inference_seconds.labels(stage).observe(seconds)
    m.inference_frames.labels(stage).inc(frames)


@contextmanager
def inference_timer(stage: str, frames: int) -> Iterator[None]:
    """Times the block as one call of model ``stage`` on ``frames`` frames."""
    started = time.perf_counter()
    yield
    observe_inference(stage, time.perf_counter() - started, frames)


def event_emitted(sink: str, record_type: str) -> None:
    metrics().events_emitted.labels(sink, record_type).inc()


def sink_failed(sink: str) -> None:
    metrics().sink_failures.labels(sink).inc()


def outbox_backlog(sink: str, pending: int) -> None:
    metrics().outbox_backlog.labels(sink).set(pending)


class CameraTelemetry:
    """One live camera's metrics; the reader's cumulative counts become counter increments."""

    def __init__(self, camera: str, fps_window: int = 50) -> None:
        self.camera = camera
        self._totals = {"frames_in": 0, "dropped": 0}
        self._captured: deque[float] = deque(maxlen=max(2, fps_window))

    def up(self, online: bool) -> None:
        metrics().camera_up.labels(self.camera).set(1 if online else 0)
        if not online:
            self._captured.clear()
            metrics().camera_fps.labels(self.camera).set(0)

    def reader_totals(self, frames_in: int, dropped: int) -> None:
        """The reader's totals so far (they may restart from 0 with a new reader)."""
        for key, total, count in (
            ("frames_in", frames_in, frames_decoded),
            ("dropped", dropped, frames_dropped),
        ):
            before = self._totals[key]
            delta = total - before if total >= before else total
            if delta:
                count(self.camera, delta)
            self._totals[key] = total

    def analysed(self, captured: float, scored: float) -> None:
        """A frame captured at ``captured`` was scored at ``scored`` (seconds since the epoch)."""
        m = metrics()
        m.frames_analysed.labels(self.camera).inc()
        m.capture_to_score.labels(self.camera).observe(max(0.0, scored - captured))
        m.camera_last_frame.labels(self.camera).set(captured)
        self._captured.append(captured)
        span = self._captured[-1] - self._captured[0]
        if len(self._captured) > 1 and span > 0:
            m.camera_fps.labels(self.camera).set((len(self._captured) - 1) / span)


def camera(camera_id: str) -> CameraTelemetry:
    return CameraTelemetry(camera_id)
