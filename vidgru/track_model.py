"""A GRU per tracked object whose hidden state follows that object for as long as it is tracked.

Each track of :mod:`vidgru.tracks` makes one step every ``step_s`` seconds while it is seen (position,
velocity, size); the GRU reads the track's steps in order, from its first, and scores each. What it
learns to notice (that someone has stood for far longer than people stop here, has turned back again and
again, or keeps stopping) is only in the sequence: no step says how long or how often.

``memory`` > 0 cuts that memory to the track's last ``memory`` steps (a window re-read at every step):
the ablation. With ``memory`` 1 the model sees one step of one track at a time.

Example::

    tracks = clip_tracks(detections, stride=5, fps=10.0)
    logits, boxes = model.clip_logits(tracks, n_steps)    # (S,) the top track's logit per step, its box
    state = TrackState()
    logits = model.step(stepper.push(dets), state)        # live: the steps that ended, state kept per track
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from vidgru.behaviour import frame_logits
from vidgru.tracks import (
    MAX_AGE,
    N_TRACK,
    SameObjects,
    TrackSequence,
    TrackStep,
    TrackStepper,
    box_cells,
    object_in,
)

# A track's last steps kept live, for a track that takes over a dropped track's memory to replay those it made
# since that track was last seen: a track is dropped within MAX_AGE frames (and a look) of its last step.
_PAST = 2 * MAX_AGE
# (step, track, object, dropped): from that step on the track follows that object and carries on the memory
# of the dropped track it took over from (SameObjects).
Handover = tuple[int, int, int, int]


def _seen_boxes(tracks: Sequence[TrackSequence], n_steps: int) -> list[dict[int, np.ndarray]]:
    """Per step of a clip, the boxes of the tracks seen in it, by track id."""
    seen: list[dict[int, np.ndarray]] = [{} for _ in range(n_steps)]
    for t in tracks:
        for step, box in zip(t.steps.tolist(), t.boxes, strict=True):
            if step < n_steps:
                seen[step][t.track] = box
    return seen


def _last_alive(track: TrackSequence, hold: int) -> int:
    """The last step at whose end the tracker held ``track`` (where not known, its last seen step and
    ``hold`` more)."""
    return int(track.last_alive if track.last_alive >= 0 else track.steps[-1] + hold)


def object_joins(tracks: Sequence[TrackSequence], n_steps: int, hold: int) -> list[Handover]:
    """A clip's hand-overs, step by step, as :class:`SameObjects` makes them live from the boxes seen and the
    tracks the tracker holds (``hold``: steps a track is held after its last when :attr:`last_alive` is not
    known)."""
    same, seen = SameObjects(), _seen_boxes(tracks, n_steps)
    starts: dict[int, list[int]] = {}
    ends: dict[int, list[int]] = {}
    for t in tracks:
        if len(t.steps):
            starts.setdefault(int(t.steps[0]), []).append(t.track)
            ends.setdefault(_last_alive(t, hold), []).append(t.track)
    alive: set[int] = set()
    handovers: list[Handover] = []
    for k in range(n_steps):
        alive.update(starts.get(k, ()))
        same.push(seen[k], alive)
        handovers += [(k, track, oldest, dropped) for track, oldest, dropped in same.joined]
        alive.difference_update(ends.get(k, ()))
    return handovers


def held_steps(seen: np.ndarray, hold: int) -> tuple[np.ndarray, np.ndarray]:
    """A track's seen steps -> the steps it counts in (seen, or unseen for at most ``hold`` steps since)
    and, for each, the index of its latest seen step."""
    if not hold or not len(seen):
        return seen, np.arange(len(seen))
    span = np.arange(seen[0], seen[-1] + hold + 1)
    latest = np.searchsorted(seen, span, side="right") - 1
    counts = span - seen[latest] <= hold
    return span[counts], latest[counts]


class TrackGRU(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRU(N_TRACK, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: (N, S, N_TRACK) tracks' steps -> logits (N, S) and the last state (1, N, hidden)."""
        out, h = self.gru(x, h0)
        return self.head(out).squeeze(-1), h


