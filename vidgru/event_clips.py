"""Short MP4 clips around events, written beside their thumbnails (``events.clip_seconds``).

Example::

    paths = write_event_clips(clip, fps=10, spans={"ev1": (40, 95)}, out={"ev1": Path("t/ev1.mp4")})
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2

from vidgru.decode import FrameReader
from vidgru.sources import Clip

log = logging.getLogger(__name__)


def clip_span(start_frame: int, end_frame: int, fps: float, seconds: float) -> tuple[int, int]:
    """Frames ``[first, last]`` from ``seconds`` before the event's start to ``seconds`` after its end."""
    pad = round(seconds * fps)
    return max(0, start_frame - pad), end_frame + pad


def write_event_clips(
    clip: Clip, fps: float, spans: dict[str, tuple[int, int]], out: dict[str, Path]
) -> dict[str, str]:
    """Write each span of ``clip`` (inclusive frame ranges, by event id) to its MP4 in one decoding pass.

    Returns the paths written, by event id; a clip OpenCV cannot write is logged and left out.
    """
    if not spans:
        return {}
    writers: dict[str, cv2.VideoWriter] = {}
    failed: set[str] = set()
    last = max(end for _, end in spans.values())
    frames = iter(FrameReader(clip, fps))
    try:
        for index, frame in frames:
            if index > last:
                break
            for key, (first, end) in spans.items():
                if not first <= index <= end or key in failed:
                    continue
                writer = writers.get(key)
                if writer is None:
                    out[key].parent.mkdir(parents=True, exist_ok=True)
                    height, width = frame.shape[:2]
                    writer = cv2.VideoWriter(
                        str(out[key]), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height)
                    )
                    if not writer.isOpened():
                        log.warning("cannot write event clip %s (OpenCV has no mp4v encoder?)", out[key])
                        failed.add(key)
                        continue
                    writers[key] = writer
                writer.write(frame)
    finally:
        frames.close()  # type: ignore[attr-defined]
        for writer in writers.values():
            writer.release()
    return {key: str(out[key]) for key in writers}
