"""What ``/metrics`` shows: the pipeline's ``vidgru_*`` metrics summed over its processes (prometheus-client
multiprocess files in the metrics folder), plus the review state of the events the service holds.

Other programs' metrics that land in the same folder (Ray's own processes inherit the variable) are
left out.

Example::

    metrics = ServiceMetrics(Path("/var/lib/vidgru/metrics"), store, marks)
    body = metrics.exposition()          # Prometheus text format
    metrics.cameras()["cam1"]["fps"]
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from vidgru.serve.marks import ReviewMarks
from vidgru.serve.store import EventStore
from vidgru.telemetry import PREFIX

_CAMERA_SAMPLES = {
    "vidgru_camera_up": "up",
    "vidgru_camera_fps": "fps",
    "vidgru_camera_last_frame_timestamp_seconds": "last_frame",
    "vidgru_frames_decoded_total": "frames_decoded",
    "vidgru_frames_analysed_total": "frames_analysed",
    "vidgru_frames_dropped_total": "frames_dropped",
}


class _PipelineCollector:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def collect(self) -> Iterator[Metric]:
        for family in MultiProcessCollector(None, path=str(self.folder)).collect():
            if family.name.startswith(PREFIX):
                yield family


class _ReviewCollector:
    def __init__(self, store: EventStore, marks: ReviewMarks) -> None:
        self.store, self.marks = store, marks

    def collect(self) -> Iterator[Metric]:
        events = self.store.all()
        held = GaugeMetricFamily(
            "vidgru_review_events", "Events the service holds, by state.", labels=["state"]
        )
        held.add_metric(["open"], sum(1 for v in events if v.type == "start"))
        held.add_metric(["closed"], sum(1 for v in events if v.type == "end"))
        yield held
        marked = {k for k, m in self.marks.all().items() if m.false_positive}
        yield GaugeMetricFamily(
            "vidgru_review_false_positives",
            "Events marked as false positives.",
            value=sum(1 for v in events if v.id in marked),
        )


class ServiceMetrics:
    def __init__(self, folder: Path | None, store: EventStore, marks: ReviewMarks) -> None:
        self.folder = folder
        self.registry = CollectorRegistry(auto_describe=False)
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            self.registry.register(_PipelineCollector(folder))  # type: ignore[arg-type]
        self.registry.register(_ReviewCollector(store, marks))  # type: ignore[arg-type]

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def cameras(self) -> dict[str, dict[str, Any]]:
        """Per camera, what the pipeline last reported: up, fps, last_frame (ISO-8601 UTC), frame counts."""
        out: dict[str, dict[str, Any]] = {}
        if self.folder is None:
            return out
        for family in _PipelineCollector(self.folder).collect():
            for sample in family.samples:
                key = _CAMERA_SAMPLES.get(sample.name)
                camera = sample.labels.get("camera")
                if key is None or camera is None:
                    continue
                value: Any = sample.value
                if key == "last_frame":
                    value = (
                        dt.datetime.fromtimestamp(value, dt.timezone.utc)
                        .isoformat(timespec="milliseconds")
                        .replace("+00:00", "Z")
                    )
                elif key == "up":
                    value = bool(value)
                out.setdefault(camera, {})[key] = value
        return out
