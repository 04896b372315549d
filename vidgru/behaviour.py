"""Behaviour over time: a GRU per region whose hidden state streams for as long as the video lasts.

The short-window GRU of :mod:`vidgru.temporal` sees four frames: enough for speed, blind to anything
that takes longer, such as a person who stays, walks back and forth, or keeps stopping, or a bag that
stays after its owner left. This model takes a step every ``step_s`` seconds. A step is what each region
(a block of motion-grid cells with a ring around it) showed over those frames, on average: how much of it
differs from the empty scene (:mod:`vidgru.occupancy`), how much of that is slow, how much moves, how
fast, and which way. The GRU carries its hidden state from step to step, per camera and per region, from
the start of a video (or a camera's reconnect) on. Memory therefore spans minutes, and the model costs
one GRU step per region every ``step_s``.

``memory`` > 0 cuts that memory to the last ``memory`` steps (a window re-read at every step): the
ablation that shows what the memory does. With ``memory`` 1 the model sees one step at a time.

Example::

    steps = clip_steps(motion, occupancy, grid=(8, 12), regions=(4, 6), stride=5)   # (S, 24, N_STEP)
    logits = model.score(steps)                    # (S, 24), state carried through the clip
    state = BehaviourState()
    logits = model.step(steps[0], state)           # live: one step, state updated in place
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from vidgru.config import BehaviourConfig
from vidgru.motion import MOTION_FEATURES, ORIENTATION_BINS

STEP_FEATURES = ("occupancy", "slow_occupancy", "moving_fraction", "object_speed", "flow_x", "flow_y")
N_STEP = len(STEP_FEATURES)
# Share of a cell (the fullest in the region) that differs from the empty scene when someone stands in
# it: a walker covers a quarter of a 30x30-pixel cell, a bag about a twentieth.
OCCUPIED = 0.04
SLOW = 0.8  # pixels/frame: slower than anyone walks; what stands in a cell this slowly is staying

_MOVING = MOTION_FEATURES.index("moving_fraction")
_OBJECT = MOTION_FEATURES.index("object_speed")
_BIN0 = MOTION_FEATURES.index("orientation_0")
_BINS = slice(_BIN0, _BIN0 + ORIENTATION_BINS)
_CENTRES = (np.arange(ORIENTATION_BINS) + 0.5) * (2 * np.pi / ORIENTATION_BINS)
_CHUNK_STEPS = 512


def run_lengths(mask: np.ndarray) -> np.ndarray:
    """``mask`` ``(T, ...)`` -> int32 of the same shape: how many entries in a row along the first axis it
    has held, up to and including each (0 where it does not)."""
    runs = np.zeros(mask.shape, np.int32)
    current = np.zeros(mask.shape[1:], np.int32)
    for t, row in enumerate(mask):
        current = np.where(row, current + 1, 0)
        runs[t] = current
    return runs


def step_stride(fps: float, step_s: float) -> int:
    """Frames between two steps of the behaviour model."""
    return max(1, round(fps * step_s))


def _pool(a: np.ndarray, grid: tuple[int, int], regions: tuple[int, int], how: str) -> np.ndarray:
    """``(..., rows * cols)`` per cell -> ``(..., regions)``: each region aggregates its block of cells
    and the ring of cells around it, so that regions overlap and someone standing on a border counts
    fully in both."""
    (rows, cols), (r, c) = grid, regions
    cells = a.reshape(*a.shape[:-1], rows, cols)
    padded = np.pad(cells, [(0, 0)] * (cells.ndim - 2) + [(1, 1), (1, 1)], mode="edge")
    shifted = [padded[..., dy : dy + rows, dx : dx + cols] for dy in range(3) for dx in range(3)]
    ring = np.max(shifted, axis=0) if how == "max" else np.mean(shifted, axis=0)
    blocks = ring.reshape(*a.shape[:-1], r, rows // r, c, cols // c)
    pooled = blocks.max(axis=(-3, -1)) if how == "max" else blocks.mean(axis=(-3, -1))
    return pooled.reshape(*a.shape[:-1], r * c)


def frame_features(
    motion: np.ndarray, occupancy: np.ndarray, grid: tuple[int, int], regions: tuple[int, int]
) -> np.ndarray:
    """``(..., cells, N_MOTION)`` flow statistics and ``(..., cells)`` occupancy on the motion grid ->
    ``(..., regions, N_STEP)``: per region, the largest share of a cell that differs from the empty scene,
    the same counting only cells whose objects move slower than walking (someone standing, a bag), the
    share that moves, the fastest object's speed and the mean flow vector (from the magnitude-weighted
    orientation histogram, so that walking left and walking right are opposite).

    Regions are blocks of cells with a ring around them, large enough that someone standing and swaying
    stays in one: a cell of the motion grid is smaller than a person, who then flickers between cells."""
    hist = motion[..., _BINS]
    slow = occupancy * (motion[..., _OBJECT] < SLOW)
    parts = [
        _pool(occupancy, grid, regions, "max"),
        _pool(slow, grid, regions, "max"),
        _pool(motion[..., _MOVING], grid, regions, "mean"),
        _pool(motion[..., _OBJECT], grid, regions, "max"),
        _pool(hist @ np.cos(_CENTRES), grid, regions, "mean"),
        _pool(hist @ np.sin(_CENTRES), grid, regions, "mean"),
    ]
    return np.stack(parts, axis=-1).astype(np.float32)


def clip_steps(
    motion: np.ndarray,
    occupancy: np.ndarray,
    grid: tuple[int, int],
    regions: tuple[int, int],
    stride: int,
) -> np.ndarray:
    """A clip's steps ``(steps, regions, N_STEP)``: each the mean of ``stride`` frames' features, from
    frame 0 on (frames after the last whole step are left for a step that never completes). One frame's
    features flicker with sway and codec noise; half a second's do not."""
    steps = len(motion) // stride
    per_frame = frame_features(motion[: steps * stride], occupancy[: steps * stride], grid, regions)
    return per_frame.reshape(steps, stride, *per_frame.shape[1:]).mean(1)


