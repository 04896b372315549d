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


# Real servers for the event sinks (tests/servers.py), each on a free port in its own temp folder.


@pytest.fixture
def redis_server(tmp_path: Path):
    from tests.servers import RedisServer

    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mosquitto(tmp_path: Path):
    from tests.servers import Mosquitto

    server = Mosquitto(tmp_path / "mosquitto")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def webhook():
    from tests.servers import WebhookReceiver

    receiver = WebhookReceiver(secret="test-secret")
    yield receiver
    receiver.close()


# The events service (tests/test_serve.py, tests/test_web.py): one real `vidgru analyze` run, served by a
# real `vidgru serve` process with a bearer token.

SERVE_TOKEN = "test-token-7f3a"


@pytest.fixture(scope="session")
def analyzed(
    clips: dict[str, Path], model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """`vidgru analyze` over the intruder clip: events JSONL (with thumbnails, 1 s clips and timelines),
    every frame's score, and the metrics folder the run wrote to (VIDGRU_METRICS_DIR)."""
    root = tmp_path_factory.mktemp("analyzed")
    config = root / "run.yaml"
    # The review page's tests are about serving a run's events, all of them the intruder's: the behaviour
    # GRU, trained on this fixture's minute of footage, is left out of the run.
    config.write_text(
        FAST_CONFIG + "events:\n  threshold: 1.0\n  clip_seconds: 1.0\nbehaviour:\n  enabled: false\n"
    )
    paths = {
        "events": root / "out" / "events.jsonl",
        "scores": root / "out" / "scores.csv",
        "metrics": root / "metrics",
        "root": root,
    }
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "VIDGRU_METRICS_DIR": str(paths["metrics"])}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vidgru",
            "analyze",
            str(clips["intruder"]),
            "--model",
            str(model_dir),
            "--events",
            str(paths["events"]),
            "--scores",
            str(paths["scores"]),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=root,
    )
    assert result.returncode == 0, result.stderr
    assert paths["events"].read_text().strip(), "the intruder clip gave no event: the serve tests need some"
    return paths


@pytest.fixture(scope="session")
def review_server(analyzed: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """`vidgru serve` on a free port over the analyze run's events and metrics, token required."""
    from tests.serve_process import ServeProcess
    from tests.servers import free_port

    server = ServeProcess(
        [
            "--events",
            str(analyzed["events"]),
            "--metrics-dir",
            str(analyzed["metrics"]),
            "--marks",
            str(tmp_path_factory.mktemp("review") / "review.sqlite"),
        ],
        free_port(),
        token=SERVE_TOKEN,
        cwd=analyzed["root"],
    )
    server.start()
    yield server
    server.stop()
