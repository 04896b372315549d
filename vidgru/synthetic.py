"""Synthetic surveillance scenes: a textured walkway, figures walking at varied speeds, and labelled
intruders that move much faster (a bike or cart among pedestrians, as in UCSD Ped2).

Used by ``vidgru demo`` and by the tests, so neither needs footage of the user's.

Example::

    labels = render_scene("test.mp4", SceneSpec(seconds=30, seed=1, intruders=(Intruder(10, 3),)))
    labels   # [[100, 130]]: anomalous frames, [start, end)

:func:`inject_tampering` turns frames of normal footage into camera tampering (a frozen picture, a covered
lens, a view that has moved), for the tampering tests and benchmark.

:func:`render_behaviour_scene` and :func:`make_behaviour_footage` make footage whose anomalies no single frame
shows: someone who stays (``loiter``), paces, keeps stopping (``stop_and_go``), or leaves a bag behind
(``left_object``), among figures that walk, pause briefly and turn back, as ordinary people do.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np


@dataclass(frozen=True)
class Intruder:
    start_s: float
    duration_s: float
    speed: float = 7.0  # pixels per frame; walkers move 1-2


@dataclass(frozen=True)
class SceneSpec:
    seconds: float
    seed: int  # activity: who walks where, when
    camera_seed: int = 0  # the background: same seed, same camera
    width: int = 360
    height: int = 240
    fps: float = 10.0
    walkers: int = 5
    intruders: tuple[Intruder, ...] = field(default_factory=tuple)
    noise: float = 2.0  # sensor noise, grey levels


@dataclass
class _Figure:
    x: float
    y: float
    vx: float
    vy: float
    colour: tuple[int, int, int]
    size: tuple[int, int]  # half-width, half-height


def _background(spec: SceneSpec | BehaviourSceneSpec, rng: np.random.Generator) -> np.ndarray:
    h, w = spec.height, spec.width
    noise = rng.normal(0, 1, (h // 4, w // 4)).astype(np.float32)
    texture = cv2.resize(cv2.GaussianBlur(noise, (0, 0), 1.5), (w, h), interpolation=cv2.INTER_CUBIC)
    base = 120 + 25 * texture
    base[h // 3 : 2 * h // 3] += 30  # a brighter walkway across the middle
    for x in range(0, w, 40):
        base[:, x : x + 1] -= 15  # paving joints
    img = np.clip(base, 0, 255).astype(np.uint8)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)


def _walker(spec: SceneSpec, rng: np.random.Generator, anywhere: bool) -> _Figure:
    h, w = spec.height, spec.width
    speed = rng.uniform(1.0, 2.0)
    direction = rng.choice([-1.0, 1.0])
    x = rng.uniform(0, w) if anywhere else (-10.0 if direction > 0 else w + 10.0)
    y = rng.uniform(h / 3 + 10, 2 * h / 3 - 10)
    colour = tuple(int(c) for c in rng.integers(30, 230, 3))
    return _Figure(x, y, direction * speed, rng.normal(0, 0.15), colour, (5, 11))


def render_scene(path: str | Path, spec: SceneSpec) -> list[list[int]]:
    """Write the scene as an MP4 and return its anomalous frame ranges ``[[start, end), ...]``."""
    rng = np.random.default_rng(spec.seed)
    background = _background(spec, np.random.default_rng(spec.camera_seed))
    frames = round(spec.seconds * spec.fps)
    walkers = [_walker(spec, rng, anywhere=True) for _ in range(spec.walkers)]
    labels: list[list[int]] = []
    active: list[tuple[_Figure, int]] = []
    starts = {round(i.start_s * spec.fps): i for i in spec.intruders}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), spec.fps, (spec.width, spec.height))
    try:
        for t in range(frames):
            if t in starts:
                intr = starts[t]
                end = min(frames, t + round(intr.duration_s * spec.fps))
                fig = _Figure(
                    -15.0, spec.height / 2 + rng.uniform(-20, 20), intr.speed, 0.0, (40, 40, 200), (12, 7)
                )
                active.append((fig, end))
                labels.append([t, end])
            img = background.copy()
            for f in walkers + [fig for fig, _ in active]:
                f.x += f.vx
                f.y = float(np.clip(f.y + f.vy, spec.height / 3, 2 * spec.height / 3))
                hw, hh = f.size
                cv2.ellipse(img, (int(f.x), int(f.y)), (hw, hh), 0, 0, 360, f.colour, -1)
                cv2.circle(img, (int(f.x), int(f.y - hh - 3)), 3, (60, 60, 60), -1)
            walkers = [f if -20 <= f.x <= spec.width + 20 else _walker(spec, rng, False) for f in walkers]
            active = [(f, end) for f, end in active if end > t + 1]
            noisy = img.astype(np.float32) + rng.normal(0, spec.noise, img.shape).astype(np.float32)
            writer.write(np.clip(noisy, 0, 255).astype(np.uint8))
    finally:
        writer.release()
    return labels


TamperKind = Literal["freeze", "cover", "shift"]


def inject_tampering(
    frames: Sequence[np.ndarray],
    kind: TamperKind,
    start: int,
    duration: int | None = None,
    *,
    seed: int = 0,
    cover_style: Literal["dark", "blob"] = "dark",
    shift_fraction: float = 0.15,
    ramp: int = 3,
    noise: float = 2.0,
) -> list[np.ndarray]:
    """A copy of ``frames`` (BGR) with tampering from frame ``start`` for ``duration`` frames (None: to the end).

    - ``freeze``: from ``start`` on the stream repeats the last live frame exactly (``frames[start - 1]``),
      as a hung encoder or a looped still does.
    - ``cover``: ``"dark"`` is a near-uniform dark picture (tape, paint, a lens cap); ``"blob"`` is an
      out-of-focus hand or cloth held in front of the lens, sliding in over ``ramp`` frames and leaving a
      little light at one edge. Both carry sensor noise (``noise`` grey levels), as a covered camera
      at full gain shows.
    - ``shift``: the view pans by ``shift_fraction`` of the width (left or right, from ``seed``) over
      ``ramp`` frames and stays there. The edge the pan uncovers is filled by reflecting the picture
      at that border (OpenCV's BORDER_REFLECT_101), so it shows plausible scene texture rather than
      a black band or smeared stripes that a real pan would not show.
    """
    if kind not in ("freeze", "cover", "shift"):
        raise ValueError(f"unknown tampering kind {kind!r}; use freeze, cover or shift")
    out = list(frames)
    end = len(out) if duration is None else min(len(out), start + duration)
    if not 0 <= start < end:
        raise ValueError(f"tampering [{start}, {end}) is outside the {len(out)} frames")
    rng = np.random.default_rng(seed)
    h, w = out[start].shape[:2]
    if kind == "freeze":
        still = out[max(0, start - 1)].copy()
        for t in range(start, end):
            out[t] = still.copy()
        return out
    if kind == "shift":
        direction = rng.choice([-1.0, 1.0])
        for t in range(start, end):
            progress = min(1.0, (t - start + 1) / max(1, ramp))
            dx = direction * shift_fraction * w * progress
            matrix = np.float32([[1, 0, dx], [0, 1, 0]])
            out[t] = cv2.warpAffine(out[t], matrix, (w, h), borderMode=cv2.BORDER_REFLECT_101)
        return out
    cover = _dark_cover(h, w, rng) if cover_style == "dark" else _blob_cover(h, w, rng)
    alpha_full, side = _cover_alpha(h, w, rng, cover_style), rng.choice([-1.0, 1.0])
    for t in range(start, end):
        progress = min(1.0, (t - start + 1) / max(1, ramp)) if cover_style == "blob" else 1.0
        # The hand slides in from one side: shift the mask, the uncovered part shows the scene.
        offset = side * (1.0 - progress) * w
        alpha = cv2.warpAffine(alpha_full, np.float32([[1, 0, offset], [0, 1, 0]]), (w, h))
        behind = cv2.GaussianBlur(out[t], (0, 0), 2.0).astype(np.float32) * 0.6
        img = alpha[..., None] * cover + (1.0 - alpha[..., None]) * behind
        img += rng.normal(0, noise, img.shape).astype(np.float32)
        out[t] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def _dark_cover(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    level = rng.uniform(8, 25)
    gradient = np.linspace(-4, 4, w, dtype=np.float32)[None, :] * rng.choice([-1.0, 1.0])
    return np.repeat((level + np.broadcast_to(gradient, (h, w)))[..., None], 3, axis=2).astype(np.float32)


def _blob_cover(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    colours = [(105, 135, 185), (40, 40, 48), (95, 100, 110), (60, 80, 120)]  # skin, dark/grey cloth, glove
    colour = np.float32(colours[int(rng.integers(len(colours)))])
    # Out of focus: only the broadest folds and shading of the hand or cloth survive.
    folds = cv2.resize(rng.normal(0, 1, (4, 6)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    shade = 0.8 + 0.15 * cv2.GaussianBlur(folds, (0, 0), w / 20)
    return colour[None, None, :] * shade[..., None]


def _cover_alpha(h: int, w: int, rng: np.random.Generator, style: str) -> np.ndarray:
    if style == "dark":
        return np.ones((h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = w * rng.uniform(0.4, 0.6), h * rng.uniform(0.4, 0.6)
    inside = ((xx - cx) / (0.65 * w)) ** 2 + ((yy - cy) / (0.65 * h)) ** 2 < 1.0
    return cv2.GaussianBlur(inside.astype(np.float32), (0, 0), w / 25)


# Behaviour scenes: what no single frame shows. Every figure's whole path is planned first (so the labels
# follow from the geometry, and tests can check it), then the frames are drawn from the plan.

Behaviour = Literal["loiter", "pacing", "stop_and_go", "left_object"]
BEHAVIOURS: tuple[Behaviour, ...] = ("loiter", "pacing", "stop_and_go", "left_object")

_STOP_SHARE, _TURN_SHARE = 0.35, 0.15  # of normal figures: one brief stop (1-5 s), or one turn back
_MAX_OVERLAP = 15  # frames two figures (or a figure and a bag) may overlap; more and the arrival is redrawn
_PREROLL_S = 70.0  # arrivals start this long before the clip, so it opens on a scene already in progress


@dataclass(frozen=True)
class Episode:
    """One figure (or bag) with a labelled behaviour; every other figure in the scene is normal.

    ``start_s``: when the behaviour begins, so that a caller can fit it into a clip: the arrival at the
    spot (``loiter``), the first reversal (``pacing``), the first stop (``stop_and_go``), the bag put down
    (``left_object``). The figure walks in before that. ``duration_s``: how long the stay (loiter, default
    35-60 s), the pacing (default 25-40 s), the run of stops (stop_and_go: at least 4 stops, default 4-6)
    or the bag (left_object, default: to the end of the clip) lasts.
    """

    kind: Behaviour
    start_s: float
    duration_s: float | None = None


@dataclass(frozen=True)
class BehaviourSceneSpec:
    seconds: float
    seed: int  # activity: who walks where, when
    camera_seed: int = 0  # the background: same seed, same camera (as SceneSpec's)
    width: int = 360
    height: int = 240
    fps: float = 10.0
    walkers: float = 3.0  # normal figures in view, on average
    episodes: tuple[Episode, ...] = ()
    noise: float = 2.0  # sensor noise, grey levels


@dataclass(frozen=True)
class LabelledRange:
    kind: Behaviour
    start: int  # 0-based frame
    end: int  # exclusive


@dataclass(frozen=True, eq=False)
class Track:
    """One figure's body centre in every frame from ``start`` (negative: already on its way when the clip
    begins) until it has walked out of the picture."""

    role: Literal["normal"] | Behaviour
    start: int
    xy: np.ndarray  # (frames, 2) float x, y
    colour: tuple[int, int, int]

    @property
    def end(self) -> int:
        return self.start + len(self.xy)

    def at(self, frame: int) -> np.ndarray | None:
        return self.xy[frame - self.start] if self.start <= frame < self.end else None


@dataclass(frozen=True)
class Bag:
    """A bag carried at its owner's hip until ``down``, then on the ground at (x, y) until ``until``."""

    owner: int  # index into BehaviourScene.figures
    side: float  # -1 or 1: which side of the owner it is carried on
    down: int
    until: int
    x: float
    y: float


