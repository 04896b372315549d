"""Optical flow between consecutive frames, summarised per grid cell.

Each cell gets ``N_MOTION`` numbers: mean, 90th percentile and max flow magnitude, an 8-bin orientation
histogram weighted by magnitude, the fraction of moving pixels, the mean speed of the moving pixels only
(an object's speed, not diluted by how much of the cell it covers), and the 3x3 neighbourhood's mean speed.

Example::

    motion = MotionAnalyzer(MotionConfig())
    for frame in frames:
        sample = motion.push(frame)      # sample.stats: (cells, N_MOTION)
"""

from __future__ import annotations

import cv2
import numpy as np

from vidgru.config import MotionConfig

ORIENTATION_BINS = 8
MOTION_FEATURES = (
    "mean_speed",
    "p90_speed",
    "max_speed",
    *(f"orientation_{i}" for i in range(ORIENTATION_BINS)),
    "moving_fraction",
    "object_speed",
    "neighbourhood_speed",
)
N_MOTION = len(MOTION_FEATURES)


def cell_statistics(flow: np.ndarray, grid: tuple[int, int], moving_threshold: float) -> np.ndarray:
    """``(H, W, 2)`` flow -> ``(rows * cols, N_MOTION)`` float32 statistics."""
    rows, cols = grid
    height, width = flow.shape[:2]
    ch, cw = height // rows, width // cols
    mag, ang = cv2.cartToPolar(flow[..., 0], flow[..., 1])

    def per_cell(a: np.ndarray) -> np.ndarray:
        return a.reshape(rows, ch, cols, cw).transpose(0, 2, 1, 3).reshape(rows * cols, ch * cw)

    cells_mag = per_cell(mag)
    n_px = cells_mag.shape[1]
    k = int(0.9 * (n_px - 1))
    mean = cells_mag.mean(1)
    p90 = np.partition(cells_mag, k, axis=1)[:, k]
    peak = cells_mag.max(1)
    bins = (ang * (ORIENTATION_BINS / (2 * np.pi))).astype(np.int64) % ORIENTATION_BINS
    cell_index = np.arange(rows * cols)[:, None]
    hist = (
        np.bincount(
            (cell_index * ORIENTATION_BINS + per_cell(bins)).ravel(),
            weights=cells_mag.ravel(),
            minlength=rows * cols * ORIENTATION_BINS,
        ).reshape(rows * cols, ORIENTATION_BINS)
        / n_px
    )
    moving = cells_mag > moving_threshold
    n_moving = moving.sum(1)
    object_speed = np.where(n_moving > 0, (cells_mag * moving).sum(1) / np.maximum(n_moving, 1), 0.0)
    neighbourhood = cv2.blur(
        mean.reshape(rows, cols).astype(np.float32), (3, 3), borderType=cv2.BORDER_REPLICATE
    )
    out = np.column_stack(
        [mean, p90, peak, hist, n_moving / n_px, object_speed, neighbourhood.ravel()]
    ).astype(np.float32)
    return out


_LINEAR_IN_SPEED = np.array([name != "moving_fraction" for name in MOTION_FEATURES])


def speed_up(stats: np.ndarray, factor: float) -> np.ndarray:
    """The statistics of the same scene with everything moving ``factor`` times faster.

    Every statistic but the moving fraction is linear in flow magnitude. The moving pixels stay the same:
    a faster object does not cover more of the cell. (Recomputing the statistics from a scaled flow field
    pushes blur and noise over the moving threshold, and the GRU learned that artefact instead of speed:
    Ped2 AUC fell from 0.966 to 0.921. Flow across two frames was worse still.)
    """
    return np.where(_LINEAR_IN_SPEED, stats * np.float32(factor), stats).astype(np.float32)


class MotionAnalyzer:
    """Keeps the previous frame of one stream and summarises the flow into each new frame."""

    def __init__(self, cfg: MotionConfig) -> None:
        self.cfg = cfg
        self._prev: np.ndarray | None = None
        if cfg.method == "dis":
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)

    @property
    def n_cells(self) -> int:
        return self.cfg.grid[0] * self.cfg.grid[1]

    def reset(self) -> None:
        self._prev = None

    def _flow(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        if self.cfg.method == "dis":
            return self._dis.calc(prev, cur, None)
        return cv2.calcOpticalFlowFarneback(prev, cur, None, 0.5, 3, 15, 3, 5, 1.2, 0)

    def _stats(self, flow: np.ndarray) -> np.ndarray:
        return cell_statistics(flow, self.cfg.grid, self.cfg.moving_threshold)

    def push(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Statistics ``(cells, N_MOTION)`` of the flow from the previous frame into this one."""
        height, width = self.cfg.size
        if frame_bgr.shape[:2] != (height, width):
            frame_bgr = cv2.resize(frame_bgr, (width, height), interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        # Forward flow is defined on the previous frame's pixels, so a fast object's box lags it by up to
        # a cell. Backward flow places motion where objects are now, but scored 0.957/0.962 on Ped2
        # against 0.965/0.970, so forward it is. The first frame has zero flow.
        flow = self._flow(self._prev if self._prev is not None else gray, gray)
        self._prev = gray
        return self._stats(flow)
