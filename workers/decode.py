from __future__ import annotations

from collections.abc import Iterator

import cv2
import ray

from vidgru.batches import FrameBatch, frame_batches
from vidgru.config import VidgruConfig
from vidgru.occupancy import SceneBackground
from vidgru.segments import Segment
from vidgru.tampering import TamperReference


@ray.remote(num_cpus=1)
def decode_segment(
    segment: Segment,
    cfg: VidgruConfig,
    tamper: TamperReference | None = None,
    background: SceneBackground | None = None,
) -> Iterator[FrameBatch]:
    """Streaming task: one segment's frame batches, in order, with motion statistics (and each frame's
    tampering evidence) attached. Deterministic, so Ray may re-run it after its worker or node died: the
    batches it yields again keep their ids and the ones already taken are not delivered twice."""
    cv2.setNumThreads(1)  # one core per task; Ray schedules the parallelism
    yield from frame_batches(
        segment.clip,
        cfg,
        tamper=tamper,
        start=segment.start,
        stop=segment.stop,
        evidence=True,
        background=background,
    )
