"""The temporal model: a GRU that reads each cell's recent descriptors and scores how unusual they are.

One small GRU is shared by all cells; a learned position embedding lets the same motion be normal on a
walkway and unusual on the grass. An ensemble of seeds averages logits. The model scores a whole clip at
once (:meth:`TemporalModel.score`) or one frame at a time with a per-stream state (:meth:`step`); both give
the same numbers.

Example::

    model = TemporalModel.build(in_dim=22, n_cells=96, cfg=TemporalConfig())
    logits = model.score(descriptors)          # (T, cells)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vidgru.config import TemporalConfig

_CHUNK_FRAMES = 256  # bounds memory on long clips
_GATE_CHUNK = 16  # frames of windows whose gates are computed together (measured best of 4-200)


class CellGRU(nn.Module):
    def __init__(self, in_dim: int, n_cells: int, hidden: int, position_dim: int) -> None:
        super().__init__()
        self.position = nn.Embedding(n_cells, position_dim) if position_dim else None
        self.gru = nn.GRU(in_dim + position_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        """``x``: (N, W, D) windows, ``cells``: (N,) cell index -> (N,) logit of the window's last frame."""
        if self.position is not None:
            pos = self.position(cells).unsqueeze(1).expand(-1, x.shape[1], -1)
            x = torch.cat([x, pos], dim=-1)
        out, _ = self.gru(x)
        return self.head(out[:, -1]).squeeze(-1)


def _window_logits(net: CellGRU, seq: torch.Tensor, window: int) -> torch.Tensor:
    """``net``'s logit for the last frame of every window of ``window`` frames in ``seq`` (T', cells, D),
    computed with nn.GRU's equations (r, z, n gates; zero initial state) -> (T' - window + 1, cells)."""
    gru, hidden = net.gru, net.gru.hidden_size
    w_ih, w_hh, b_ih, b_hh = gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0
    d = seq.shape[-1]
    bias = b_ih if net.position is None else b_ih + net.position.weight @ w_ih[:, d:].T  # (cells, 3H)
    projected = seq @ w_ih[:, :d].T + bias  # (T', cells, 3H): each frame's input once, for every window
    frames = len(seq) - window + 1
    logits = []
    # Windows in chunks of frames: the gate tensors of a chunk stay in the CPU's cache.
    for lo in range(0, frames, _GATE_CHUNK):
        hi = min(frames, lo + _GATE_CHUNK)
        h: torch.Tensor | None = None
        for k in range(window):
            gi = projected[lo + k : hi + k]
            gh = (
                b_hh.expand_as(gi)
                if h is None
                else torch.addmm(b_hh, h.reshape(-1, hidden), w_hh.T).view_as(gi)
            )
            i_r, i_z, i_n = gi.chunk(3, -1)
            h_r, h_z, h_n = gh.chunk(3, -1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            # tanh(x) = 2 sigmoid(2x) - 1: torch's CPU tanh took 130 us on these tensors, sigmoid 21
            n = torch.sigmoid((i_n + r * h_n).mul_(2)).mul_(2).sub_(1)
            h = n - z * n if h is None else n + z * (h - n)  # (1 - z) * n + z * h
        assert h is not None
        logits.append(net.head(h).squeeze(-1))
    return torch.cat(logits)


@dataclass
class StreamState:
    """The last ``window - 1`` descriptors of one stream; empty at the start of a clip or after a reconnect."""

    history: np.ndarray | None = None


class TemporalModel:
    def __init__(self, nets: list[CellGRU], window: int, n_cells: int) -> None:
        self.nets = [n.eval() for n in nets]
        self.window = window
        self.n_cells = n_cells

    @classmethod
    def build(cls, in_dim: int, n_cells: int, cfg: TemporalConfig) -> TemporalModel:
        nets = []
        for i in range(cfg.ensemble):
            torch.manual_seed(cfg.seed * 1000 + i)
            nets.append(CellGRU(in_dim, n_cells, cfg.hidden, cfg.position_dim))
        return cls(nets, cfg.window, n_cells)

    @torch.inference_mode()
    def _score_sequence(self, seq: torch.Tensor) -> np.ndarray:
        """``(T + W - 1, cells, D)`` -> ``(T, cells)`` mean logit over the ensemble of each window of W frames.

        The GRU's equations run here on all windows at once instead of through ``nn.GRU``: each frame's
        input projection is computed once and shared by the W windows that contain it, and the first step
        starts from a zero state, which makes scoring about twice as fast as ``CellGRU.forward`` on every
        window, with the same logits (to float rounding; a test compares them)."""
        frames = len(seq) - self.window + 1
        total = torch.zeros(frames, self.n_cells)
        for net in self.nets:
            total += _window_logits(net, seq, self.window)
        return (total / len(self.nets)).numpy()

    def score(self, descriptors: np.ndarray, state: StreamState | None = None) -> np.ndarray:
        """``(T, cells, D)`` -> ``(T, cells)`` logits. The first frames repeat frame 0 as their history,
        unless ``state`` carries history from earlier frames of the same stream; it is updated in place."""
        if len(descriptors) == 0:
            return np.zeros((0, self.n_cells), np.float32)
        pad = self.window - 1
        if state is not None and state.history is not None:
            history = state.history
        else:
            history = np.repeat(descriptors[:1], pad, axis=0)
        out = []
        # Each chunk is its frames with the pad frames before them, so the whole clip is never copied.
        for lo in range(0, len(descriptors), _CHUNK_FRAMES):
            chunk = np.concatenate([history, descriptors[lo : lo + _CHUNK_FRAMES]]).astype(
                np.float32, copy=False
            )
            out.append(self._score_sequence(torch.from_numpy(chunk)))
            history = chunk[len(chunk) - pad :]
        if state is not None:
            state.history = history.copy()
        return np.concatenate(out)

    @torch.inference_mode()
    def score_cell_windows(self, windows: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """``(N, W, D)`` windows of the cells ``(N,)`` -> ``(N,)`` mean logit of each window's last frame."""
        x = torch.from_numpy(np.ascontiguousarray(windows, np.float32))
        index = torch.from_numpy(np.asarray(cells, np.int64))
        return torch.stack([net(x, index) for net in self.nets]).mean(0).numpy()

    def step(self, descriptor: np.ndarray, state: StreamState) -> np.ndarray:
        """Score one frame ``(cells, D)`` of a live stream -> ``(cells,)`` logits."""
        return self.score(descriptor[None], state)[0]

    def state_dicts(self) -> list[dict[str, torch.Tensor]]:
        return [n.state_dict() for n in self.nets]
