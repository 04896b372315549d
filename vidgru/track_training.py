"""Train the per-track GRU on normal footage only.

The normal footage's tracks say how long things stand still here and how they move. Positives are those
same tracks with their time edited, as :mod:`vidgru.behaviour_training` edits regions' time:

- **hold**: the track stops where it is and stays, swaying, for far longer than anything stood still in
  the normal footage (the longest stop there sets the bar), then goes on;
- **back and forth**: a stretch of its walk plays forwards, backwards, forwards... (velocity reversed on
  the way back), as someone pacing;
- **stop and go**: its walk is cut into short goes and stops, again and again.

A track is a positive only once the edit has outlasted what normal footage shows (the hold) or has
repeated (a second reversal, a third stop); the steps of the edit before that are left out of the loss,
as are a few after it. Everything else is a negative.

Example::

    model, meta = fit_tracks([tracks_of_clip, ...], fps=10.0, step_s=0.5, cfg=BehaviourConfig(), seed=0)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from vidgru.behaviour import run_lengths
from vidgru.behaviour_training import IGNORE, balanced_bce, masked_step
from vidgru.config import BehaviourConfig
from vidgru.scoring import Calibration
from vidgru.track_model import TrackModel
from vidgru.tracks import TrackSequence

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
_SETTLE = 10  # steps after an edit whose labels are left out: the state may still remember it
_VX, _VY, _SPEED, _W, _H, _SEEN = range(6)
SLOW = 0.015  # picture widths per second (5 px/s at 360 px): slower than anyone walks
_SWAY = 0.003  # picture fraction: a person standing sways about a pixel either way
_CHAIN = 3  # normal tracks per chained sequence, ...
_CHAINS = 2  # ... and chains per track: long sequences of normal walking


EditKind = Literal["hold", "back_and_forth", "stop_and_go"]
EDIT_KINDS: tuple[EditKind, ...] = ("hold", "back_and_forth", "stop_and_go")


@dataclass
class EditedTrack:
    features: np.ndarray  # (S, N_TRACK)
    labels: np.ndarray  # (S,): 1 positive, 0 negative, IGNORE left out


def longest_normal_stop(tracks: Sequence[np.ndarray]) -> int:
    """The longest a normal track stood still, in steps (at least 4, at most 120). A track that is still
    at its end (something that stays till the clip ends) says nothing about stops, so its last run is
    left out."""
    lengths: list[int] = []
    for f in tracks:
        runs = run_lengths(f[:, _SPEED] < SLOW)
        ends = (runs[:-1] > 0) & (runs[1:] == 0)
        lengths += runs[:-1][ends].tolist()
    return int(np.clip(max(lengths, default=4), 4, 120))


def _halt(at: np.ndarray, length: int, step_s: float, rng: np.random.Generator) -> np.ndarray:
    """``length`` steps of standing where step ``at`` was, swaying: the velocity is that of the sway."""
    out = np.repeat(at[None], length, axis=0)
    velocity = np.diff(rng.normal(0, _SWAY, (length + 1, 2)), axis=0).astype(np.float32) / step_s
    out[:, [_VX, _VY]] = velocity
    out[:, _SPEED] = np.hypot(velocity[:, 0], velocity[:, 1])
    out[:, [_W, _H]] *= rng.uniform(0.95, 1.05, (length, 1)).astype(np.float32)
    out[:, _SEEN] = 1.0
    return out


def _labelled(parts: list[np.ndarray], normal: int, onset: int, hi: int) -> EditedTrack:
    """Steps up to ``normal`` are what normal footage shows too (one stop, one turn) and stay negatives;
    those from ``normal`` to ``onset`` are left out; from ``onset`` to ``hi`` positives."""
    features = np.concatenate(parts)
    labels = np.zeros(len(features), np.float32)
    labels[normal:onset] = IGNORE
    labels[onset:hi] = 1.0
    labels[hi : hi + _SETTLE] = IGNORE
    return EditedTrack(features, labels)


def hold(
    f: np.ndarray, t0: int, length: int, normal: int, onset: int, step_s: float, rng: np.random.Generator
) -> EditedTrack:
    """The track stands at step ``t0`` for ``length`` steps: a negative while that is no longer than
    ``normal`` steps (the longest normal stop), positive once it has stood ``onset`` steps."""
    still = _halt(f[t0], length, step_s, rng)
    lo = t0 + 1
    return _labelled([f[:lo], still, f[lo:]], lo + normal, lo + onset, lo + length)


def back_and_forth(f: np.ndarray, t0: int, length: int, passes: int) -> EditedTrack:
    """Steps ``t0 .. t0 + length`` played ``passes`` times (odd, so the walk goes on where it ended),
    every other pass backwards: negative until half way through the second pass (one turn is normal),
    positive from the third pass (two reversals) on."""
    segment = f[t0 : t0 + length]
    backwards = segment[::-1].copy()
    backwards[:, [_VX, _VY]] *= -1
    played = [segment if i % 2 == 0 else backwards for i in range(passes)]
    hi = t0 + passes * length
    return _labelled([f[:t0], *played, f[t0 + length :]], t0 + length + length // 2, t0 + 2 * length, hi)


def stop_and_go(
    f: np.ndarray, t0: int, goes: Sequence[int], stops: Sequence[int], step_s: float, rng: np.random.Generator
) -> EditedTrack:
    """From ``t0`` on, the track walks ``goes[i]`` steps then stands ``stops[i]`` steps: negative through
    the first stop (people stop once), positive from the third stop on."""
    parts, p, done, starts = [f[:t0]], t0, t0, []
    for go, stop in zip(goes, stops, strict=True):
        parts.append(f[p : p + go])
        p += go
        done += go
        starts.append(done)
        parts.append(_halt(f[p - 1], stop, step_s, rng))
        done += stop
    parts.append(f[p:])
    return _labelled(parts, starts[1], starts[2], done)


def make_edits(
    f: np.ndarray,
    count: int,
    stop: int,
    step_s: float,
    rng: np.random.Generator,
    kinds: Sequence[EditKind] = EDIT_KINDS,
) -> list[EditedTrack]:
    """``count`` edited copies of one track's steps, ``kinds`` in turn, at random places."""
    walking = np.flatnonzero(f[:, _SPEED] >= SLOW)
    onset = int(1.5 * stop) + 2
    out: list[EditedTrack] = []
    for i in range(count):
        kind = EDIT_KINDS.index(kinds[i % len(kinds)])
        if kind == 0:
            length = int(rng.integers(onset + 8, 3 * onset + 20))
            out.append(hold(f, int(rng.integers(len(f))), length, stop, onset, step_s, rng))
            continue
        if kind == 1:
            length = int(rng.integers(6, 21))
            fits = walking[walking + length <= len(f)]
            if len(fits):
                passes = int(rng.choice([3, 5, 7]))
                out.append(back_and_forth(f, int(rng.choice(fits)), length, passes))
            continue
        cycles = int(rng.integers(4, 7))
        goes = rng.integers(2, 5, cycles).tolist()
        stops = rng.integers(2, 7, cycles).tolist()
        fits = walking[walking + sum(goes) <= len(f)]
        if len(fits):
            out.append(stop_and_go(f, int(rng.choice(fits)), goes, stops, step_s, rng))
    return out


