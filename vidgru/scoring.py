"""From per-cell logits to one calibrated score per frame.

A frame is as unusual as its most unusual cell. Raw logits mean different things on different cameras, so
they are calibrated on held-out normal frames of the same camera: 0 is a typical normal frame and 1 is
normal's 99th percentile, so one threshold means the same everywhere.

Example::

    raw, cell = frame_scores(logits)
    calibration = Calibration.fit(raw_on_heldout_normal)
    calibrated = calibration(raw)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def frame_scores(cell_logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(T, cells)`` -> raw frame score ``(T,)`` and the index of the cell that gave it ``(T,)``."""
    cell = cell_logits.argmax(1)
    return cell_logits[np.arange(len(cell_logits)), cell], cell


@dataclass(frozen=True)
class Calibration:
    """Raw scores -> calibrated: 0 at the normal footage's median, ``at_q99`` at its 99th percentile."""

    median: float
    q99: float
    frames: int
    at_q99: float = 1.0

    @classmethod
    def fit(cls, raw: np.ndarray, at_q99: float = 1.0) -> Calibration:
        median, q99 = np.quantile(raw, [0.5, 0.99])
        return cls(float(median), float(max(q99, median + 1e-6)), len(raw), at_q99)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return (self.at_q99 * (raw - self.median) / (self.q99 - self.median)).astype(np.float32)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)