@dataclass(frozen=True)
class BehaviourScene:
    spec: BehaviourSceneSpec
    frames: int
    figures: tuple[Track, ...]
    bags: tuple[Bag, ...]
    labels: tuple[LabelledRange, ...]


class _Path:
    """Builds one figure's positions, one per frame."""

    def __init__(self, spec: BehaviourSceneSpec, rng: np.random.Generator, x: float, y: float) -> None:
        self.spec, self.rng = spec, rng
        self.xy: list[tuple[float, float]] = [(x, y)]
        self.vy = float(rng.normal(0, 0.15))  # slight vertical drift, as render_scene's walkers have
        self.lo, self.hi = spec.height / 3 + 10, 2 * spec.height / 3 - 10

    @property
    def now(self) -> int:
        """Index of the current (last) position."""
        return len(self.xy) - 1

    def walk_to(self, target: float, speed: float) -> None:
        x, y = self.xy[-1]
        step = speed if target > x else -speed
        while abs(target - x) > 1e-9:
            x = target if abs(target - x) <= speed else x + step
            y += self.vy
            if not self.lo <= y <= self.hi:
                self.vy, y = -self.vy, float(np.clip(y, self.lo, self.hi))
            self.xy.append((x, y))

    def stand(self, frames: int, drift: float = 0.0) -> None:
        """Stand for ``frames``, swaying about 1 px as a person does; with ``drift``, the spot itself wanders
        slowly within ``drift`` px of where the figure stopped."""
        x0, y0 = self.xy[-1]
        cx, cy, vx, vy = x0, y0, 0.0, 0.0
        period = self.rng.uniform(15, 30)
        phase = self.rng.uniform(0, 2 * np.pi, 2)
        for i in range(frames):
            if drift:
                vx = float(np.clip(0.95 * vx + self.rng.normal(0, 0.02), -0.1, 0.1))
                vy = float(np.clip(0.95 * vy + self.rng.normal(0, 0.02), -0.1, 0.1))
                if np.hypot(cx + vx - x0, cy + vy - y0) > drift:
                    vx, vy = -vx, -vy  # turn back towards the spot
                cx, cy = cx + vx, cy + vy
            # The sway builds up over the first second: no jump when the figure comes to a halt.
            angle, amplitude = 2 * np.pi * i / period, min(1.0, i / self.spec.fps)
            self.xy.append(
                (cx + amplitude * np.sin(angle + phase[0]), cy + 0.5 * amplitude * np.sin(angle + phase[1]))
            )