def fit_tracks(
    clips: Sequence[Sequence[TrackSequence]],
    step_s: float,
    cfg: BehaviourConfig,
    seed: int,
    progress: Progress | None = None,
    folds: int = 1,
) -> tuple[TrackModel, dict[str, object]]:
    """``clips``: each normal clip's tracks (:func:`vidgru.tracks.clip_tracks`). With ``folds`` K > 1, the
    ensemble's GRU ``i`` learns from every clip but those with ``index % K == i % K``, each fold's edits
    measured against its own clips, so that every clip can be scored by GRUs that have not seen it
    (:func:`unseen_by`): a calibration on normal footage that is new to the model.

    The first set of GRUs learns every kind of edit; each of ``cfg.specialists`` gets a set of its own
    that learns that kind alone (set 1, 2, ... of the model, on the first set's standardisation). The
    model's norms are left at (0, 1): the caller calibrates each set (:meth:`TrackModel.group`)."""
    rng = np.random.default_rng(seed + 91)
    normal = [t.features for tracks in clips for t in tracks if len(t.features) >= 2]
    if not normal:
        raise ValueError("no tracks in the normal footage: nothing moved against the fitted background")
    sets = (
        [clips] if folds <= 1 else [[c for j, c in enumerate(clips) if j % folds != f] for f in range(folds)]
    )
    built = [_training_items(s, step_s, cfg, rng) for s in sets]
    flat = np.concatenate([e.features for items, _ in built for e in items])
    model = TrackModel.build(
        cfg.hidden,
        cfg.ensemble,
        cfg.memory,
        flat.mean(0),
        np.maximum(flat.std(0), 1e-3),
        seed,
        cfg.hold_steps,
        sets=1 + len(cfg.specialists),
    )
    data = [_padded(items, model, cfg.memory) for items, _ in built]
    positives = sum(int((y == 1).sum()) for _, y in data)
    per_net = [data[i % len(data)] for i in range(cfg.ensemble)]
    for kind in cfg.specialists:
        # After the first set's items, so that they are drawn as without specialists.
        own = [_padded(_training_items(s, step_s, cfg, rng, (kind,))[0], model, cfg.memory) for s in sets]
        per_net += [own[i % len(own)] for i in range(cfg.ensemble)]
    stop = max(fold_stop for _, fold_stop in built)  # every clip is in some fold's training set
    log.info(
        "track behaviour: %d tracks, %d sequences, %d positive steps, normal stops up to %d steps of %.1f s%s",
        len(normal),
        sum(len(items) for items, _ in built),
        positives,
        stop,
        step_s,
        f", {folds} folds" if folds > 1 else "",
    )
    _train(model, per_net, cfg, seed, progress)
    meta: dict[str, object] = {
        "tracks_longest_normal_stop_s": round(stop * step_s, 1),
        "tracks_positive_steps": positives,
        "tracks_folds": max(1, folds),
        "tracks_specialists": list(cfg.specialists),
    }
    return model, meta


