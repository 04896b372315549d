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

from collections.abc import Callable

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


def cell_statistics(
    flow: np.ndarray, grid: tuple[int, int], moving_threshold: float, stride: int = 1
) -> np.ndarray:
    """``(H, W, 2)`` flow -> ``(rows * cols, N_MOTION)`` float32 statistics, from every ``stride``-th pixel of
    each cell each way (flow is smooth over a few pixels, so 2 reads a quarter of them for the same picture)."""
    rows, cols = grid
    height, width = flow.shape[:2]
    ch, cw = height // rows, width // cols
    sampled = flow.reshape(rows, ch, cols, cw, 2)[:, ::stride, :, ::stride]
    ch, cw = sampled.shape[1], sampled.shape[3]
    sampled = np.ascontiguousarray(sampled).reshape(rows * ch, cols * cw, 2)
    mag, ang = cv2.cartToPolar(sampled[..., 0], sampled[..., 1])

    def per_cell(a: np.ndarray) -> np.ndarray:
        return a.reshape(rows, ch, cols, cw).transpose(0, 2, 1, 3).reshape(rows * cols, ch * cw)

    cells_mag = per_cell(mag)
    n_cells, n_px = cells_mag.shape
    out = np.zeros((n_cells, N_MOTION), np.float32)
    # With changed-region flow most cells are still; their statistics are all zero but the neighbourhood's.
    active = np.flatnonzero(cells_mag.max(1) > 0)
    every = len(active) == n_cells
    mags = cells_mag if every else cells_mag[active]
    angles = per_cell(ang) if every else per_cell(ang)[active]
    k = int(0.9 * (n_px - 1))
    bins = (angles * (ORIENTATION_BINS / (2 * np.pi))).astype(np.int64) % ORIENTATION_BINS
    hist = np.bincount(
        (np.arange(len(active))[:, None] * ORIENTATION_BINS + bins).ravel(),
        weights=mags.ravel(),
        minlength=len(active) * ORIENTATION_BINS,
    ).reshape(len(active), ORIENTATION_BINS)
    moving = mags > moving_threshold
    n_moving = moving.sum(1)
    object_speed = np.where(n_moving > 0, (mags * moving).sum(1) / np.maximum(n_moving, 1), 0.0)
    out[active] = np.column_stack(
        [
            mags.mean(1),
            np.partition(mags, k, axis=1)[:, k],
            mags.max(1),
            hist / n_px,
            n_moving / n_px,
            object_speed,
            np.zeros(len(active)),
        ]
    )
    neighbourhood = cv2.blur(out[:, 0].reshape(rows, cols), (3, 3), borderType=cv2.BORDER_REPLICATE)
    out[:, -1] = neighbourhood.ravel()
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


# Changed-region flow. A tile of _TILE pixels has changed when over _CHANGED_SHARE of its pixels did (a
# walker 10 pixels wide moving 1.5 pixels a frame changes about a fifth of the tiles on its edges; single
# noisy pixels change none). Changed tiles are grown by _GROW tiles (flow reaches past the changed pixels:
# a uniform object's inside does not change but moves), and each region is cut out with _PAD pixels of
# context for Farneback's window and pyramid. On Ped2 this costs about 60% of whole-frame flow at 240x360
# and scores as well (0.964/0.969 against 0.965/0.970); with less context (8-pixel pad or 1 tile of growth)
# raw AUC fell to 0.956-0.958.
_TILE, _GROW, _PAD, _CHANGED_SHARE = 8, 2, 16, 0.1
_GROW_KERNEL = np.ones((2 * _GROW + 1, 2 * _GROW + 1), np.uint8)


FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def farneback(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
    return cv2.calcOpticalFlowFarneback(prev, cur, None, 0.5, 3, 15, 3, 5, 1.2, 0)


_DIS_MIN_SIDE = 12  # OpenCV's DIS refuses pictures under 12 pixels both ways


def dis_flow(refinement: int) -> FlowFn:
    """DIS optical flow (Kroeger et al., ECCV 2016): patches matched down to half resolution with 6
    gradient-descent iterations, each scale then refined ``refinement`` times (variational refinement).

    On Ped2 (micro AUC raw / normalised, same GRU) DIS with 1 refinement scored 0.970 / 0.971 against
    Farneback's 0.964 / 0.969, at 2.7 ms per frame of changed regions on one core against 9.8, and as well
    as OpenCV's "fast" preset's 16 iterations and 5 refinements at 60% of their cost. The preset itself
    (quarter resolution) scored 0.904 / 0.919: small walkers' motion was lost. Without refinement (the
    default since 2026-11-30) flow cost 0.7-0.9 ms a frame less and scored 0.004 lower. One instance per
    stream: it is not shareable between threads.
    """
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    dis.setFinestScale(1)
    dis.setGradientDescentIterations(6)
    dis.setVariationalRefinementIterations(refinement)

    def flow(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        if max(prev.shape) < _DIS_MIN_SIDE:
            return np.zeros((*prev.shape, 2), np.float32)
        return dis.calc(np.ascontiguousarray(prev), np.ascontiguousarray(cur), None)

    return flow


def changed_region_flow(
    prev: np.ndarray, cur: np.ndarray, change_threshold: int, flow_fn: FlowFn = farneback
) -> np.ndarray:
    """Flow around the places where the picture changed; zero elsewhere."""
    height, width = cur.shape
    changed = (cv2.absdiff(prev, cur) > change_threshold).astype(np.float32)
    share = cv2.resize(changed, (width // _TILE, height // _TILE), interpolation=cv2.INTER_AREA)
    tiles = cv2.dilate((share > _CHANGED_SHARE).astype(np.uint8), _GROW_KERNEL)
    flow = np.zeros((height, width, 2), np.float32)
    n, _, boxes, _ = cv2.connectedComponentsWithStats(tiles, connectivity=8)
    for x, y, w, h, _ in boxes[1:n]:
        x0, y0 = x * _TILE, y * _TILE
        x1, y1 = min(width, (x + w) * _TILE), min(height, (y + h) * _TILE)
        px0, py0 = max(0, x0 - _PAD), max(0, y0 - _PAD)
        px1, py1 = min(width, x1 + _PAD), min(height, y1 + _PAD)
        region = flow_fn(prev[py0:py1, px0:px1], cur[py0:py1, px0:px1])
        flow[y0:y1, x0:x1] = region[y0 - py0 : y1 - py0, x0 - px0 : x1 - px0]
    return flow


class MotionAnalyzer:
    """Keeps the previous frame of one stream and summarises the flow into each new frame."""

    def __init__(self, cfg: MotionConfig) -> None:
        self.cfg = cfg
        self._prev: np.ndarray | None = None
        self._flow_fn = dis_flow(cfg.dis_refinement) if cfg.method == "dis" else farneback

    @property
    def n_cells(self) -> int:
        return self.cfg.grid[0] * self.cfg.grid[1]

    def reset(self) -> None:
        self._prev = None

    def _flow(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        if self.cfg.change_threshold:
            return changed_region_flow(prev, cur, self.cfg.change_threshold, self._flow_fn)
        return self._flow_fn(prev, cur)

    def _stats(self, flow: np.ndarray) -> np.ndarray:
        return cell_statistics(flow, self.cfg.grid, self.cfg.moving_threshold, self.cfg.stats_stride)

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
