"""What ``vidgru watch`` decides before it starts and reports while it runs.

:func:`plan_cameras` loads each camera's model and builds its :class:`~vidgru.live.CameraScorer`;
:class:`StatusBoard` turns what the readers report into the status lines and the final totals.

Example::

    plans = plan_cameras(load_cameras_config("cameras.yaml"), thumbnails=Path("events_thumbnails"))
    board = StatusBoard(every=10)
    lines = board.lines(latest_takes, session)   # None until 10 s have passed
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidgru.config.cameras import CameraConfig, CamerasConfig
from vidgru.errors import ConfigError, ModelError
from vidgru.live import CameraScorer, Item, WatchSession, roi_cells
from vidgru.model_store import load_model
from vidgru.training import TrainedModel


@dataclass
class ReaderTake:
    items: list[Item]
    frames_in: int
    dropped: int
    state: str  # connecting, online, offline, finished


class StatusBoard:
    """Per camera, every ``every`` seconds: fps in, fps analysed, frames dropped, state, latency."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.last = time.monotonic()
        self.seen: dict[str, tuple[int, int, int]] = {}

    def lines(self, takes: dict[str, ReaderTake], session: WatchSession) -> list[str] | None:
        now = time.monotonic()
        if now - self.last < self.every:
            return None
        span, self.last = now - self.last, now
        out = []
        for camera, take in takes.items():
            counters = session.scorers[camera].counters
            frames_in, analysed, dropped = self.seen.get(camera, (0, 0, 0))
            if take.frames_in < frames_in:  # a restarted reader counts from zero
                frames_in, dropped = 0, 0
            lat = counters.latencies
            latency = "n/a"
            if lat:
                p50, p95 = np.percentile(lat, [50, 95])
                latency = f"p50 {p50:.2f} s p95 {p95:.2f} s"
            out.append(
                f"{camera}: {take.state}, {(take.frames_in - frames_in) / span:.1f} fps in, "
                f"{(counters.analysed - analysed) / span:.1f} fps analysed, {take.dropped - dropped} dropped "
                f"({take.dropped} in all), capture->score {latency}"
            )
            self.seen[camera] = (take.frames_in, counters.analysed, take.dropped)
            counters.latencies = []
        return out

    def totals(self, takes: dict[str, ReaderTake], session: WatchSession) -> list[str]:
        return [
            f"{camera}: {take.frames_in} frames in, {session.scorers[camera].counters.analysed} analysed, "
            f"{take.dropped} dropped, {take.state}"
            for camera, take in takes.items()
        ]


@dataclass
class WatchResult:
    records: int  # records emitted to the sinks
    cameras: list[str]  # a line per camera: frames in, analysed, dropped, last state


@dataclass
class CameraPlan:
    """Everything decided before a camera is watched."""

    camera: CameraConfig
    model: TrainedModel
    fps: float
    scorer: CameraScorer


def trained_fps(model: TrainedModel) -> float | None:
    fps = model.meta.get("fps")
    return float(fps) if isinstance(fps, int | float) and fps > 0 else None


def _cnn(model: TrainedModel) -> tuple[object, ...]:
    """What the shared CNN actors must agree on (the CNN cadence, ``interval``, may differ per model)."""
    features, grid = model.config.features, model.config.motion.grid
    return features.name, features.weights, features.layers, features.input_size, grid


def plan_cameras(
    cfg: CamerasConfig, thumbnails: Path | None, source: str = "cameras config"
) -> list[CameraPlan]:
    """Load each camera's model (once per directory) and build its scorer. All models must share one
    backbone and grid, because all cameras' frames go through the same CNN actors in one batch."""
    models: dict[Path, TrainedModel] = {}
    plans = []
    for i, cam in enumerate(cfg.cameras):
        where = cfg.model_dir(cam)
        if where not in models:
            try:
                models[where] = load_model(where)
            except ModelError as err:
                raise type(err)(f"{source}: cameras[{i}].model: {err}") from err
        model = models[where]
        if plans and _cnn(model) != _cnn(plans[0].model):
            raise ConfigError(
                f"{source}: cameras[{i}].model: {where} was trained with a different backbone or grid than "
                f"{cfg.model_dir(plans[0].camera)}; all cameras share the CNN, so train them with the same "
                "features and motion.grid settings"
            )
        roi = roi_cells(cam.roi, model.config.motion.grid)
        if not roi.any():
            raise ConfigError(
                f"{source}: cameras[{i}].roi: the polygons cover no grid cell by half or more; enlarge them "
                "or remove 'roi' to score the whole frame"
            )
        fps = cfg.analysis_fps_for(cam, trained_fps(model))
        events = cfg.events_for(cam, model.config.events)
        plans.append(CameraPlan(cam, model, fps, CameraScorer(cam.id, model, events, fps, roi, thumbnails)))
    return plans
