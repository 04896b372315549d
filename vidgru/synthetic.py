"""Synthetic surveillance scenes: a textured walkway, figures walking at varied speeds, and labelled
intruders that move much faster (a bike or cart among pedestrians, as in UCSD Ped2).

Used by ``vidgru demo`` and by the tests, so neither needs footage of the user's.

Example::

    labels = render_scene("test.mp4", SceneSpec(seconds=30, seed=1, intruders=(Intruder(10, 3),)))
    labels   # [[100, 130]]: anomalous frames, [start, end)

:func:`inject_tampering` turns frames of normal footage into camera tampering (a frozen picture, a covered
lens, a view that has moved), for the tampering tests and benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def _background(spec: SceneSpec, rng: np.random.Generator) -> np.ndarray:
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
