from __future__ import annotations

from collections.abc import Iterator

import cv2
import ray

from vidgru.batches import FrameBatch, frame_batches
from vidgru.config import VidgruConfig
from vidgru.sources import Clip
from vidgru.tampering import TamperReference


@ray.remote(num_cpus=1)
def decode_clip(clip: Clip, cfg: VidgruConfig, tamper: TamperReference | None = None) -> Iterator[FrameBatch]:
    """Streaming task: one clip's frame batches, in order, with motion statistics (and tampering) attached."""
    cv2.setNumThreads(1)  # one core per task; Ray schedules the parallelism
    yield from frame_batches(clip, cfg, tamper=tamper)