def _entry(spec: BehaviourSceneSpec, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Direction, entry x, exit x, walkway y of a figure walking in at one edge."""
    direction = float(rng.choice([-1.0, 1.0]))
    w = spec.width
    x0, x1 = (-10.0, w + 10.0) if direction > 0 else (w + 10.0, -10.0)
    return direction, x0, x1, float(rng.uniform(spec.height / 3 + 10, 2 * spec.height / 3 - 10))


def _normal_path(spec: BehaviourSceneSpec, rng: np.random.Generator) -> _Path:
    """Crosses the walkway; about a third stop once for 1-5 s, some turn back once."""
    direction, x0, x1, y = _entry(spec, rng)
    w, speed = spec.width, rng.uniform(1.0, 2.0)
    path, kind = _Path(spec, rng, x0, y), rng.random()
    if kind < _STOP_SHARE:
        path.walk_to(rng.uniform(0.15 * w, 0.85 * w), speed)
        path.stand(round(rng.uniform(1.0, 5.0) * spec.fps))
        path.walk_to(x1, speed)
    elif kind < _STOP_SHARE + _TURN_SHARE:
        path.walk_to(x0 + direction * rng.uniform(0.25, 0.75) * w, speed)
        path.stand(round(rng.uniform(0.0, 1.0) * spec.fps))
        path.walk_to(x0, speed)
    else:
        path.walk_to(x1, speed)
    return path


def _episode_path(
    spec: BehaviourSceneSpec, rng: np.random.Generator, ep: Episode
) -> tuple[_Path, int, tuple[int, int | None], Bag | None]:
    """The figure's path, the index at which its behaviour begins, the labelled range (path indices;
    None: to the end of the clip) and, for left_object, its bag (``down``/``until`` as path indices)."""
    direction, x0, x1, y = _entry(spec, rng)
    w, fps = spec.width, spec.fps
    path = _Path(spec, rng, x0, y)
    if ep.kind == "loiter":
        speed = rng.uniform(1.0, 2.0)
        path.walk_to(rng.uniform(0.25 * w, 0.75 * w), speed)
        arrival = len(path.xy)
        path.stand(round((ep.duration_s or rng.uniform(35.0, 60.0)) * fps), drift=8.0)
        departure = len(path.xy)
        path.walk_to(x1, speed)
        return path, arrival, (arrival, departure), None
    if ep.kind == "pacing":
        # Legs of at most 5.5 s (and turns of at most 0.5 s): 4 reversals take at most 18 s.
        speed = rng.uniform(1.2, 2.0)
        stretch = rng.uniform(60.0, min(120.0, 5.5 * fps * speed))
        centre = rng.uniform(0.3 * w, 0.7 * w)
        ends = [centre + direction * stretch / 2, centre - direction * stretch / 2]  # far end first
        duration = round((ep.duration_s or rng.uniform(25.0, 40.0)) * fps)
        path.walk_to(ends[0], speed)
        reversals = [path.now]
        while reversals[-1] - reversals[0] < duration:
            path.stand(int(rng.integers(0, round(0.5 * fps) + 1)))
            path.walk_to(ends[len(reversals) % 2], speed)
            reversals.append(path.now)
        path.walk_to(x1 if len(reversals) % 2 == 0 else x0, speed)
        return path, reversals[0], (reversals[0], reversals[-1] + 1), None
    if ep.kind == "stop_and_go":
        speed = rng.uniform(1.0, 2.0)
        n = 4 if ep.duration_s else int(rng.integers(4, 7))
        stops = [round(rng.uniform(1.0, 3.0) * fps) for _ in range(n)]
        walks = [round(rng.uniform(1.0, 2.0) * fps) for _ in range(n - 1)]
        while ep.duration_s and sum(stops) + sum(walks) < ep.duration_s * fps:
            walks.append(round(rng.uniform(1.0, 2.0) * fps))
            stops.append(round(rng.uniform(1.0, 3.0) * fps))
        run = speed * sum(walks)  # the distance walked between the first stop and the last
        first = rng.uniform(30.0, max(30.0, w - 40.0 - run))
        path.walk_to(x0 + direction * (10.0 + first), speed)
        onset = len(path.xy)
        for i, stop in enumerate(stops):
            path.stand(stop)
            if i < len(walks):
                path.walk_to(path.xy[-1][0] + direction * speed * walks[i], speed)
        last = len(path.xy)
        path.walk_to(x1, speed)
        return path, onset, (onset, last), None
    if ep.kind == "left_object":
        speed = rng.uniform(1.0, 2.0)
        path.walk_to(rng.uniform(0.3 * w, 0.7 * w), speed)
        bx, by = path.xy[-1]
        pause = round(rng.uniform(1.0, 2.0) * fps)
        down = len(path.xy) + pause // 2  # the bag touches the ground halfway through the pause
        path.stand(pause)
        path.walk_to(x1, speed)
        side = float(rng.choice([-1.0, 1.0]))
        bag = Bag(
            -1,
            side,
            down,
            -1 if ep.duration_s is None else down + round(ep.duration_s * fps),
            bx + side * 10,
            by + 7,
        )
        xy = np.asarray(path.xy)
        away = (np.hypot(xy[:, 0] - bag.x, xy[:, 1] - bag.y) > 40) | ~_in_view(xy[:, 0], w)
        left = down + int(np.argmax(away[down:]))
        return path, down, (left, None if ep.duration_s is None else bag.until), bag
    raise ValueError(f"unknown behaviour {ep.kind!r}; use one of {', '.join(BEHAVIOURS)}")


def _in_view(x: np.ndarray, width: int) -> np.ndarray:
    return (x > -5) & (x < width + 5)


def _overlap(a: Track, b: Track | Bag, width: int) -> int:
    """Frames in which two figures' outlines (or a figure and a bag) overlap in the picture."""
    if isinstance(b, Bag):
        s, e = max(a.start, b.down), min(a.end, b.until)
        if s >= e:
            return 0
        xy = a.xy[s - a.start : e - a.start]
        return int(np.sum((np.abs(xy[:, 0] - b.x) < 9) & (xy[:, 1] - 15 < b.y) & (b.y < xy[:, 1] + 21)))
    s, e = max(a.start, b.start), min(a.end, b.end)
    if s >= e:
        return 0
    p, q = a.xy[s - a.start : e - a.start], b.xy[s - b.start : e - b.start]
    near = (np.abs(p[:, 0] - q[:, 0]) < 10) & (np.abs(p[:, 1] - q[:, 1]) < 28)
    return int(np.sum(near & _in_view(p[:, 0], width)))


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(30, 230, 3))  # type: ignore[return-value]


