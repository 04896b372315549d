"""Fit a model on normal footage only.

1. Split each normal clip: the head trains, the tail (``holdout_fraction``) calibrates.
2. Fit the descriptor space (motion standardisation, PCA of CNN features) on the heads.
3. Windows of ``window`` frames per cell: normal ones are negatives; the same windows recomputed as if
   things moved faster (``speedups``) are positives, kept only where something moved.
4. Train an ensemble of :class:`~vidgru.temporal.CellGRU` with binary cross-entropy.
5. Calibrate frame scores on the held-out tails.

Example::

    model = fit_model([features_of_normal_clip, ...], VidgruConfig())
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vidgru.batches import ClipFeatures
from vidgru.behaviour import BehaviourModel, clip_steps, frame_logits, step_stride
from vidgru.behaviour_training import fit_behaviour
from vidgru.config import VidgruConfig
from vidgru.descriptors import DescriptorSpace
from vidgru.errors import TrainingError
from vidgru.motion import MOTION_FEATURES, speed_up
from vidgru.occupancy import SceneBackground
from vidgru.scoring import Calibration, frame_scores
from vidgru.tampering import TamperReference
from vidgru.temporal import StreamState, TemporalModel
from vidgru.track_model import FrameTracks, TrackModel
from vidgru.track_training import fit_set_scales, fit_tracks, unseen_by
from vidgru.tracks import clip_tracks

log = logging.getLogger(__name__)
# The shortest piece that fold training cuts a long recording into: a few people's paths from end to end.
MIN_PIECE_S = 20.0

Progress = Callable[[str, int, int], None]
_MOVING = MOTION_FEATURES.index("moving_fraction")
MIN_TRAIN_FRAMES = 8
SCORE_FRAMES = 2048  # frames whose descriptors are made and scored at a time


@dataclass
class TrainedModel:
    config: VidgruConfig
    descriptors: DescriptorSpace
    temporal: TemporalModel
    calibration: Calibration
    weights: dict[str, str]
    meta: dict[str, object]
    tamper: TamperReference | None = None  # the camera's normal picture, for tampering detection
    background: SceneBackground | None = None  # the empty scene, for cell occupancy
    behaviour: BehaviourModel | None = None  # the GRU with streaming memory (vidgru.behaviour)
    behaviour_calibration: Calibration | None = None
    tracks: TrackModel | None = None  # the GRU per tracked object (vidgru.track_model)
    tracks_calibration: Calibration | None = None

    def cell_logits(self, features: ClipFeatures, stretch: int = SCORE_FRAMES) -> np.ndarray:
        """``(T, cells)``: the short-window GRU's logits. Descriptors are made and scored ``stretch`` frames
        at a time, the GRU's state carried between stretches (the same logits as the clip at once), so a
        long video's are never all in memory."""
        state = StreamState()
        logits = [
            self.temporal.score(
                self.descriptors.transform_frames(
                    features.motion,
                    features.appearance,
                    features.appearance_rows,
                    np.arange(lo, min(lo + stretch, features.n_frames)),
                ),
                state,
            )
            for lo in range(0, features.n_frames, stretch)
        ]
        return np.concatenate(logits) if logits else np.zeros((0, self.temporal.n_cells), np.float32)

    def behaviour_logits(self, features: ClipFeatures) -> np.ndarray | None:
        """``(T, regions)``: each frame's behaviour logits (the last step complete at it; -inf before the
        first), the GRU state carried from the clip's first frame; None without a behaviour model or
        occupancy."""
        if self.behaviour is None or features.occupancy is None or features.n_frames == 0:
            return None
        stride = step_stride(features.fps, self.config.behaviour.step_s)
        cfg = self.config
        steps = clip_steps(
            features.motion, features.occupancy, cfg.motion.grid, cfg.behaviour.regions, stride
        )
        return frame_logits(self.behaviour.score(steps), features.n_frames, stride)

    def track_logits(self, features: ClipFeatures) -> FrameTracks | None:
        """``(T,)``: each frame's highest logit among the tracks of the last step complete at it (-inf
        where there is none), that track's box ``(T, 4)`` in fractions of the picture (NaN where none), its
        id, and the frames each track is in view (:meth:`TrackModel.frame_tracks`); None without a track
        model or detections."""
        if self.tracks is None or features.detections is None or features.n_frames == 0:
            return None
        stride = step_stride(features.fps, self.config.behaviour.step_s)
        tracks = clip_tracks(features.detections, stride, features.fps)
        return self.tracks.frame_tracks(tracks, features.n_frames, stride)


