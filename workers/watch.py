"""``vidgru watch`` on Ray: a reader actor per camera, the shared CNN actor pool, one scoring loop.

Each :class:`CameraReader` reads its stream in a thread of its own (a threaded actor) into a bounded
buffer that drops the oldest frames, and prepares what it is asked for (flow, CNN input) when the loop
takes it. The loop takes what every camera has ready, runs all their CNN inputs through the pool in one
batch, and lets :class:`vidgru.live.WatchSession` score each camera and emit its records.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence

import cv2
import numpy as np
import ray
import torch
from ray.exceptions import RayActorError
from ray.util import ActorPool

from vidgru.batches import FeatureBatch, FrameBatch
from vidgru.config import BackboneConfig, MotionConfig
from vidgru.config.cameras import CameraConfig, CamerasConfig, StreamSettings
from vidgru.live import FramePrep, LiveScoresCsv, WatchSession
from vidgru.occupancy import SceneBackground
from vidgru.sinks import Sink
from vidgru.streams import CameraStream, CapturedFrame, LatestFrames, StatusChange
from vidgru.watching import CameraPlan, ReaderTake, StatusBoard, WatchResult
from workers.features import FeatureActor
from workers.runtime import cluster_cpus, ensure_ray

log = logging.getLogger(__name__)

_TAKE_WAIT_S = 0.05  # how long a reader with nothing ready holds the loop


# run() holds one thread for good; take() and stop() use the others. Without task events: take() is called
# for every batch, for as long as the camera is watched (see FeatureActor).
@ray.remote(max_concurrency=3, enable_task_events=False)
class CameraReader:
    def __init__(
        self,
        camera: CameraConfig,
        settings: StreamSettings,
        fps: float,
        motion: MotionConfig,
        features: BackboneConfig,
        background: SceneBackground | None = None,
        occupancy: bool = True,
    ) -> None:
        cv2.setNumThreads(1)  # Ray gives each reader a share of a core
        self.buffer = LatestFrames(math.ceil(settings.buffer_s * fps))
        self.stream = CameraStream(camera.id, camera.open_target, settings, fps, camera.source_kind)
        self.prep = FramePrep(camera.id, motion, features, background, occupancy)
        self.stopping = threading.Event()

    def run(self) -> None:
        self.stream.run(self.buffer.put, self.buffer.put_status, self.stopping)

    def take(self, wait_s: float) -> ReaderTake:
        items = [self.prep(i) if isinstance(i, CapturedFrame) else i for i in self.buffer.take(wait_s)]
        stream = self.stream
        state = {None: "connecting", True: "online", False: "offline"}[stream.online]
        if stream.finished and not items:
            state = "finished"
        return ReaderTake(items, stream.frames_in, self.buffer.dropped, state)

    def stop(self) -> None:
        self.stopping.set()


def watch(
    cfg: CamerasConfig,
    plans: Sequence[CameraPlan],
    sinks: Sequence[Sink],
    stop: threading.Event,
    duration: float | None = None,
    status_every: float = 10.0,
    on_status: Callable[[list[str]], None] | None = None,
    scores: LiveScoresCsv | None = None,
) -> WatchResult:
    """Watch until ``stop`` is set, ``duration`` seconds pass, or every camera (all files) has ended.
    Open events are ended before it returns."""
    ensure_ray(cfg.ray)
    # This process runs the GRUs a frame at a time: too little work to share between threads, and on a
    # busy machine torch's waiting threads made scoring 15x slower (117 ms a frame instead of 7).
    torch.set_num_threads(1)
    cpus = cluster_cpus()
    model_cfg = plans[0].model.config
    n_actors = cfg.ray.cnn_actors or max(1, cpus // 3)
    # As in batch analysis: the actors keep no state, so a dead one is restarted and its call run again,
    # and the cameras keep being scored (the readers restart the same way).
    actors = [
        FeatureActor.options(max_restarts=-1, max_task_retries=-1).remote(
            model_cfg.features, model_cfg.motion.grid
        )
        for _ in range(n_actors)
    ]
    ray.get([a.weights.remote() for a in actors])  # weights load, or fail here with the actor's error
    pool = ActorPool(actors)
    chunk = model_cfg.features.batch_size

    def extract(batch: FrameBatch) -> np.ndarray:
        parts = [
            FrameBatch(
                batch.clip,
                lo,
                batch.fps,
                batch.cnn_input[lo : lo + chunk],
                np.arange(min(chunk, len(batch.cnn_rows) - lo)),
                batch.motion[lo : lo + chunk],
            )
            for lo in range(0, len(batch.cnn_rows), chunk)
        ]
        done: list[FeatureBatch] = list(pool.map(lambda actor, part: actor.extract.remote(part), parts))
        return np.concatenate([d.appearance[d.appearance_rows] for d in done])

    # Readers share what the CNN actors leave, so that every camera is read at once on any machine.
    reader_cpus = max(0.05, (cpus - n_actors) / len(plans))
    readers = {
        p.camera.id: CameraReader.options(num_cpus=reader_cpus, max_restarts=-1).remote(
            p.camera,
            cfg.stream,
            p.fps,
            p.model.config.motion,
            p.model.config.features,
            p.model.background if p.model.behaviour is not None or p.model.tracks is not None else None,
            p.model.config.behaviour.reads_regions,
        )
        for p in plans
    }
    runs = {c: r.run.remote() for c, r in readers.items()}

    def restart(camera: str, err: RayActorError) -> StatusChange:
        """Ray restarts a reader whose process died (max_restarts=-1) but not the run() it was in: start that
        again on the new process, which opens its stream afresh."""
        log.warning("%s: the reader process died (%s); restarting it", camera, type(err).__name__)
        runs[camera] = readers[camera].run.remote()
        return StatusChange(False, time.time(), "the camera's reader process died; restarting it", -1)

    def collect(camera: str, ref: ray.ObjectRef) -> ReaderTake:
        try:
            return ray.get(ref)
        except RayActorError as err:  # the take was in flight when the process died
            return ReaderTake([restart(camera, err)], 0, 0, "offline")

    def check_runs(takes: dict[str, ReaderTake]) -> None:
        """A reader's run() ends when stopped, at a file's end, or with its process; an exception in it is a
        bug: raise it. A process that died between two takes shows only here (the next take already went to
        the restarted process, which runs nothing until told to)."""
        done, _ = ray.wait(list(runs.values()), num_returns=len(runs), timeout=0)
        for camera in [c for c, ref in runs.items() if ref in done]:
            try:
                ray.get(runs.pop(camera))
            except RayActorError as err:
                lost = restart(camera, err)
                if camera in takes:
                    takes[camera].items.append(lost)

    session = WatchSession({p.camera.id: p.scorer for p in plans}, extract, sinks, scores)
    board = StatusBoard(status_every)
    latest: dict[str, ReaderTake] = {}
    deadline = None if duration is None else time.monotonic() + duration
    log.info("watching %d camera(s) with %d CNN actor(s)", len(plans), n_actors)
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            active = [c for c in readers if c not in latest or latest[c].state != "finished"]
            if not active:
                break
            refs = [readers[c].take.remote(_TAKE_WAIT_S) for c in active]
            takes = [collect(c, ref) for c, ref in zip(active, refs, strict=True)]
            check_runs(dict(zip(active, takes, strict=True)))
            latest.update(zip(active, takes, strict=True))
            for camera, take in zip(active, takes, strict=True):
                session.scorers[camera].telemetry.reader_totals(take.frames_in, take.dropped)
            session.process({c: t.items for c, t in zip(active, takes, strict=True)})
            for camera in [c for c, t in zip(active, takes, strict=True) if t.state == "finished"]:
                session.finish(camera)
            lines = board.lines(latest, session)
            if lines and on_status:
                on_status(lines)
    finally:
        stops = [r.stop.remote() for r in readers.values()]
        ray.wait(stops, num_returns=len(stops), timeout=5.0)
        session.close()
        # A reader blocked in a stream read returns within the stall timeout; only a moment is waited.
        ray.wait(list(runs.values()), num_returns=len(runs), timeout=1.0)
    return WatchResult(session.records, board.totals(latest, session))