def plan_behaviour_scene(spec: BehaviourSceneSpec) -> BehaviourScene:
    """Every figure's path and the labels, without drawing: the geometry that tests check and frames show."""
    rng = np.random.default_rng(spec.seed)
    frames = round(spec.seconds * spec.fps)
    figures: list[Track] = []
    bags: list[Bag] = []
    labels: list[LabelledRange] = []
    for ep in spec.episodes:
        path, onset, (start, end), bag = _episode_path(spec, rng, ep)
        first = round(ep.start_s * spec.fps) - onset
        figures.append(Track(ep.kind, first, np.asarray(path.xy), _colour(rng)))
        if bag is not None:
            until = frames if bag.until < 0 else first + bag.until
            bags.append(Bag(len(figures) - 1, bag.side, first + bag.down, until, bag.x, bag.y))
        lo, hi = max(0, first + start), min(frames, frames if end is None else first + end)
        if lo < hi:
            labels.append(LabelledRange(ep.kind, lo, hi))
    # Normal arrivals: each next one after a gap whose mean is the last figure's time in the picture over
    # the density asked for, so that about `walkers` are in view (Little's law). An arrival that would
    # overlap another figure for long is redrawn (another side, lane and speed), or dropped.
    t = -round(_PREROLL_S * spec.fps)
    while t < frames:
        for _ in range(8):
            path = _normal_path(spec, rng)
            track = Track("normal", t, np.asarray(path.xy), _colour(rng))
            others: list[Track | Bag] = [*figures, *bags]
            if all(_overlap(track, o, spec.width) <= _MAX_OVERLAP for o in others):
                figures.append(track)
                break
        visible = int(np.sum(_in_view(track.xy[:, 0], spec.width)))
        t += max(1, round(rng.exponential(visible / max(spec.walkers, 1e-3))))
    return BehaviourScene(spec, frames, tuple(figures), tuple(bags), tuple(labels))