def fit_set_scales(model: TrackModel, normal_logits: Callable[[TrackModel], np.ndarray]) -> list[float]:
    """With more than one set of GRUs, put each on its own scale (0 at its median, 1 at its 99th
    percentile) from ``normal_logits``: a part of the model's frame logits on normal footage it did not
    learn from; so no set's normal tail sets another's bar. Returns the sets' 99th percentiles (none for
    one set, which keeps its logits as they are)."""
    if len(model.norms) == 1:
        return []
    sets = [Calibration.fit(normal_logits(model.group(g))) for g in range(len(model.norms))]
    model.norms = [(c.median, c.q99) for c in sets]
    return [c.q99 for c in sets]


def unseen_by(model: TrackModel, clip: int, folds: int) -> TrackModel:
    """The part of a model fitted with ``folds`` that did not learn from training clip ``clip``: in each
    set, the nets of that clip's fold."""
    keep, seen = [], [0] * len(model.norms)
    for i, g in enumerate(model.groups):
        if seen[g] % folds == clip % folds:  # seen[g]: the net's place in its set
            keep.append(i)
        seen[g] += 1
    return TrackModel(
        [model.nets[i] for i in keep],
        model.mean,
        model.std,
        model.memory,
        model.hold,
        [model.groups[i] for i in keep],
        model.norms,
    )


