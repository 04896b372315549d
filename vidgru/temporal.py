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
    def _score_windows(self, windows: torch.Tensor) -> np.ndarray:
        """(T, cells, W, D) -> (T, cells) mean logit over the ensemble."""
        t, cells, w, d = windows.shape
        flat = windows.reshape(t * cells, w, d)
        index = torch.arange(cells).repeat(t)
        logits = torch.stack([net(flat, index) for net in self.nets]).mean(0)
        return logits.reshape(t, cells).numpy()

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
        seq = torch.from_numpy(np.concatenate([history, descriptors]).astype(np.float32))
        out = []
        for lo in range(0, len(descriptors), _CHUNK_FRAMES):
            hi = min(lo + _CHUNK_FRAMES, len(descriptors))
            windows = seq[lo : hi + pad].unfold(0, self.window, 1).permute(0, 1, 3, 2)
            out.append(self._score_windows(windows))
        if state is not None:
            state.history = seq[len(seq) - pad :].numpy() if pad else seq[:0].numpy()
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