_BAG_COLOUR = (35, 38, 42)


def behaviour_frames(scene: BehaviourScene) -> Iterator[np.ndarray]:
    """The scene's frames (BGR), drawn in the style of :func:`render_scene` on the same camera's background."""
    spec = scene.spec
    background = _background(spec, np.random.default_rng(spec.camera_seed))
    noise = np.random.default_rng([spec.seed, 1])
    carried = {bag.owner: bag for bag in scene.bags}
    for t in range(scene.frames):
        img = background.copy()
        for bag in scene.bags:
            if bag.down <= t < bag.until:
                _draw_bag(img, bag.x, bag.y)
        here = [(i, xy) for i, f in enumerate(scene.figures) if (xy := f.at(t)) is not None]
        for i, (x, y) in sorted(here, key=lambda item: item[1][1]):  # further up the picture: behind
            hw, hh = 5, 11
            cx, cy = round(x), round(y)
            cv2.ellipse(img, (cx, cy), (hw, hh), 0, 0, 360, scene.figures[i].colour, -1)
            cv2.circle(img, (cx, cy - hh - 3), 3, (60, 60, 60), -1)
            bag = carried.get(i)
            if bag is not None and t < bag.down:
                _draw_bag(img, x + bag.side * 10, y + 3)
        noisy = img.astype(np.float32) + spec.noise * noise.standard_normal(img.shape, dtype=np.float32)
        yield np.clip(noisy, 0, 255).astype(np.uint8)


