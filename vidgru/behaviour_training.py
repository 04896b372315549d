"""Train the behaviour GRU on normal footage only.

The footage says how long things normally stay in a cell and how they come and go. Positives are made
from it by editing its own time, the way the short-window model's positives are its own motion sped up:

- **hold**: time stops for a while around someone (or something) in view: they stay, barely moving,
  far longer than anything stayed in the normal footage (the longest stays there set the bar);
- **back and forth**: a stretch of a few seconds plays forwards, backwards, forwards... (its flow
  reversed on the way back), as someone walking up and down;
- **stop and go**: walking is cut into short goes and stops, again and again.

Each edit is applied to all regions at once, so overlapping regions stay consistent. A region
is a positive only once the edit has gone on longer than normal footage ever shows (the hold) or has
repeated (a second reversal, a third stop), where something is in or next to it; the steps before that are
left out of the loss, since they look normal and are. Everything else is a negative. No edit is a
rendering of a test scene; they are the footage's own steps, re-timed.

Example::

    model = fit_behaviour([(motion, occupancy), ...], grid=(8, 12), fps=10, cfg=BehaviourConfig(), seed=0)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vidgru.behaviour import OCCUPIED, BehaviourModel, clip_steps, run_lengths, step_stride
from vidgru.config import BehaviourConfig

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
IGNORE = -1.0
_SETTLE = 10  # steps after an edit whose labels are left out: the state may still remember it
_STREAMS = 3  # long streams of all the normal clips, one after another
_STREAM_EDITS = 30  # edits in each, with ...
_LATE = 300  # ... this many steps of the stream ahead of them: an edit after minutes of normal
_OCC, _SLOW, _MOVING, _SPEED, _FX, _FY = range(6)
_MOTION_COLS = [_MOVING, _SPEED, _FX, _FY]


@dataclass
class Edited:
    base: np.ndarray  # (S, regions, N_STEP)
    labels: np.ndarray  # (S, regions): 1 positive, 0 negative, IGNORE left out
    span: tuple[int, int] | None = None  # the edited steps


def masked_step(
    net: nn.Module, opt: torch.optim.Optimizer, losses: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """One optimiser step on the mean of ``losses`` where ``mask`` holds (gradients clipped to norm 1)."""
    loss = (losses * mask).sum() / mask.sum().clamp(min=1)
    loss.backward()
    nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    return loss


def balanced_bce(labels: Sequence[torch.Tensor]) -> nn.BCEWithLogitsLoss:
    """Per-element BCE whose positives weigh sqrt(negatives / positives) over ``labels`` (IGNORE left
    out): positives are rarer, and weighting them fully made normal footage look half anomalous."""
    labelled = sum(float((y != IGNORE).sum()) for y in labels)
    pos = sum(float((y == 1).sum()) for y in labels)
    return nn.BCEWithLogitsLoss(
        pos_weight=torch.tensor(((labelled - pos) / max(pos, 1.0)) ** 0.5), reduction="none"
    )


def occupied_runs(occupancy: np.ndarray) -> np.ndarray:
    """``(S, cells)`` -> for each step, how many steps in a row the cell has been occupied (0 if not)."""
    return run_lengths(occupancy > OCCUPIED)


def longest_normal_stay(bases: Sequence[np.ndarray]) -> int:
    """The longest a region held something slow (someone standing) in normal footage, in steps. A region
    that differs from the background until the clip's end (a lighting change, a parked car) says nothing
    about how long people stay, so runs still going at a clip's end are left out."""
    lengths: list[int] = []
    for base in bases:
        runs = occupied_runs(base[..., _SLOW])
        ends = (runs[:-1] > 0) & (runs[1:] == 0)
        lengths += runs[:-1][ends].tolist()
    return int(np.clip(max(lengths, default=4), 4, 120))


