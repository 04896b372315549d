from __future__ import annotations

from collections.abc import Iterator

import cv2
import ray

from vidgru.batches import FrameBatch, frame_batches
from vidgru.config import VidgruConfig
from vidgru.sources import Clip


@ray.remote(num_cpus=1)
def decode_clip(clip: Clip, cfg: VidgruConfig) -> Iterator[FrameBatch]:
    """Streaming task: one clip's frame batches, in order, with motion statistics attached."""
    cv2.setNumThreads(1)  # one core per task; Ray schedules the parallelism
    yield from frame_batches(clip, cfg)