def _training_items(
    clips: Sequence[Sequence[TrackSequence]],
    step_s: float,
    cfg: BehaviourConfig,
    rng: np.random.Generator,
    kinds: Sequence[EditKind] = EDIT_KINDS,
) -> tuple[list[EditedTrack], int]:
    """The normal tracks of ``clips``, chains of them, and their edits of ``kinds``; and the longest
    normal stop."""
    normal = [t.features for tracks in clips for t in tracks if len(t.features) >= 2]
    if not normal:
        raise ValueError(
            "no tracks in some of the normal footage: nothing moved against the fitted background"
        )
    stop = longest_normal_stop(normal)
    per_track = max(3, round(cfg.edits * len(clips) / len(normal)))
    # Edited tracks are longer than normal ones; chains of normal tracks (one walks on as the next) keep
    # the GRU from taking a track's length for the anomaly, and edits in them teach it to see one late.
    chains = normal_chains(normal, _CHAINS * len(normal) // _CHAIN, rng)
    items = [EditedTrack(f, np.zeros(len(f), np.float32)) for f in normal + chains]
    for f in normal + chains:
        items += make_edits(f, per_track, stop, step_s, rng, kinds)
    return items, stop


def _headings(f: np.ndarray) -> tuple[int, int]:
    """The sign of a track's horizontal velocity where it first and last walks (0: it never walks)."""
    walking = f[f[:, _SPEED] >= SLOW, _VX]
    return (int(np.sign(walking[0])), int(np.sign(walking[-1]))) if len(walking) else (0, 0)


def normal_chains(normal: Sequence[np.ndarray], count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` chains of ``_CHAIN`` normal tracks played one after another, each next track heading the
    way the last one went: two tracks met head-on would be a turn back that nobody made, and chains with
    two of them, labelled normal, would teach the GRU that pacing is normal (on generated scenes they had:
    BENCHMARKS.md, 2026-12-07). Only the horizontal heading is compared."""
    headings = np.array([_headings(f) for f in normal])
    # The tracks that may walk on after one heading -1, 0 (standing: any) or +1, by heading + 1.
    after = [
        np.flatnonzero(headings[:, 0] != 1),
        np.arange(len(normal)),
        np.flatnonzero(headings[:, 0] != -1),
    ]
    chains = []
    for _ in range(count):
        picked = [int(rng.integers(len(normal)))]
        heading = headings[picked[0], 1]
        for _ in range(_CHAIN - 1):
            picked.append(int(rng.choice(after[heading + 1])))
            heading = headings[picked[-1], 1] or heading
        chains.append(np.concatenate([normal[i] for i in picked]))
    return chains


def _padded(
    items: Sequence[EditedTrack], model: TrackModel, memory: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole sequences padded with IGNORE labels ``(N, S, F)``, ``(N, S)``; with ``memory`` > 0, every
    labelled step as a window of its last ``memory`` steps ``(M, memory, F)`` and its label ``(M, 1)``."""
    xs = [model.standardise(e.features) for e in items]
    if memory:
        windows, labels = [], []
        for x, e in zip(xs, items, strict=True):
            pad = np.concatenate([np.repeat(x[:1], memory - 1, axis=0), x])
            keep = np.flatnonzero(e.labels != IGNORE)
            windows.append(pad[keep[:, None] + np.arange(memory)[None, :]])
            labels.append(e.labels[keep])
        return torch.from_numpy(np.concatenate(windows)), torch.from_numpy(np.concatenate(labels))[:, None]
    length = max(len(x) for x in xs)
    x = np.zeros((len(xs), length, xs[0].shape[1]), np.float32)
    y = np.full((len(xs), length), IGNORE, np.float32)
    for i, (xi, e) in enumerate(zip(xs, items, strict=True)):
        x[i, : len(xi)], y[i, : len(xi)] = xi, e.labels
    return torch.from_numpy(x), torch.from_numpy(y)


def _train(
    model: TrackModel,
    data: Sequence[tuple[torch.Tensor, torch.Tensor]],
    cfg: BehaviourConfig,
    seed: int,
    progress: Progress | None,
) -> None:
    """Net ``i`` of the ensemble learns from ``data[i]``: its sequences ``(N, S, F)`` and labels."""
    loss_fn = balanced_bce([y for _, y in data])
    batch = 64 if not cfg.memory else 8192
    total = sum((len(x) + batch - 1) // batch for x, _ in data) * cfg.track_epochs
    done = 0
    for i, (net, (x, y)) in enumerate(zip(model.nets, data, strict=True)):
        gen = torch.Generator().manual_seed(seed * 1000 + 700 + i)
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
        for _ in range(cfg.track_epochs):
            for idx in torch.randperm(len(x), generator=gen).split(batch):
                yb = y[idx]
                # Only as long as the batch's longest labelled sequence: most tracks are short.
                width = int((yb != IGNORE).any(0).nonzero().max()) + 1 if not cfg.memory else yb.shape[1]
                xb, yb = x[idx][:, :width] if not cfg.memory else x[idx], yb[:, :width]
                opt.zero_grad()
                logits, _ = net(xb)
                logits = logits[:, -1:] if cfg.memory else logits
                mask = yb != IGNORE
                loss = masked_step(net, opt, loss_fn(logits, yb.clamp(min=0)), mask)
                done += 1
                if progress and done % 10 == 0:
                    progress("training track GRU", done, total)
        net.eval()
        log.info("track GRU %d/%d trained, last batch loss %.4f", i + 1, len(model.nets), loss.item())