def _involved(base: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return (base[lo:hi, :, _OCC] > OCCUPIED).any(0)


def _near(base: np.ndarray) -> np.ndarray:
    """``(S, regions)``: something stands in the region (or passes through it)."""
    return base[..., _OCC] > OCCUPIED / 2


def _halted(step: np.ndarray, length: int, fidget: float, rng: np.random.Generator) -> np.ndarray:
    """``step`` repeated ``length`` times with its motion scaled down to at most ``fidget``: whatever was
    there now stands, so all of it counts as slow."""
    still = np.repeat(step, length, axis=0)
    still[..., _MOTION_COLS] *= rng.uniform(0, fidget, (length, 1, 1)).astype(np.float32)
    still[..., _SLOW] = still[..., _OCC]
    return still


def hold(base: np.ndarray, t0: int, length: int, onset: int, rng: np.random.Generator) -> Edited:
    """Time stands still at ``t0`` for ``length`` steps, with a little fidgeting; positives where a cell
    has then been occupied for more than ``onset`` steps in a row."""
    still = _halted(base[t0 : t0 + 1], length, 0.3, rng)
    # Smaller things (a bag) stand as well as people do.
    still[..., [_OCC, _SLOW]] *= rng.uniform(0.3, 1.0) * rng.uniform(0.9, 1.1, (length, 1, 1)).astype(
        np.float32
    )
    np.clip(still[..., [_OCC, _SLOW]], 0, 1, out=still[..., [_OCC, _SLOW]])
    edited = np.concatenate([base[: t0 + 1], still, base[t0 + 1 :]])
    return _stay_labels(edited, t0 + 1, t0 + 1 + length, _involved(edited, t0 + 1, t0 + 1 + length), onset)


def _stay_labels(edited: np.ndarray, lo: int, hi: int, involved: np.ndarray, onset: int) -> Edited:
    """Labels of an edit that makes something stay over steps ``lo .. hi``: the ``involved`` regions are
    positives once they have held something slow for more than ``onset`` steps in a row, left out before."""
    labels = np.zeros(edited.shape[:2], np.float32)
    runs = occupied_runs(edited[..., _SLOW])
    near = _near(edited)
    span = labels[lo:hi]
    span[near[lo:hi]] = IGNORE
    span[:, involved] = np.where(runs[lo:hi, involved] > onset, 1.0, IGNORE)
    labels[hi : hi + _SETTLE][:, involved | near[lo:hi].any(0)] = IGNORE
    return Edited(edited, labels, (lo, hi))


def linger(base: np.ndarray, t0: int, k: int, length: int, onset: int) -> Edited:
    """A real stop made long: steps ``t0 .. t0 + k`` (someone standing, swaying as people do) played
    forwards and backwards until ``length`` steps have passed; positives as for :func:`hold`."""
    segment = base[t0 : t0 + k]
    backwards = segment[::-1].copy()
    backwards[..., [_FX, _FY]] *= -1
    loop = np.concatenate([segment if i % 2 == 0 else backwards for i in range(-(-length // k))])[:length]
    edited = np.concatenate([base[: t0 + k], loop, base[t0 + k :]])
    lo, hi = t0 + k, t0 + k + length
    return _stay_labels(edited, lo, hi, (edited[lo:hi, :, _SLOW] > OCCUPIED).any(0), onset)


def back_and_forth(base: np.ndarray, t0: int, length: int, passes: int) -> Edited:
    """Steps ``t0 .. t0 + length`` played ``passes`` times, every other pass backwards with its flow
    reversed; positives from the third pass (two reversals) on, where something is."""
    segment = base[t0 : t0 + length]
    backwards = segment[::-1].copy()
    backwards[..., [_FX, _FY]] *= -1
    played = [segment if i % 2 == 0 else backwards for i in range(passes)]
    edited = np.concatenate([base[:t0], *played, base[t0 + length :]])
    lo, hi = t0, t0 + passes * length
    return _repeat_labels(edited, lo, lo + 2 * length, hi)


def stop_and_go(
    base: np.ndarray,
    t0: int,
    goes: Sequence[int],
    stops: Sequence[int],
    rng: np.random.Generator,
) -> Edited:
    """From ``t0`` on, walking runs for ``goes[i]`` steps then time stops for ``stops[i]`` steps; positives
    from the third stop on, where something is."""
    parts, p, starts = [base[:t0]], t0, []
    done = t0
    for go, stop in zip(goes, stops, strict=True):
        parts.append(base[p : p + go])
        p += go
        still = _halted(base[p - 1 : p], stop, 0.2, rng)
        done += go
        starts.append(done)
        parts.append(still)
        done += stop
    parts.append(base[p:])
    edited = np.concatenate(parts)
    return _repeat_labels(edited, t0, starts[2], done)


def crop(e: Edited, before: int = 40) -> Edited:
    """Only the edit and its surroundings (the clip itself trains the negatives): the GRU starts
    ``before`` steps ahead of the edit, which keeps training short."""
    if e.span is None:
        return e
    lo, hi = e.span
    a, b = max(0, lo - before), min(len(e.base), hi + 2 * _SETTLE)
    return Edited(e.base[a:b], e.labels[a:b], (lo - a, hi - a))


def _repeat_labels(edited: np.ndarray, lo: int, onset: int, hi: int) -> Edited:
    labels = np.zeros(edited.shape[:2], np.float32)
    involved = _involved(edited, lo, hi)
    near = _near(edited)
    span = labels[lo:hi]
    span[near[lo:hi]] = IGNORE
    on = near[onset:hi] & involved
    labels[onset:hi][on] = 1.0
    labels[hi : hi + _SETTLE][:, involved | near[lo:hi].any(0)] = IGNORE
    return Edited(edited, labels, (lo, hi))


def make_edits(
    base: np.ndarray, count: int, stay: int, rng: np.random.Generator, before: int = 40
) -> list[Edited]:
    """``count`` edited copies of one clip's steps, the three kinds in turn, at random places, each cut
    down to its edit and ``before`` steps ahead of it (:func:`crop`)."""
    occupied = np.flatnonzero((base[..., _OCC] > OCCUPIED).any(1))
    moving = np.flatnonzero((base[..., _MOVING] > 0.05).any(1))
    stopped = np.flatnonzero((base[..., _SLOW] > OCCUPIED).any(1))  # someone standing: a real stop
    onset = int(1.5 * stay) + 2
    out: list[Edited] = []
    for i in range(count):
        kind = i % 3
        length = int(rng.integers(onset + 8, max(onset + 9, 3 * onset + 20)))
        if kind == 0 and len(stopped) and i % 2 == 0:
            k = int(rng.integers(2, 5))
            t0 = (
                int(rng.choice(stopped[stopped + k <= len(base)])) if (stopped + k <= len(base)).any() else -1
            )
            if t0 >= 0:
                out.append(linger(base, t0, k, length, onset))
        elif kind == 0 and len(occupied):
            out.append(hold(base, int(rng.choice(occupied)), length, onset, rng))
        elif kind == 1 and len(moving):
            length = int(rng.integers(6, 17))
            t0 = (
                int(rng.choice(moving[moving + length <= len(base)]))
                if (moving + length <= len(base)).any()
                else -1
            )
            if t0 >= 0:
                out.append(back_and_forth(base, t0, length, int(rng.integers(4, 8))))
        elif kind == 2 and len(moving):
            cycles = int(rng.integers(4, 8))
            goes = rng.integers(2, 5, cycles).tolist()
            stops = rng.integers(2, 7, cycles).tolist()
            fits = moving[moving + sum(goes) <= len(base)]
            if len(fits):
                out.append(stop_and_go(base, int(rng.choice(fits)), goes, stops, rng))
    return [crop(e, before) for e in out]


def _sequences(
    items: Sequence[Edited], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-cell sequences ``(N, S, N_STEP)``, their cells ``(N,)`` and labels ``(N, S)`` (padded with
    IGNORE). Cells where nothing ever is are mostly dropped: they teach nothing after the first few."""
    xs, cs, ys = [], [], []
    length = max(len(e.base) for e in items)
    for e in items:
        x = e.base
        busy = (x[..., _OCC] > OCCUPIED / 2).any(0) | (e.labels == 1).any(0)
        keep = np.flatnonzero(busy | (rng.random(x.shape[1]) < 0.1))
        pad = length - len(x)
        xs.append(np.pad(x[:, keep].transpose(1, 0, 2), ((0, 0), (0, pad), (0, 0))))
        ys.append(np.pad(e.labels[:, keep].T, ((0, 0), (0, pad)), constant_values=IGNORE))
        cs.append(keep)
    return np.concatenate(xs), np.concatenate(cs), np.concatenate(ys)


def _windows(x: np.ndarray, y: np.ndarray, memory: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a model with ``memory`` steps: every labelled step becomes a window of the steps before it
    (the first steps repeat step 0, as in scoring). Returns windows, their sequence index and labels."""
    pad = np.concatenate([np.repeat(x[:, :1], memory - 1, axis=1), x], axis=1)
    seq, step = np.nonzero(y != IGNORE)
    offsets = np.arange(memory)
    windows = pad[seq[:, None], step[:, None] + offsets[None, :]]
    return windows, seq, y[seq, step]


def fit_behaviour(
    clips: Sequence[tuple[np.ndarray, np.ndarray]],
    grid: tuple[int, int],
    fps: float,
    cfg: BehaviourConfig,
    seed: int,
    progress: Progress | None = None,
) -> tuple[BehaviourModel, dict[str, object]]:
    """``clips``: each normal clip's ``(motion (T, cells, N_MOTION), occupancy (T, cells))``.

    Three kinds of sequences train it: each clip and its edits (cropped to the edit and 20 s ahead of it);
    a few long streams of all the clips one after another; and edits in those streams after minutes of
    them. A GRU that only ever saw a minute from a fresh state drifted on longer videos and flagged normal
    footage after half a minute or so; the streams teach it to stay calm for as long as normal goes on,
    and to notice what happens late."""
    rng = np.random.default_rng(seed + 77)
    stride = step_stride(fps, cfg.step_s)
    bases = [clip_steps(m, o, grid, cfg.regions, stride) for m, o in clips]
    stay = longest_normal_stay(bases)
    short: list[Edited] = []
    for base in bases:
        short.append(Edited(base, np.zeros(base.shape[:2], np.float32)))
        short += make_edits(base, cfg.edits, stay, rng)
    streams: list[Edited] = []
    late: list[Edited] = []
    for _ in range(_STREAMS):
        stream = np.concatenate([bases[i] for i in rng.permutation(len(bases))])
        streams.append(Edited(stream, np.zeros(stream.shape[:2], np.float32)))
        late += make_edits(stream, _STREAM_EDITS, stay, rng, before=_LATE)
    groups = [_sequences(items, rng) for items in (short, streams, late)]
    x_all = np.concatenate([x.reshape(-1, x.shape[-1]) for x, _, _ in groups])
    y_all = np.concatenate([y.ravel() for _, _, y in groups])
    flat = x_all[y_all != IGNORE]
    mean, std = flat.mean(0), np.maximum(flat.std(0), 1e-3)
    model = BehaviourModel.build(len(bases[0][0]), cfg, mean, std, seed)
    groups = [(model.standardise(x), c, y) for x, c, y in groups]
    if cfg.memory:
        windowed = [(*_windows(x, y, cfg.memory), c) for x, c, y in groups]
        groups = [
            (
                np.concatenate([w for w, _, _, _ in windowed]),
                np.concatenate([c[seq] for _, seq, _, c in windowed]),
                np.concatenate([y for _, _, y, _ in windowed]),
            )
        ]
    positives = sum(int((y == 1).sum()) for _, _, y in groups)
    log.info(
        "behaviour: %d sequences, %d positive steps, normal stays up to %d steps of %.1f s",
        sum(len(x) for x, _, _ in groups),
        positives,
        stay,
        stride / fps,
    )
    _train(model, groups, cfg, seed, progress)
    meta = {
        "behaviour_longest_normal_stay_s": round(stay * stride / fps, 1),
        "behaviour_positive_steps": positives,
    }
    return model, meta


def _train(
    model: BehaviourModel,
    groups: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    cfg: BehaviourConfig,
    seed: int,
    progress: Progress | None,
) -> None:
    """Each group's sequences have one length (padded); batches never mix groups, so short sequences
    are not padded to the long streams' length."""
    tensors = [(torch.from_numpy(x), torch.from_numpy(c).long(), torch.from_numpy(y)) for x, c, y in groups]
    loss_fn = balanced_bce([y for _, _, y in tensors])
    # Whole sequences: fewer of them per step; single-step windows: many.
    batch = 256 if not cfg.memory else 8192
    per_epoch = sum((len(x) + batch - 1) // batch for x, _, _ in tensors)
    total, done = per_epoch * cfg.epochs * len(model.nets), 0
    for i, net in enumerate(model.nets):
        gen = torch.Generator().manual_seed(seed * 1000 + 500 + i)
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
        for _ in range(cfg.epochs):
            batches = [
                (g, idx)
                for g, (x, _, _) in enumerate(tensors)
                for idx in torch.randperm(len(x), generator=gen).split(batch)
            ]
            for k in torch.randperm(len(batches), generator=gen).tolist():
                g, idx = batches[k]
                xt, ct, yt = tensors[g]
                opt.zero_grad()
                logits, _ = net(xt[idx], ct[idx])
                if cfg.memory:
                    logits, target, mask = logits[:, -1], yt[idx], torch.ones(len(idx), dtype=torch.bool)
                else:
                    target, mask = yt[idx].clamp(min=0), yt[idx] != IGNORE
                loss = masked_step(net, opt, loss_fn(logits, target), mask)
                done += 1
                if progress and done % 10 == 0:
                    progress("training behaviour GRU", done, total)
        net.eval()
        log.info("behaviour GRU %d/%d trained, last batch loss %.4f", i + 1, len(model.nets), loss.item())
