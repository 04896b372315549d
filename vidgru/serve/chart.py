"""An event's score timeline as a hand-drawn SVG chart: the score line, the threshold, the event's span,
and labelled axes (seconds from the event's start, calibrated score). No JavaScript, no build step.

Example::

    chart = score_chart(record["timeline"], record["start_time"], record["end_time"], record["threshold"])
    chart.lines          # SVG polyline point lists, one per run of scored frames
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from vidgru.serve.store import parse_time

WIDTH, HEIGHT = 760, 260
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 52, 16, 14, 40


@dataclass
class Chart:
    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    lines: list[str]  # "x,y x,y ..." for each run of known scores
    threshold: float
    threshold_y: float
    span: tuple[float, float]  # x of the event's start and end
    peak: tuple[float, float, float]  # x, y, score
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    points: int = 0


def _nice_step(extent: float, target: int) -> float:
    raw = max(extent, 1e-9) / max(1, target)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def _ticks(lo: float, hi: float, target: int) -> list[float]:
    step = _nice_step(hi - lo, target)
    first = math.ceil(lo / step - 1e-9) * step
    count = math.floor((hi - first) / step + 1e-9) + 1
    return [round(first + i * step, 10) for i in range(max(0, count))]


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) >= 0.01 or value == 0 else f"{value:.2g}"


def score_chart(
    timeline: dict[str, Any] | None, start_time: Any, end_time: Any, threshold: float
) -> Chart | None:
    """The chart of a record's ``timeline``; None if it has none or its times cannot be read."""
    if not isinstance(timeline, dict):
        return None
    t0, start, end = parse_time(timeline.get("t0")), parse_time(start_time), parse_time(end_time)
    step, scores = timeline.get("step"), timeline.get("scores")
    if t0 is None or start is None or not isinstance(step, int | float) or step <= 0 or not scores:
        return None
    end = start if end is None else end
    known = [(t0 - start + i * step, float(s)) for i, s in enumerate(scores) if isinstance(s, int | float)]
    if not known:
        return None
    x_lo, x_hi = min(t0 - start, 0.0), max(t0 - start + (len(scores) - 1) * step, end - start, 1e-3)
    values = [s for _, s in known]
    y_lo = min(0.0, min(values))
    y_hi = max(max(values), threshold) * 1.08 + 1e-6
    left, right = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
    top, bottom = MARGIN_TOP, HEIGHT - MARGIN_BOTTOM

    def x(t: float) -> float:
        return round(left + (t - x_lo) / (x_hi - x_lo) * (right - left), 1)

    def y(v: float) -> float:
        return round(bottom - (v - y_lo) / (y_hi - y_lo) * (bottom - top), 1)

    lines, run = [], []
    for i, s in enumerate(scores):
        if isinstance(s, int | float):
            run.append(f"{x(t0 - start + i * step)},{y(float(s))}")
        elif run:
            lines.append(" ".join(run))
            run = []
    if run:
        lines.append(" ".join(run))
    peak_t, peak_v = max(known, key=lambda p: p[1])
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        lines=lines,
        threshold=threshold,
        threshold_y=y(threshold),
        span=(x(0.0), x(end - start)),
        peak=(x(peak_t), y(peak_v), round(peak_v, 3)),
        x_ticks=[(x(t), _label(t)) for t in _ticks(x_lo, x_hi, 8)],
        y_ticks=[(y(v), _label(v)) for v in _ticks(y_lo, y_hi, 5)],
        points=len(known),
    )