def _draw_bag(img: np.ndarray, x: float, y: float) -> None:
    cx, cy = round(x), round(y)
    cv2.rectangle(img, (cx - 4, cy - 4), (cx + 3, cy + 3), _BAG_COLOUR, -1)


def render_behaviour_scene(path: str | Path, spec: BehaviourSceneSpec) -> list[LabelledRange]:
    """Write the scene as an MP4 (mp4v) and return its labelled ranges, ``[start, end)`` in frames."""
    scene = plan_behaviour_scene(spec)
    _write(path, spec, behaviour_frames(scene))
    return list(scene.labels)


def _write(path: str | Path, spec: BehaviourSceneSpec, frames: Iterator[np.ndarray]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), spec.fps, (spec.width, spec.height))
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()


@dataclass(frozen=True)
class BehaviourFootage:
    """What :func:`make_behaviour_footage` wrote. ``ranges``: each test clip's labelled ranges, by stem."""

    normal: tuple[Path, ...]
    test: tuple[Path, ...]
    ranges: dict[str, tuple[LabelledRange, ...]]
    frames: dict[str, int]  # every clip's length, by stem
    labels: Path  # labels.json, the format of `vidgru evaluate --labels`
    episodes: Path  # episodes.json: {stem: [{"kind", "start", "end"}, ...]}