def region_cell(region: int, occupancy: np.ndarray, grid: tuple[int, int], regions: tuple[int, int]) -> int:
    """The cell of the motion grid, within ``region``, where most stands (for the event's box)."""
    (rows, cols), (r, c) = grid, regions
    h, w = rows // r, cols // c
    top, left = (region // c) * h, (region % c) * w
    block = occupancy.reshape(rows, cols)[top : top + h, left : left + w]
    dy, dx = np.unravel_index(int(np.argmax(block)), block.shape)
    return int((top + dy) * cols + left + dx)


class BehaviourGRU(nn.Module):
    def __init__(self, n_cells: int, hidden: int, position_dim: int) -> None:
        super().__init__()
        self.position = nn.Embedding(n_cells, position_dim)  # cells here are the regions
        self.gru = nn.GRU(N_STEP + position_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(
        self, x: torch.Tensor, cells: torch.Tensor, h0: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: (N, S, N_STEP) sequences of the cells ``(N,)`` -> logits (N, S) and the last state."""
        pos = self.position(cells).unsqueeze(1).expand(-1, x.shape[1], -1)
        out, h = self.gru(torch.cat([x, pos], dim=-1), h0)
        return self.head(out).squeeze(-1), h


@dataclass
class BehaviourState:
    """One stream's memory: each net's hidden state per region (unlimited memory) or the last steps
    (``memory`` > 0), and the frames of the step under way. Empty at a video's start or a reconnect."""

    hidden: list[torch.Tensor] | None = None
    recent: deque[np.ndarray] = field(default_factory=deque)
    pending: list[np.ndarray] = field(default_factory=list)  # this step's frames so far
    logits: np.ndarray | None = None  # the last step's, held until the next step


class BehaviourModel:
    def __init__(
        self,
        nets: list[BehaviourGRU],
        mean: np.ndarray,
        std: np.ndarray,
        n_cells: int,
        memory: int,
    ) -> None:
        self.nets = [n.eval() for n in nets]
        self.mean, self.std = mean.astype(np.float32), std.astype(np.float32)
        self.n_cells = n_cells
        self.memory = memory

    @classmethod
    def build(
        cls, n_cells: int, cfg: BehaviourConfig, mean: np.ndarray, std: np.ndarray, seed: int
    ) -> BehaviourModel:
        nets = []
        for i in range(cfg.ensemble):
            torch.manual_seed(seed * 1000 + 500 + i)
            nets.append(BehaviourGRU(n_cells, cfg.hidden, cfg.position_dim))
        return cls(nets, mean, std, n_cells, cfg.memory)

    def standardise(self, steps: np.ndarray) -> np.ndarray:
        return ((steps - self.mean) / self.std).astype(np.float32)

    @torch.inference_mode()
    def score(self, steps: np.ndarray) -> np.ndarray:
        """``(S, cells, N_STEP)`` raw step features of one clip -> ``(S, cells)`` mean logits."""
        if len(steps) == 0:
            return np.zeros((0, self.n_cells), np.float32)
        x = torch.from_numpy(self.standardise(steps)).transpose(0, 1).contiguous()  # (cells, S, F)
        cells = torch.arange(self.n_cells)
        if self.memory:
            return self._score_windows(x, cells)
        logits = []
        for net in self.nets:
            h, parts = None, []
            for lo in range(0, x.shape[1], _CHUNK_STEPS):
                out, h = net(x[:, lo : lo + _CHUNK_STEPS], cells, h)
                parts.append(out)
            logits.append(torch.cat(parts, dim=1))
        return torch.stack(logits).mean(0).transpose(0, 1).numpy()

    def _score_windows(self, x: torch.Tensor, cells: torch.Tensor) -> np.ndarray:
        """Each step re-read from the last ``memory`` steps only (the first steps repeat step 0)."""
        n, s, d = x.shape
        pad = self.memory - 1
        padded = torch.cat([x[:, :1].expand(n, pad, d), x], dim=1)
        windows = padded.unfold(1, self.memory, 1).permute(0, 1, 3, 2).reshape(n * s, self.memory, d)
        index = cells.repeat_interleave(s)
        logits = torch.stack([net(windows, index)[0][:, -1] for net in self.nets]).mean(0)
        return logits.reshape(n, s).transpose(0, 1).numpy()

    @torch.inference_mode()
    def step(self, features: np.ndarray, state: BehaviourState) -> np.ndarray:
        """One live step: ``(cells, N_STEP)`` raw features -> ``(cells,)`` logits; ``state`` updated."""
        x = torch.from_numpy(self.standardise(features))[:, None, :]  # (cells, 1, F)
        cells = torch.arange(self.n_cells)
        if self.memory:
            if not state.recent:
                state.recent.extend([features] * (self.memory - 1))
            state.recent.append(features)
            while len(state.recent) > self.memory:
                state.recent.popleft()
            window = torch.from_numpy(self.standardise(np.stack(state.recent, axis=1)))
            logits = torch.stack([net(window, cells)[0][:, -1] for net in self.nets]).mean(0)
            return logits.numpy()
        hidden = state.hidden or [None] * len(self.nets)
        outs = [net(x, cells, h) for net, h in zip(self.nets, hidden, strict=True)]
        state.hidden = [h for _, h in outs]
        return torch.stack([logit[:, 0] for logit, _ in outs]).mean(0).numpy()

    def state_dicts(self) -> list[dict[str, torch.Tensor]]:
        return [n.state_dict() for n in self.nets]


def frame_logits(step_logits: np.ndarray, n_frames: int, stride: int) -> np.ndarray:
    """Each frame takes the logits of the last step complete at it (a step is scored at its last frame,
    as live scoring can): ``(steps, cells)`` -> ``(T, cells)``; -inf before the first step is complete."""
    done = (np.arange(n_frames) + 1) // stride - 1
    out = np.full((n_frames, step_logits.shape[1]), -np.inf, np.float32)
    have = (done >= 0) & (done < len(step_logits))
    out[have] = step_logits[done[have]]
    return out