def _split(features: ClipFeatures, holdout: float) -> int:
    """Index where a clip's held-out tail starts."""
    return max(1, round(features.n_frames * (1 - holdout)))


def _windows(desc: np.ndarray, ends: np.ndarray, cells: np.ndarray, window: int) -> np.ndarray:
    """Gather ``(N, window, D)`` windows of ``desc`` (T, cells, D) ending at ``ends`` for ``cells``;
    frames before 0 repeat frame 0, as in scoring."""
    offsets = np.arange(-window + 1, 1)
    times = np.clip(ends[:, None] + offsets[None, :], 0, None)
    return desc[times, cells[:, None]]


def _sample(n: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(n, limit, replace=False) if n > limit else np.arange(n)


def build_training_set(
    heads: list[ClipFeatures], space: DescriptorSpace, cfg: VidgruConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return windows ``(N, W, D)``, their cell indices ``(N,)`` and labels ``(N,)`` (1 = synthetic anomaly)."""
    window = cfg.temporal.window
    neg_x, neg_c, pos_x, pos_c = [], [], [], []
    for f in heads:
        desc = space.transform(f.motion, f.appearance, f.appearance_rows)
        t_idx, c_idx = np.meshgrid(np.arange(f.n_frames), np.arange(desc.shape[1]), indexing="ij")
        t_idx, c_idx = t_idx.ravel(), c_idx.ravel()
        neg_x.append(_windows(desc, t_idx, c_idx, window))
        neg_c.append(c_idx)
        for factor in cfg.temporal.speedups:
            fast = speed_up(f.motion, factor)
            moving = fast[t_idx, c_idx, _MOVING] > 0.02
            fake = space.transform(fast, f.appearance, f.appearance_rows)
            pos_x.append(_windows(fake, t_idx[moving], c_idx[moving], window))
            pos_c.append(c_idx[moving])
    nx, nc = np.concatenate(neg_x), np.concatenate(neg_c)
    px, pc = np.concatenate(pos_x), np.concatenate(pos_c)
    if len(px) == 0:
        raise TrainingError(
            "nothing moves in the normal footage, so there is no motion to learn; train on footage with activity"
        )
    limit = cfg.temporal.max_windows
    keep_n, keep_p = _sample(len(nx), limit, rng), _sample(len(px), limit, rng)
    x = np.concatenate([nx[keep_n], px[keep_p]])
    c = np.concatenate([nc[keep_n], pc[keep_p]])
    y = np.concatenate([np.zeros(len(keep_n), np.float32), np.ones(len(keep_p), np.float32)])
    return x, c, y


def train_ensemble(
    model: TemporalModel,
    x: np.ndarray,
    cells: np.ndarray,
    y: np.ndarray,
    cfg: VidgruConfig,
    progress: Progress | None = None,
) -> None:
    tc = cfg.temporal
    xt, ct, yt = torch.from_numpy(x), torch.from_numpy(cells).long(), torch.from_numpy(y)
    pos_weight = torch.tensor((len(y) - y.sum()) / max(y.sum(), 1.0))
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    steps_per_epoch = (len(y) + tc.batch_size - 1) // tc.batch_size
    total = steps_per_epoch * tc.epochs * len(model.nets)
    done = 0
    for i, net in enumerate(model.nets):
        gen = torch.Generator().manual_seed(tc.seed * 1000 + i)
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=tc.learning_rate)
        for _ in range(tc.epochs):
            order = torch.randperm(len(y), generator=gen)
            for lo in range(0, len(y), tc.batch_size):
                idx = order[lo : lo + tc.batch_size]
                opt.zero_grad()
                loss = loss_fn(net(xt[idx], ct[idx]), yt[idx])
                loss.backward()
                opt.step()
                done += 1
                if progress and done % 20 == 0:
                    progress("training GRU", done, total)
        net.eval()
        log.info("GRU %d/%d trained, last batch loss %.4f", i + 1, len(model.nets), loss.item())
    if progress:
        progress("training GRU", total, total)


def fit_model(
    clips: list[ClipFeatures],
    cfg: VidgruConfig,
    weights: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> TrainedModel:
    tc = cfg.temporal
    total_frames = sum(f.n_frames for f in clips)
    if total_frames < MIN_TRAIN_FRAMES * 2:
        raise TrainingError(
            f"only {total_frames} frames of normal footage; give at least {MIN_TRAIN_FRAMES * 2} "
            "(a minute or more of typical activity is better)"
        )
    rng = np.random.default_rng(tc.seed)
    torch.manual_seed(tc.seed)
    splits = [_split(f, tc.holdout_fraction) for f in clips]
    heads = [_slice(f, 0, s) for f, s in zip(clips, splits, strict=True)]
    tails = [_slice(f, s, f.n_frames) for f, s in zip(clips, splits, strict=True) if s < f.n_frames]
    space = DescriptorSpace.fit(
        np.concatenate([h.motion for h in heads]),
        np.concatenate([h.frame_appearance() for h in heads]),
        tc.appearance_components,
        seed=tc.seed,
    )
    x, c, y = build_training_set(heads, space, cfg, rng)
    log.info("training on %d windows (%d synthetic anomalies)", len(y), int(y.sum()))
    n_cells = clips[0].motion.shape[1]
    temporal = TemporalModel.build(space.dim, n_cells, tc)
    train_ensemble(temporal, x, c, y, cfg, progress)
    model = TrainedModel(cfg, space, temporal, Calibration(0.0, 1.0, 0), weights or {}, {})
    # Calibrating on the heads would understate normal scores, since the GRU has seen them.
    held_out = tails or heads
    raw = np.concatenate([frame_scores(model.cell_logits(f))[0] for f in held_out])
    model.calibration = Calibration.fit(raw)
    behaviour_meta: dict[str, object] = {}
    if cfg.behaviour.enabled and cfg.behaviour.region_model and all(f.occupancy is not None for f in clips):
        model.behaviour, behaviour_meta = fit_behaviour(
            [(h.motion, h.occupancy) for h in heads if h.occupancy is not None],
            cfg.motion.grid,
            clips[0].fps,
            cfg.behaviour,
            tc.seed,
            progress,
        )
        # Scored over whole clips and read on their held-out tails: the tails are unseen, and their state
        # has run as long as it does in use, not from a fresh start.
        tail_scores = []
        for f, split in zip(clips, splits, strict=True):
            logits = model.behaviour_logits(f)
            if logits is not None and split < f.n_frames:
                tail_scores.append(frame_scores(logits[split:])[0])
        b_raw = np.concatenate(tail_scores) if tail_scores else np.zeros(0, np.float32)
        b_raw = b_raw[np.isfinite(b_raw)]
        if len(b_raw) == 0:  # clips too short for a step in their tails: calibrate on what there is
            whole = [model.behaviour_logits(f) for f in clips]
            b_raw = np.concatenate([frame_scores(b)[0] for b in whole if b is not None])
            b_raw = b_raw[np.isfinite(b_raw)]
        model.behaviour_calibration = Calibration.fit(b_raw if len(b_raw) else np.zeros(1, np.float32))
    if cfg.behaviour.enabled and cfg.behaviour.tracks and all(f.detections is not None for f in clips):
        track_meta = _fit_tracks(model, clips, heads, splits, progress)
        behaviour_meta.update(track_meta)
    model.meta = {
        **behaviour_meta,
        "trained_on": [f.clip.name for f in clips],
        "frames": total_frames,
        "windows": len(y),
        "synthetic_windows": int(y.sum()),
        "calibration_frames": len(raw),
    }
    return model


def _fit_tracks(
    model: TrainedModel,
    clips: list[ClipFeatures],
    heads: list[ClipFeatures],
    splits: list[int],
    progress: Progress | None,
) -> dict[str, object]:
    """The per-track GRUs and their calibration on normal footage they have not seen.

    With at least as many clips as GRUs (``behaviour.ensemble``), each GRU learns from all clips but one
    fold of them, and every clip is scored by the GRUs that did not see it: the calibration's footage is
    as new to the model as footage in use is. Its 99th percentile is set at ``behaviour.floor``, so the
    track model raises an event above what one frame in a hundred of unseen normal footage reaches. (Held-out
    tails of the training clips, as the other models use, do not do here: a track that crosses into the
    tail was learnt in its first part, and the GRU remembers tracks. On generated scenes the tails'
    99th percentile sat 2-5 logits under that of normal clips it had not seen.) With fewer clips (one long
    recording, say), each is cut into as many pieces as that takes, tracked apart so that no track
    crosses from one fold into another, when the pieces last ``MIN_PIECE_S``; shorter footage is
    trained on its heads and calibrated on its tails as for the other models."""
    cfg, fps = model.config, clips[0].fps
    stride = step_stride(fps, cfg.behaviour.step_s)
    pieces = fold_pieces(clips, cfg.behaviour.ensemble)
    folds = cfg.behaviour.ensemble if 2 <= cfg.behaviour.ensemble <= len(pieces) else 1
    tracks = [clip_tracks(h.detections or [], stride, h.fps) for h in (pieces if folds > 1 else heads)]
    moving = [any(len(t.features) >= 2 for t in clip) for clip in tracks]
    if not any(moving):
        log.warning("no moving thing was tracked in the normal footage; training without the track GRU")
        return {}
    if folds > 1 and not all(any(m for j, m in enumerate(moving) if j % folds != f) for f in range(folds)):
        folds, tracks = 1, [clip_tracks(h.detections or [], stride, h.fps) for h in heads]
    model.tracks, meta = fit_tracks(tracks, stride / fps, cfg.behaviour, cfg.temporal.seed, progress, folds)
    if folds > 1 and len(pieces) > len(clips):
        meta["tracks_pieces"] = len(pieces)

    # Without folds, the whole clips are scored and their tails kept: tracked once for every set.
    whole = (
        []
        if folds > 1
        else [clip_tracks(f.detections, stride, f.fps) if f.detections is not None else [] for f in clips]
    )

    def normal_logits(part: TrackModel) -> np.ndarray:
        """``part``'s frame logits on the normal footage it did not learn from (or the clips' tails)."""
        scores = []
        if folds > 1:
            for j, piece in enumerate(pieces):
                scores.append(unseen_by(part, j, folds).frame_logits(tracks[j], piece.n_frames, stride)[0])
        else:
            for f, split, clip in zip(clips, splits, whole, strict=True):
                if f.detections is None or f.n_frames == 0:
                    continue
                logits = part.frame_logits(clip, f.n_frames, stride)[0]
                scores.append(logits[split:] if split < f.n_frames else logits)
        raw = np.concatenate(scores) if scores else np.zeros(0, np.float32)
        raw = raw[np.isfinite(raw)]
        return raw if len(raw) else np.zeros(1, np.float32)

    if q99s := fit_set_scales(model.tracks, normal_logits):
        meta["tracks_sets_q99"] = [round(q, 3) for q in q99s]
    # The highest of the sets is calibrated as one set is.
    model.tracks_calibration = Calibration.fit(
        normal_logits(model.tracks), at_q99=cfg.behaviour.floor if folds > 1 else 1.0
    )
    return meta


def fold_pieces(clips: list[ClipFeatures], folds: int) -> list[ClipFeatures]:
    """``clips`` when there are at least ``folds`` of them; else each cut into equal contiguous pieces,
    enough for ``folds``, if every piece lasts at least ``MIN_PIECE_S`` (else ``clips``)."""
    if folds < 2 or len(clips) >= folds:
        return clips
    per = -(-folds // len(clips))
    if any(f.n_frames / f.fps / per < MIN_PIECE_S for f in clips):
        return clips
    cuts = [np.linspace(0, f.n_frames, per + 1).round().astype(int) for f in clips]
    return [_slice(f, int(c[i]), int(c[i + 1])) for f, c in zip(clips, cuts, strict=True) for i in range(per)]


def _slice(f: ClipFeatures, lo: int, hi: int) -> ClipFeatures:
    return ClipFeatures(
        clip=f.clip,
        fps=f.fps,
        motion=f.motion[lo:hi],
        appearance=f.appearance,
        appearance_rows=f.appearance_rows[lo:hi],
        report=f.report,
        occupancy=None if f.occupancy is None else f.occupancy[lo:hi],
        detections=None if f.detections is None else f.detections[lo:hi],
    )
