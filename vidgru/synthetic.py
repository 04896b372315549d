"""Synthetic surveillance scenes: a textured walkway, figures walking at varied speeds, and labelled
intruders that move much faster (a bike or cart among pedestrians, as in UCSD Ped2).

Used by ``vidgru demo`` and by the tests, so neither needs footage of the user's.

Example::

    labels = render_scene("test.mp4", SceneSpec(seconds=30, seed=1, intruders=(Intruder(10, 3),)))
    labels   # [[100, 130]]: anomalous frames, [start, end)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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