@dataclass
class TrackState:
    """One stream's memory of its tracks: each net's hidden state per track (or the track's last steps
    when ``memory`` > 0). Empty at a video's start or a reconnect, as the tracker is."""

    hidden: dict[int, list[torch.Tensor]] = field(default_factory=dict)
    recent: dict[int, deque[torch.Tensor]] = field(default_factory=dict)
    # Each track's last steps (the stream's step count, standardised features), for a hand-over.
    past: dict[int, deque[tuple[int, torch.Tensor]]] = field(default_factory=dict)


class FrameTracks(NamedTuple):
    """A clip's track scores per frame (:meth:`TrackModel.frame_tracks`)."""

    logits: np.ndarray  # (T,) the highest track logit (-inf where no track counts)
    boxes: np.ndarray  # (T, 4) that track's box (NaN where none)
    track: np.ndarray  # (T,) the object that track follows: its oldest track's id (-1 where none)
    in_view: dict[int, tuple[int, int]]  # track id -> its first and last frame in view (inclusive)
    # (frame, track, object): from that frame on, the track follows that object (vidgru.tracks.SameObjects)
    joins: list[tuple[int, int, int]]


class TrackModel:
    """``hold``: steps for which a track that was not seen keeps its last logit in the clip's score.

    The nets come in sets (``groups``: each net's set; all 0 when there is one): one that learnt every
    behaviour and specialists that learnt one. A set's logit is the mean of its nets'; ``norms`` (per set,
    its unseen normal footage's median and 99th percentile) put the sets on one scale, on which a track's
    logit is the highest of its sets'. One set with norms ``(0, 1)`` is its nets' mean logit as it is."""

    def __init__(
        self,
        nets: list[TrackGRU],
        mean: np.ndarray,
        std: np.ndarray,
        memory: int,
        hold: int = 0,
        groups: Sequence[int] | None = None,
        norms: Sequence[Sequence[float]] | None = None,
    ) -> None:
        self.nets = [n.eval() for n in nets]
        self.mean, self.std = mean.astype(np.float32), std.astype(np.float32)
        self.memory, self.hold = memory, hold
        self.groups = [int(g) for g in groups] if groups is not None else [0] * len(nets)
        if len(self.groups) != len(nets) or sorted(set(self.groups)) != list(range(max(self.groups) + 1)):
            raise ValueError(f"groups {self.groups} do not number {len(nets)} nets' sets 0, 1, ...")
        count = max(self.groups) + 1
        self.norms = [(float(m), float(q)) for m, q in norms] if norms is not None else [(0.0, 1.0)] * count
        if len(self.norms) != count:
            raise ValueError(f"{len(self.norms)} norms for {count} sets of nets")
        self._set_of = torch.tensor(self.groups)

    def group(self, index: int) -> TrackModel:
        """Set ``index``'s nets alone, on their own logits' scale."""
        nets = [net for net, g in zip(self.nets, self.groups, strict=True) if g == index]
        return TrackModel(nets, self.mean, self.std, self.memory, self.hold)

    def _combine(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-net logits ``(nets, ...)`` -> the track's: each set's mean on its norm, the highest set's
        (one set on norm (0, 1): its nets' mean, exactly)."""
        sets = [
            (logits[self._set_of == g].mean(0) - median) / (q99 - median)
            for g, (median, q99) in enumerate(self.norms)
        ]
        return torch.stack(sets).max(0).values

    @classmethod
    def build(
        cls,
        hidden: int,
        ensemble: int,
        memory: int,
        mean: np.ndarray,
        std: np.ndarray,
        seed: int,
        hold: int = 0,
        sets: int = 1,
    ) -> TrackModel:
        """``sets`` of ``ensemble`` nets each (set 0's initialised as when there was one set)."""
        nets, groups = [], []
        for g in range(sets):
            for i in range(ensemble):
                torch.manual_seed(seed * 1000 + 700 + 10 * g + i)
                nets.append(TrackGRU(hidden))
                groups.append(g)
        return cls(nets, mean, std, memory, hold, groups)

    def standardise(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)

    def score_tracks(
        self, tracks: Sequence[TrackSequence], handovers: Sequence[Handover] = ()
    ) -> list[np.ndarray]:
        """Each track's step logits ``(S_track,)``, its state carried from its first step. With
        ``handovers`` (:func:`object_joins`), a track's steps from its hand-over on are scored as live: from
        the dropped track's memory, carried on through the steps the track made since that one was last
        seen."""
        logits = self._sequence_logits([t.features for t in tracks])
        index = {t.track: i for i, t in enumerate(tracks)}
        taken: dict[int, np.ndarray] = {}  # a track that took over: its steps with the memory's before them
        for step, track, _, dropped in sorted(handovers):
            if track not in index or dropped not in index:
                continue
            mine, before = tracks[index[track]], tracks[index[dropped]]
            steps = np.concatenate(
                [taken.get(dropped, before.features), mine.features[mine.steps > before.steps[-1]]]
            )
            taken[track] = steps
            after = int(np.sum(mine.steps >= step))
            if after:
                logits[index[track]][-after:] = self._sequence_logits([steps])[0][-after:]
        return logits

    @torch.inference_mode()
    def _sequence_logits(self, sequences: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Each ``(S, N_TRACK)`` sequence of raw steps -> its logits ``(S,)``, state carried from its first."""
        if not sequences:
            return []
        lengths = [len(f) for f in sequences]
        if self.memory:
            x = [torch.from_numpy(self.standardise(f)) for f in sequences]
            flat = torch.cat([self._windows(xi) for xi in x])
            logits = self._mean_last(flat).numpy()
            return list(np.split(logits, np.cumsum(lengths)[:-1]))
        # Padding goes after each sequence's end, where it cannot reach the sequence's own steps.
        padded = np.zeros((len(sequences), max(lengths), N_TRACK), np.float32)
        for i, f in enumerate(sequences):
            padded[i, : lengths[i]] = self.standardise(f)
        x = torch.from_numpy(padded)
        logits = self._combine(torch.stack([net(x)[0] for net in self.nets])).numpy()
        return [logits[i, :n].copy() for i, n in enumerate(lengths)]

    def _windows(self, x: torch.Tensor) -> torch.Tensor:
        """``(S, F)`` -> ``(S, memory, F)``: each step with the ``memory - 1`` before it (the first steps
        repeat step 0)."""
        padded = torch.cat([x[:1].expand(self.memory - 1, -1), x])
        return padded.unfold(0, self.memory, 1).transpose(1, 2)

    def _mean_last(self, windows: torch.Tensor) -> torch.Tensor:
        return self._combine(torch.stack([net(windows)[0][:, -1] for net in self.nets]))

    def clip_logits(self, tracks: Sequence[TrackSequence], n_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Per step of the clip, the highest logit of the tracks seen in it or in the ``hold`` steps before
        (each track's latest) (-inf where none was), and that track's box ``(n_steps, 4)`` (NaN where none)."""
        best, boxes, _ = self._clip_steps(tracks, n_steps)
        return best, boxes

    def _clip_steps(
        self, tracks: Sequence[TrackSequence], n_steps: int, handovers: Sequence[Handover] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`clip_logits`, and the id of the track that gave each step's logit (-1 where none).
        ``handovers``: the clip's :func:`object_joins`, when the caller has them already."""
        if handovers is None:
            handovers = object_joins(tracks, n_steps, self.hold)
        best = np.full(n_steps, -np.inf, np.float32)
        boxes = np.full((n_steps, 4), np.nan, np.float32)
        ids = np.full(n_steps, -1, np.int64)
        for track, logits in zip(tracks, self.score_tracks(tracks, handovers), strict=True):
            steps, held = held_steps(track.steps, self.hold)
            inside = steps < n_steps
            steps, held = steps[inside], held[inside]
            higher = logits[held] > best[steps]
            best[steps[higher]] = logits[held][higher]
            boxes[steps[higher]] = track.boxes[held][higher]
            ids[steps[higher]] = track.track
        return best, boxes, ids

    def frame_logits(
        self, tracks: Sequence[TrackSequence], n_frames: int, stride: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`clip_logits` per frame: each frame's highest logit among the tracks of the last step
        complete at it (-inf where there is none) ``(n_frames,)``, and that track's box ``(n_frames, 4)``."""
        scored = self.frame_tracks(tracks, n_frames, stride)
        return scored.logits, scored.boxes

    def frame_tracks(self, tracks: Sequence[TrackSequence], n_frames: int, stride: int) -> FrameTracks:
        """:meth:`frame_logits`, the track that gave each frame's logit and the frames each track is in
        view: from the end of its first step to the end of the last step at which the tracker still held
        it (seen, or hidden for a moment), as :class:`TrackScorer` says live."""
        n_steps = n_frames // stride
        handovers = object_joins(tracks, n_steps, self.hold)
        best, boxes, ids = self._clip_steps(tracks, n_steps, handovers)
        # Each step's track as the object it follows then, as TrackScorer says it live.
        ends: dict[int, list[int]] = {}
        for t in tracks:
            if len(t.steps):
                ends.setdefault(_last_alive(t, self.hold), []).append(t.track)
        parents: dict[int, int] = {}
        final: dict[int, int] = {}  # each track's object at the last step it was held
        pending = iter(handovers)
        handover = next(pending, None)
        for k in range(n_steps):
            while handover is not None and handover[0] == k:
                parents[handover[1]] = handover[2]
                handover = next(pending, None)
            if ids[k] >= 0:
                ids[k] = object_in(parents, int(ids[k]))
            for track in ends.get(k, ()):
                final[track] = object_in(parents, track)
        final.update({t.track: object_in(parents, t.track) for t in tracks if t.track not in final})
        joins = [((k + 1) * stride - 1, track, oldest) for k, track, oldest, _ in handovers]
        done = (np.arange(n_frames) + 1) // stride - 1
        at, started = np.maximum(done, 0), done >= 0
        in_view = {
            t.track: ((int(t.steps[0]) + 1) * stride - 1, (_last_alive(t, self.hold) + 2) * stride - 2)
            for t in tracks
            if len(t.steps)
        }
        # An object is in view while any track that follows it is: its oldest track's span, carried on to the
        # end of the others' (each joined it while that track was seen).
        for track, (_, last) in list(in_view.items()):
            oldest = final.get(track, track)
            if oldest != track and oldest in in_view:
                first, end = in_view[oldest]
                in_view[oldest] = (first, max(end, last))
        return FrameTracks(
            frame_logits(best[:, None], n_frames, stride)[:, 0],
            np.where(started[:, None], boxes[at], np.nan).astype(np.float32),
            np.where(started, ids[at], -1),
            in_view,
            joins,
        )

    @torch.inference_mode()
    def step(
        self,
        steps: Sequence[TrackStep],
        state: TrackState,
        alive: set[int],
        now: int = 0,
        handovers: Sequence[tuple[int, int, int]] = (),
    ) -> np.ndarray:
        """One live step (the stream's ``now``-th): the tracks' steps that just ended -> their logits
        ``(len(steps),)``. ``handovers``: :attr:`SameObjects.joined` for this step; each track there first
        takes over its dropped track's memory. Tracks no longer ``alive`` (dropped by the tracker) are
        forgotten."""
        for track, _, dropped in handovers:
            self._take_over(state, track, dropped)
        for kept in (state.hidden, state.recent, state.past):
            for gone in [k for k in kept if k not in alive]:
                del kept[gone]
        if not steps:
            return np.zeros(0, np.float32)
        x = torch.from_numpy(self.standardise(np.stack([s.features for s in steps])))  # (N, F)
        for s, xi in zip(steps, x, strict=True):
            state.past.setdefault(s.track, deque(maxlen=_PAST)).append((now, xi))
        if self.memory:
            windows = []
            for s, xi in zip(steps, x, strict=True):
                recent = state.recent.setdefault(s.track, deque(maxlen=self.memory))
                if not recent:
                    recent.extend([xi] * (self.memory - 1))
                recent.append(xi)
                windows.append(torch.stack(list(recent)))
            return self._mean_last(torch.stack(windows)).numpy()
        hidden = [
            torch.cat(
                [
                    state.hidden[s.track][i]
                    if s.track in state.hidden
                    else torch.zeros(1, 1, net.gru.hidden_size)
                    for s in steps
                ],
                dim=1,
            )
            for i, net in enumerate(self.nets)
        ]
        outs = [net(x[:, None, :], h) for net, h in zip(self.nets, hidden, strict=True)]
        for k, s in enumerate(steps):
            state.hidden[s.track] = [h[:, k : k + 1] for _, h in outs]
        return self._combine(torch.stack([logit[:, 0] for logit, _ in outs])).numpy()

    def _take_over(self, state: TrackState, track: int, dropped: int) -> None:
        """``track`` carries on ``dropped``'s memory: that memory, on through the steps ``track`` made since
        ``dropped`` was last seen (as :meth:`score_tracks` does over a whole clip)."""
        before = state.past.get(dropped)
        if not before:
            return
        since = [x for k, x in state.past.get(track, ()) if k > before[-1][0]]
        if self.memory:
            recent = deque(state.recent[dropped], maxlen=self.memory)
            recent.extend(since)
            state.recent[track] = recent
            return
        hidden = state.hidden[dropped]
        if since:
            x = torch.stack(since)[None]
            hidden = [net(x, h)[1] for net, h in zip(self.nets, hidden, strict=True)]
        state.hidden[track] = hidden

    def state_dicts(self) -> list[dict[str, torch.Tensor]]:
        return [n.state_dict() for n in self.nets]


class TrackScorer:
    """One stream's tracker and per-track GRU state, frame by frame, as :meth:`TrackModel.clip_logits`
    scores a whole clip: every ``stride`` frames, the highest logit of the tracks seen in that step (or in
    the model's ``hold`` steps before) and its box, held until the next step. ``allowed``: ``(cells,)``
    bool on ``grid``; tracks whose box centre is elsewhere do not count (a camera's region of interest)."""

    def __init__(
        self,
        model: TrackModel,
        stride: int,
        fps: float,
        allowed: np.ndarray | None = None,
        grid: tuple[int, int] = (1, 1),
    ) -> None:
        self.model, self.stride, self.allowed, self.grid = model, stride, allowed, grid
        self.stepper = TrackStepper(stride, fps)
        self.state = TrackState()
        self.logit, self.box = -np.inf, None
        self.track: int | None = None  # the object (its oldest track) whose track gave ``logit``
        self._alive: set[int] = set()
        self._in_view: set[int] = set()
        self._same = SameObjects()
        self._latest: dict[int, tuple[float, np.ndarray, int]] = {}  # track -> logit, box, step last seen

    def object_of(self, track: int) -> int:
        """The object a track held now follows (its oldest track's id; :class:`vidgru.tracks.SameObjects`)."""
        return self._same.object(track)

    @property
    def in_view(self) -> set[int]:
        """The tracks the tracker held at the end of the last step (seen, or hidden for a moment), and the
        objects they follow (:class:`vidgru.tracks.SameObjects`)."""
        return self._in_view

    def push(self, detections: np.ndarray) -> tuple[float, np.ndarray | None]:
        steps = self.stepper.push(detections)
        if self.stepper.frames % self.stride:
            return self.logit, self.box
        self._alive = self.stepper.alive
        self._same.push({s.track: s.box for s in steps}, self._alive)
        self._in_view = self._alive | {self._same.object(k) for k in self._alive}
        now = self.stepper.frames // self.stride
        logits = self.model.step(steps, self.state, self._alive, now, self._same.joined)
        if self.allowed is not None and len(steps):
            cells = box_cells(np.stack([s.box for s in steps]), self.grid)
            logits = np.where(self.allowed[cells], logits, -np.inf)
        for step, logit in zip(steps, logits.tolist(), strict=True):
            self._latest[step.track] = (logit, step.box, now)
        for track in [k for k, (_, _, seen) in self._latest.items() if now - seen > self.model.hold]:
            del self._latest[track]
        self.logit, self.box, self.track = -np.inf, None, None
        for track, (logit, box, _) in self._latest.items():
            if logit > self.logit:
                self.logit, self.box, self.track = logit, box, track
        if self.track is not None:
            self.track = self._same.object(self.track)
        return self.logit, self.box
