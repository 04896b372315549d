"""Footage for ``vidgru demo``: a normal scene to train on and a scene with labelled intruders."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vidgru.synthetic import Intruder, SceneSpec, render_scene


@dataclass
class DemoFootage:
    train: list[Path]
    test: list[Path]
    labels: Path


def make_demo_footage(folder: str | Path) -> DemoFootage:
    folder = Path(folder)
    train = folder / "footage" / "normal.mp4"
    test = folder / "footage" / "with_intruders.mp4"
    render_scene(train, SceneSpec(seconds=60, seed=1))
    ranges = render_scene(test, SceneSpec(seconds=40, seed=2, intruders=(Intruder(8, 3), Intruder(26, 4))))
    labels = folder / "footage" / "labels.json"
    labels.write_text(json.dumps({"fps": 10, "videos": {test.stem: {"anomalous": ranges}}}, indent=2) + "\n")
    return DemoFootage([train], [test], labels)
