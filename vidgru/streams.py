"""Live camera streams: open with timeouts, sample at the analysis rate, reopen forever with backoff.

A :class:`CameraStream` reads one camera (RTSP, HTTP MJPEG/HLS, a webcam, or a file replayed in real
time) with OpenCV's FFmpeg backend. A stream that errors, ends, or delivers no frame for
``stall_timeout_s`` is released and reopened after an exponential backoff, forever; each change between
online and offline is reported once. Frames go into :class:`LatestFrames`, a bounded buffer that drops
its oldest frame when analysis falls behind, so a frame is never analysed long after its capture.

Example::

    buffer = LatestFrames(capacity=10)
    stream = CameraStream("cam1", "rtsp://10.0.0.5/live", StreamSettings(), analysis_fps=10)
    threading.Thread(target=stream.run, args=(buffer.put, buffer.put_status, stop)).start()
    for item in buffer.take(wait_s=0.1):   # CapturedFrame or StatusChange, in order
        ...
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from vidgru.config.cameras import StreamSettings
from vidgru.errors import StreamOpenError

log = logging.getLogger(__name__)

SourceKind = Literal["stream", "device", "file"]


@dataclass
class CapturedFrame:
    seq: int  # sampled frames of this camera, counted across reconnects
    captured: float  # wall clock when it was read, seconds since the epoch
    image: np.ndarray  # BGR
    restart: bool  # the first frame since the stream was (re)opened


@dataclass
class StatusChange:
    online: bool
    time: float  # seconds since the epoch
    message: str
    after_seq: int  # the last frame sampled before the change


class Backoff:
    """Waits of ``initial``, then twice as long each time, capped at ``maximum``; reset on success."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial, self.maximum = initial, maximum
        self._next = initial

    def next(self) -> float:
        wait, self._next = self._next, min(self._next * 2, self.maximum)
        return wait

    def reset(self) -> None:
        self._next = self.initial


class FrameSampler:
    """Picks the frames to analyse at ``rate`` frames/s.

    With a known native frame rate it decimates by frame count, which keeps the interval even (the flow
    statistics the model learned depend on it); otherwise by arrival time.
    """

    def __init__(self, rate: float, native_fps: float | None) -> None:
        self.rate = rate
        self.native = native_fps if native_fps and 0 < native_fps <= 240 else None
        self._due: float | None = None

    def keep(self, index: int, now: float) -> bool:
        if self.native is not None:
            if self.rate >= self.native:
                return True
            ratio = self.rate / self.native
            return index == 0 or math.floor(index * ratio) != math.floor((index - 1) * ratio)
        period = 1.0 / self.rate
        if self._due is None or now - self._due > period:  # first frame, or far behind: restart the schedule
            self._due = now + period
            return True
        if now >= self._due - 0.25 * period:  # arrival jitter must not halve the rate
            self._due += period
            return True
        return False


class LatestFrames:
    """A thread-safe buffer of the newest ``capacity`` frames of one camera, plus its status changes.

    Adding a frame to a full buffer drops the oldest one and counts it. Status changes are never dropped.
    """

    def __init__(self, capacity: int) -> None:
        self._frames: deque[CapturedFrame] = deque(maxlen=max(1, capacity))
        self._statuses: list[StatusChange] = []
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, frame: CapturedFrame) -> None:
        with self._cond:
            if len(self._frames) == self._frames.maxlen:
                self.dropped += 1
            self._frames.append(frame)
            self._cond.notify_all()

    def put_status(self, status: StatusChange) -> None:
        with self._cond:
            self._statuses.append(status)
            self._cond.notify_all()

    def take(self, wait_s: float) -> list[CapturedFrame | StatusChange]:
        """Everything buffered, oldest first; waits up to ``wait_s`` for something if empty."""
        with self._cond:
            self._cond.wait_for(lambda: bool(self._frames or self._statuses), timeout=wait_s)
            items: list[CapturedFrame | StatusChange] = [*self._frames, *self._statuses]
            self._frames.clear()
            self._statuses.clear()
        return sorted(items, key=lambda i: (i.seq, 0) if isinstance(i, CapturedFrame) else (i.after_seq, 1))


