"""Read frames from a clip with OpenCV, and say where decoding broke if it did.

Example::

    reader = FrameReader(clip)
    for index, frame in reader:   # BGR uint8 frames
        ...
    reader.report.problem          # None, or why decoding stopped early
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidgru.errors import VideoOpenError
from vidgru.sources import DEFAULT_FRAMES_FPS, Clip


@dataclass
class DecodeReport:
    clip: str
    frames: int = 0
    expected: int | None = None
    problem: str | None = None


class FrameReader:
    """Iterates ``(index, frame)`` over a clip. Opening fails fast; a break mid-clip is recorded, not raised.

    ``first`` / ``stop`` read only frames ``first <= index < stop`` (a segment of the clip). Frames before
    ``first`` are decoded and dropped, not seeked past: seeking is inexact in many codecs, and a segment
    must start at exactly the frame the whole clip would have there. A segment that ends at ``stop``
    reports no problem; only a read to the end can tell that a file is truncated.
    """

    def __init__(self, clip: Clip, fps: float | None = None, first: int = 0, stop: int | None = None) -> None:
        self.clip = clip
        self.first, self.stop = first, stop
        self.report = DecodeReport(clip.name)
        self._cap: cv2.VideoCapture | None = None
        self._frame_paths = clip.frame_paths() if clip.kind == "frames" else []
        if clip.kind == "video":
            self._cap = cv2.VideoCapture(str(clip.path))
            if not self._cap.isOpened():
                raise VideoOpenError(
                    f"{clip.path} is not a video OpenCV can read; check the file or convert it"
                )
            count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self.report.expected = count if count > 0 else None
            native = self._cap.get(cv2.CAP_PROP_FPS)
            self.fps = fps or (native if 0 < native < 1000 else DEFAULT_FRAMES_FPS)
        else:
            self.report.expected = len(self._frame_paths)
            self.fps = fps or DEFAULT_FRAMES_FPS

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        frames = self._read_video() if self._cap is not None else self._read_images()
        try:
            for index, frame in enumerate(frames):
                self.report.frames = index + 1
                if frame is None:  # before ``first``: skipped
                    continue
                yield index, frame
                if self.stop is not None and index + 1 >= self.stop:
                    return
        finally:
            frames.close()  # releases the capture at once, also when the segment ends early
        if self.report.frames == 0:
            raise VideoOpenError(f"{self.clip.path} has no decodable frames; check the file or convert it")
        expected = self.report.expected
        if self.report.problem is None and expected and self.report.frames < expected:
            self.report.problem = (
                f"{self.clip.path}: decoding stopped at frame {self.report.frames} of {expected}; "
                "the file is truncated or corrupt after that point (frames before it were analysed)"
            )

    def _read_video(self) -> Generator[np.ndarray | None, None, None]:
        assert self._cap is not None
        try:
            for _ in range(self.first):
                if not self._cap.grab():  # decodes without the copy and colour conversion of read()
                    return
                yield None
            while True:
                ok, frame = self._cap.read()
                if not ok or frame is None:
                    return
                yield frame
        finally:
            self._cap.release()

    def _read_images(self) -> Generator[np.ndarray | None, None, None]:
        shape: tuple[int, ...] | None = None
        yield from (None for _ in self._frame_paths[: self.first])
        for path in self._frame_paths[self.first :]:
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None or (shape is not None and frame.shape != shape):
                why = (
                    "cannot be read"
                    if frame is None
                    else f"has size {frame.shape[1::-1]}, not {shape[1::-1]}"
                )
                self.report.problem = (
                    f"{path} {why}; frames of {self.clip.path} after it were not analysed (fix or remove it)"
                )
                return
            shape = frame.shape
            yield frame


def read_frames(clip: Clip, indices: Iterable[int]) -> dict[int, np.ndarray]:
    """Frames by index (for thumbnails), in one sequential pass: seeking is inexact in many codecs."""
    wanted = set(indices)
    if clip.kind == "frames":
        paths = clip.frame_paths()
        return {i: f for i in wanted if 0 <= i < len(paths) and (f := cv2.imread(str(paths[i]))) is not None}
    found: dict[int, np.ndarray] = {}
    last = max(wanted, default=-1)
    cap = cv2.VideoCapture(str(clip.path))
    try:
        for index in range(last + 1):
            if index in wanted:
                ok, frame = cap.read()
                if ok:
                    found[index] = frame
            else:
                ok = cap.grab()
            if not ok:
                break
        return found
    finally:
        cap.release()


def video_frames(path: str | Path) -> list[np.ndarray]:
    """Every frame of a video file, in order, in memory: for short clips (tests, benchmarks). Analysis
    streams through :class:`FrameReader` instead."""
    path = Path(path)
    return [frame for _, frame in FrameReader(Clip(path.stem, path, "video"))]