def clip_seed(seed: int, role: str, index: int) -> int:
    """A clip's activity seed: distinct for every (role, index) and for every footage ``seed``."""
    tag = int.from_bytes(role.encode()[:8], "little")
    return int(np.random.SeedSequence([seed, tag, index]).generate_state(1)[0])


def footage_clip_spec(
    seed: int,
    kind: Literal["normal"] | Behaviour,
    index: int,
    *,
    normal_seconds: float = 60.0,
    episode_clip_seconds: tuple[float, float] = (70.0, 90.0),
    camera_seed: int = 0,
    walkers: float = 3.0,
) -> BehaviourSceneSpec:
    """The scene of clip ``index`` of ``kind`` in footage that :func:`make_behaviour_footage` made with
    these arguments: :func:`plan_behaviour_scene` of it says where every figure was (which figure an
    event's box is on, for a benchmark)."""
    if kind == "normal":
        return BehaviourSceneSpec(
            normal_seconds, clip_seed(seed, "normal", index), camera_seed=camera_seed, walkers=walkers
        )
    s = clip_seed(seed, kind, index)
    rng = np.random.default_rng([s, 2])
    seconds = float(rng.uniform(*episode_clip_seconds))
    episode = _fit_episode(kind, seconds, rng)
    return BehaviourSceneSpec(seconds, s, camera_seed=camera_seed, walkers=walkers, episodes=(episode,))


