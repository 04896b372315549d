"""Shared fixtures: small generated clips, a local Ray, and one tiny model trained through the real pipeline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vidgru.config import VidgruConfig
from vidgru.synthetic import Intruder, SceneSpec, render_scene

PED2 = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "ucsd_ped2"

# A small, fast model: one GRU, one epoch, fewer windows. Same code paths as the defaults.
FAST_CONFIG = """\
temporal:
  ensemble: 1
  epochs: 1
  max_windows: 20000
ray:
  num_cpus: 2
"""


def fast_config() -> VidgruConfig:
    cfg = VidgruConfig()
    cfg.temporal.ensemble, cfg.temporal.epochs, cfg.temporal.max_windows = 1, 1, 20000
    cfg.ray.num_cpus = 2
    return cfg


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    render_scene(root / "normal" / "normal_a.mp4", SceneSpec(seconds=20, seed=1))
    render_scene(root / "normal" / "normal_b.mp4", SceneSpec(seconds=15, seed=3))
    labels = render_scene(
        root / "test" / "intruder.mp4", SceneSpec(seconds=15, seed=2, intruders=(Intruder(8, 3),))
    )
    config = root / "fast.yaml"
    config.write_text(FAST_CONFIG)
    return {
        "normal": root / "normal",
        "intruder": root / "test" / "intruder.mp4",
        "config": config,
        "labels": labels,  # type: ignore[dict-item]
    }


@pytest.fixture(scope="session")
def model_dir(clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Trained once through the real CLI: real Ray, real backbone, real GRU training."""
    out = tmp_path_factory.mktemp("model") / "m"
    result = run_cli(
        "train", "--normal", str(clips["normal"]), "--out", str(out), "--config", str(clips["config"])
    )
    assert result.returncode == 0, result.stderr
    return out


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "vidgru", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="session")
def ray_local():
    import ray

    from workers.runtime import ensure_ray

    ensure_ray(fast_config().ray)
    yield
    ray.shutdown()
