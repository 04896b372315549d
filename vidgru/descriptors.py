"""Per-cell descriptors: standardised motion statistics plus the top principal components of CNN features.

Example::

    space = DescriptorSpace.fit(motion, appearance, components=8)
    desc = space.transform(motion, appearance)   # (T, cells, N_MOTION + 8)
    desc = space.transform(features.motion, features.appearance, features.appearance_rows)  # CNN frames only
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidgru.motion import MOTION_FEATURES


@dataclass
class DescriptorSpace:
    motion_mean: np.ndarray
    motion_std: np.ndarray
    pca_mean: np.ndarray  # (channels,)
    pca_components: np.ndarray  # (k, channels)
    pca_std: np.ndarray  # (k,)

    @property
    def dim(self) -> int:
        return len(self.motion_mean) + len(self.pca_components)

    @property
    def names(self) -> list[str]:
        return [*MOTION_FEATURES, *(f"appearance_pc{i}" for i in range(len(self.pca_components)))]

    @classmethod
    def fit(
        cls,
        motion: np.ndarray,
        appearance: np.ndarray,
        components: int,
        max_rows: int = 200_000,
        seed: int = 0,
    ) -> DescriptorSpace:
        """Fit on ``(..., N_MOTION)`` motion and ``(..., channels)`` appearance rows of normal footage."""
        rng = np.random.default_rng(seed)
        m = motion.reshape(-1, motion.shape[-1])
        a = appearance.reshape(-1, appearance.shape[-1])
        if len(m) > max_rows:
            pick = rng.choice(len(m), max_rows, replace=False)
            m, a = m[pick], a[pick]
        motion_std = m.std(0)
        mean = a.mean(0)
        if components:
            _, _, vt = np.linalg.svd(a - mean, full_matrices=False)
            comps = vt[:components]
            proj_std = ((a - mean) @ comps.T).std(0)
        else:
            comps = np.zeros((0, a.shape[1]), np.float32)
            proj_std = np.zeros(0, np.float32)
        return cls(
            motion_mean=m.mean(0).astype(np.float32),
            motion_std=np.maximum(motion_std, 1e-3).astype(np.float32),
            pca_mean=mean.astype(np.float32),
            pca_components=comps.astype(np.float32),
            pca_std=np.maximum(proj_std, 1e-3).astype(np.float32),
        )

    def transform(
        self, motion: np.ndarray, appearance: np.ndarray, rows: np.ndarray | None = None
    ) -> np.ndarray:
        """``(..., N_MOTION)`` motion and ``(..., channels)`` appearance -> ``(..., dim)`` float32.

        ``rows``: each frame's row in ``appearance``, when that holds the CNN's frames only; they are
        projected once each and then repeated. The result is written in place, without temporaries of its
        size: on a long video it is the largest array the analysis makes."""
        n_motion = len(self.motion_mean)
        out = np.empty((*motion.shape[:-1], self.dim), np.float32)
        np.subtract(motion, self.motion_mean, out=out[..., :n_motion])
        out[..., :n_motion] /= self.motion_std
        if len(self.pca_components):
            projected = ((appearance - self.pca_mean) @ self.pca_components.T) / self.pca_std
            out[..., n_motion:] = projected if rows is None else projected[rows]
        return out

    def transform_frames(
        self, motion: np.ndarray, appearance: np.ndarray, rows: np.ndarray, frames: np.ndarray
    ) -> np.ndarray:
        """Descriptors of a clip's ``frames`` (indices) only, projecting only the CNN rows they use: a long
        video is scored a stretch at a time, and its descriptors are never all in memory at once."""
        needed, index = np.unique(rows[frames], return_inverse=True)
        return self.transform(motion[frames], appearance[needed], index)

    def state(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> DescriptorSpace:
        return cls(**{k: np.asarray(v, np.float32) for k, v in state.items()})