def make_behaviour_footage(
    folder: str | Path,
    *,
    seed: int,
    normal_clips: int = 10,
    normal_seconds: float = 60.0,
    episodes_per_kind: int = 10,
    episode_clip_seconds: tuple[float, float] = (70.0, 90.0),
    kinds: Sequence[Behaviour] = BEHAVIOURS,
    camera_seed: int = 0,
    walkers: float = 3.0,
) -> BehaviourFootage:
    """Write ``folder/normal/normal_NNN.mp4`` (normal activity only) and ``folder/test/<kind>_NNN.mp4`` (one
    episode each, among normal activity; length drawn from ``episode_clip_seconds``), with labels.json and
    episodes.json in ``folder``. Every clip's activity has its own seed, derived from ``seed``, so footage
    made with another ``seed`` is held out from this; ``camera_seed`` keeps the camera the same.

    Episodes start 10 s in at the earliest and end at least 5 s before the clip does; a left bag stays at
    least 40 s (to the end of the clip).
    """
    folder = Path(folder)
    lo_s, hi_s = episode_clip_seconds
    if lo_s < 60:
        raise ValueError(f"episode clips of {lo_s:g} s are too short: a loiter or a left bag needs 60 s")
    clip_spec = functools.partial(
        footage_clip_spec,
        seed,
        normal_seconds=normal_seconds,
        episode_clip_seconds=(lo_s, hi_s),
        camera_seed=camera_seed,
        walkers=walkers,
    )
    normal, test, ranges, frames = [], [], {}, {}
    for i in range(normal_clips):
        spec = clip_spec("normal", i)
        out = folder / "normal" / f"normal_{i:03d}.mp4"
        render_behaviour_scene(out, spec)
        normal.append(out)
        frames[out.stem] = round(spec.seconds * spec.fps)
    for kind in kinds:
        for i in range(episodes_per_kind):
            spec = clip_spec(kind, i)
            out = folder / "test" / f"{kind}_{i:03d}.mp4"
            ranges[out.stem] = tuple(render_behaviour_scene(out, spec))
            test.append(out)
            frames[out.stem] = round(spec.seconds * spec.fps)
    labels = folder / "labels.json"
    videos = {
        stem: {"frames": n, "anomalous": [[r.start, r.end] for r in ranges.get(stem, ())]}
        for stem, n in frames.items()
    }
    labels.write_text(
        json.dumps(
            {
                "fps": 10,
                "frame_index": "0-based; each anomalous range is [start, end) in frames",
                "videos": videos,
            },
            indent=1,
        )
    )
    episodes = folder / "episodes.json"
    episodes.write_text(
        json.dumps(
            {
                stem: [{"kind": r.kind, "start": r.start, "end": r.end} for r in rs]
                for stem, rs in ranges.items()
            },
            indent=1,
        )
    )
    return BehaviourFootage(tuple(normal), tuple(test), ranges, frames, labels, episodes)


def _fit_episode(kind: Behaviour, seconds: float, rng: np.random.Generator) -> Episode:
    """An episode of ``kind`` that fits a clip of ``seconds``: its labelled part between 10 s in and 5 s
    before the end."""
    if kind == "loiter":
        duration: float | None = min(rng.uniform(35.0, 60.0), seconds - 20.0)
        latest = seconds - duration - 5.0
    elif kind == "pacing":
        duration = rng.uniform(25.0, 40.0)
        latest = seconds - duration - 11.0  # the last leg may end up to 6 s past the duration
    elif kind == "stop_and_go":
        duration = None  # 4-6 stops: at most 28 s
        latest = seconds - 33.0
    else:
        duration = None  # the bag stays to the end of the clip, at least 40 s after the owner has left
        latest = seconds - 50.0
    return Episode(kind, float(rng.uniform(10.0, max(10.0, latest))), duration)
