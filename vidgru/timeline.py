"""An event's score timeline: the calibrated scores from a few seconds before it starts to a few after it
ends, small enough to travel in every record (the optional ``timeline`` field of the schema).

``{"t0": <time of the first point>, "step": <seconds between points>, "scores": [...]}``: ``t0`` uses the
record's own clock (seconds into the video in batch analysis, ISO-8601 UTC live); a point is ``null``
where no frame was scored (frames dropped live). Longer spans are binned to at most ``max_points``
points, each the highest score of its bin, so a peak is never averaged away.

Example (batch: every frame's score is at hand)::

    event.extra["timeline"] = build_timeline(scores, event.start_frame, event.end_frame, fps,
                                             clock=lambda f: round(f / fps, 3))

Example (live: keep a camera's recent scores, build the timeline when the event ends)::

    history = ScoreHistory(fps=10)
    history.append(frame.seq, iso_utc(frame.captured), score)      # every scored frame
    record["timeline"] = history.timeline(event.start_frame, event.end_frame)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

PAD_S = 3.0  # seconds of context before the start and after the end
MAX_POINTS = 300  # bound on the points in one record
MAX_EVENT_S = 600.0  # a live camera's history covers events up to this long (longer ones: their last part)

Clock = Callable[[int], "float | str"]


def build_timeline(
    scores: Sequence[float | None] | np.ndarray,
    start_frame: int,
    end_frame: int,
    fps: float,
    clock: Clock,
    first_frame: int = 0,
    pad_s: float = PAD_S,
    max_points: int = MAX_POINTS,
) -> dict[str, Any] | None:
    """The timeline of frames ``start_frame - pad .. end_frame + pad`` (clipped to what ``scores`` holds).

    ``scores[i]`` is the score of frame ``first_frame + i`` (None or NaN: not scored); ``clock(frame)``
    gives a frame's time as the event's records write it. Returns None if no frame of the span is known.
    """
    values = np.asarray([np.nan if s is None else s for s in scores], dtype=np.float64)
    pad = round(pad_s * fps)
    lo = max(first_frame, start_frame - pad)
    hi = min(first_frame + len(values) - 1, end_frame + pad)
    if hi < lo or fps <= 0:
        return None
    span = values[lo - first_frame : hi - first_frame + 1]
    size = max(1, math.ceil(len(span) / max(1, max_points)))
    if size > 1:
        padded = np.full(math.ceil(len(span) / size) * size, np.nan)
        padded[: len(span)] = span
        bins = padded.reshape(-1, size)
        known = ~np.isnan(bins).all(axis=1)
        span = np.full(len(bins), np.nan)
        span[known] = np.nanmax(bins[known], axis=1)
    return {
        "t0": clock(lo),
        "step": round(size / fps, 6),
        "scores": [None if math.isnan(v) else round(float(v), 3) for v in span],
    }


class ScoreHistory:
    """One live camera's recent ``(seq, time, score)``, enough to draw the timeline of an event that ends.

    ``seq`` counts the camera's sampled frames (gaps are frames dropped); ``time`` is what the records
    carry (ISO-8601 UTC). Holds ``max_event_s + 2 * pad_s`` seconds of frames at ``fps``: a live record
    is written when the event closes, so its timeline runs to the frame that closed it.
    """

    def __init__(
        self, fps: float, pad_s: float = PAD_S, max_event_s: float = MAX_EVENT_S, max_points: int = MAX_POINTS
    ) -> None:
        self.fps, self.pad_s, self.max_points = fps, pad_s, max_points
        self._points: deque[tuple[int, float | str, float]] = deque(
            maxlen=max(1, math.ceil((max_event_s + 2 * pad_s) * fps))
        )

    def append(self, seq: int, time: float | str, score: float) -> None:
        if self._points and seq <= self._points[-1][0]:
            self._points.clear()  # the camera's count restarted: older points belong to another run
        self._points.append((seq, time, score))

    def timeline(self, start_seq: int, end_seq: int) -> dict[str, Any] | None:
        pad = round(self.pad_s * self.fps)
        points = [p for p in self._points if start_seq - pad <= p[0] <= end_seq + pad]
        if not points:
            return None
        first = points[0][0]
        scores: list[float | None] = [None] * (points[-1][0] - first + 1)
        for seq, _, score in points:
            scores[seq - first] = score
        t0 = points[0][1]
        return build_timeline(
            scores, start_seq, end_seq, self.fps, lambda _: t0, first, self.pad_s, self.max_points
        )