def open_capture(target: str | int, kind: SourceKind, settings: StreamSettings) -> cv2.VideoCapture:
    """Open a stream, device or file with OpenCV; raises :class:`StreamOpenError` with the reason."""
    if kind == "device":
        cap = cv2.VideoCapture(int(target))
    else:
        # FFmpeg reads its options from the environment; one setting per process is all vidgru needs.
        os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", f"rtsp_transport;{settings.rtsp_transport}")
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(settings.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(settings.stall_timeout_s * 1000),
        ]
        cap = cv2.VideoCapture(str(target), cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        raise StreamOpenError(f"cannot open {target}")
    return cap


class CameraStream:
    """Reads one camera until ``stop`` is set; a file source returns at its end."""

    def __init__(
        self, camera: str, target: str | int, settings: StreamSettings, analysis_fps: float, kind: SourceKind
    ) -> None:
        self.camera, self.target, self.settings, self.kind = camera, target, settings, kind
        self.analysis_fps = analysis_fps
        self.frames_in = 0  # every frame decoded, sampled or not
        self.open_attempts = 0
        self.online: bool | None = None  # None until the first open succeeds or fails
        self.finished = False
        self._seq = -1

    def run(
        self,
        on_frame: Callable[[CapturedFrame], None],
        on_status: Callable[[StatusChange], None],
        stop: threading.Event,
    ) -> None:
        backoff = Backoff(self.settings.backoff_initial_s, self.settings.backoff_max_s)
        while not stop.is_set():
            self.open_attempts += 1
            asked = time.monotonic()
            try:
                cap = open_capture(self.target, self.kind, self.settings)
                log.info("%s: opened in %.1f s", self.camera, time.monotonic() - asked)
            except StreamOpenError as err:
                log.info("%s: open failed after %.1f s", self.camera, time.monotonic() - asked)
                self._change(False, str(err), on_status)
                stop.wait(backoff.next())
                continue
            try:
                problem = self._read(cap, on_frame, on_status, backoff, stop)
            finally:
                cap.release()
            if problem is None:  # stopped, or a replayed file ended
                return
            self._change(False, problem, on_status)
            stop.wait(backoff.next())

    def _read(
        self,
        cap: cv2.VideoCapture,
        on_frame: Callable[[CapturedFrame], None],
        on_status: Callable[[StatusChange], None],
        backoff: Backoff,
        stop: threading.Event,
    ) -> str | None:
        """Read until stopped (None), a file's end (None), or a fault (its description)."""
        native = cap.get(cv2.CAP_PROP_FPS)
        sampler = FrameSampler(self.analysis_fps, native)
        pace = self.kind == "file" and sampler.native is not None
        started, index, restart = time.monotonic(), 0, True
        while not stop.is_set():
            if pace:  # a file plays at its own rate, as a camera would deliver it
                stop.wait(max(0.0, started + index / native - time.monotonic()))
            asked = time.monotonic()
            grabbed = cap.grab()
            waited = time.monotonic() - asked
            # FFmpeg's read timeout interrupts a stalled read, yet OpenCV may still report a frame (the
            # last one again), so the time the read took is what tells a stall.
            if waited >= 0.9 * self.settings.stall_timeout_s:
                return f"no frame for {waited:.0f} s"
            if not grabbed:
                if self.kind == "file" and index > 0:
                    log.info("%s: end of %s after %d frames", self.camera, self.target, index)
                    self.finished = True
                    return None
                return "the stream ended or failed"
            now = time.time()
            self.frames_in += 1
            if index == 0:
                self._change(True, f"streaming {self._describe(cap)}", on_status)
                backoff.reset()
            keep = sampler.keep(index, time.monotonic())
            index += 1
            if not keep:
                continue
            ok, image = cap.retrieve()
            if not ok or image is None:
                return "a frame could not be decoded"
            self._seq += 1
            on_frame(CapturedFrame(self._seq, now, image, restart))
            restart = False
        return None

    def _describe(self, cap: cv2.VideoCapture) -> str:
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = cap.get(cv2.CAP_PROP_FPS)
        rate = f" at {fps:g} fps" if 0 < fps <= 240 else ""
        return f"{width}x{height}{rate}, analysing {self.analysis_fps:g} fps"

    def _change(self, online: bool, message: str, on_status: Callable[[StatusChange], None]) -> None:
        if self.online is online:
            return
        self.online = online
        log.log(
            logging.INFO if online else logging.WARNING,
            "%s %s: %s",
            self.camera,
            "online" if online else "offline",
            message,
        )
        on_status(StatusChange(online, time.time(), message, self._seq))
