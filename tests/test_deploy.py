"""The deployment files: docker-compose.yml (and its GPU override) validated by Compose itself, the configs
they mount loaded by vidgru's own loaders, and the KubeRay manifests' wiring. Docker cannot run here, so
the stack is not started; Compose's `config` parses and validates the files against its schema."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from vidgru.config import load_config
from vidgru.config.cameras import load_cameras_config

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> list[str]:
    """Debian's docker-compose (scripts/system-deps), or the Compose plugin where Docker is installed."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    pytest.fail(
        "no Compose to validate docker-compose.yml with; run scripts/system-deps (Debian's docker-compose)"
    )


def _config(*files: str, profile: str | None = None) -> dict:
    args = [arg for f in files for arg in ("-f", str(ROOT / f))]
    if profile:
        args = ["--profile", profile, *args]
    done = subprocess.run(
        [*_compose(), *args, "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "FOOTAGE": "/srv/footage", "MODEL": "/srv/model"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def _mounts(service: dict) -> dict[str, str]:
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source"), volume["target"]
        out[target] = source
    return out


def test_compose_stack_is_valid_and_wired() -> None:
    stack = _config("docker-compose.yml", profile="live")
    services = stack["services"]
    assert {"ray-token", "ray-head", "ray-worker", "redis", "analyze", "watch", "events"} <= set(services)
    head, worker, job = services["ray-head"], services["ray-worker"], services["analyze"]
    assert "--head" in head["entrypoint"] and "--num-cpus=0" in head["entrypoint"]
    assert "--address=ray-head:6379" in worker["entrypoint"]
    assert "--address=ray-head:6379" in job["command"] and job["command"][0] == "analyze"
    # workers open the footage by the path the driver names: the same mount everywhere
    assert _mounts(worker)["/data/footage"] == _mounts(job)["/data/footage"] == "/srv/footage"
    for name in ("ray-head", "ray-worker", "analyze", "watch"):
        env = services[name]["environment"]
        assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN_PATH"] == "/ray-auth/token"
    assert services["events"]["command"][:2] == ["serve", "--events=/data/output"]
    assert "--config=/app/deploy/compose/analyze.yaml" in job["command"]


def test_compose_gpu_override_reserves_gpus_for_workers() -> None:
    stack = _config("docker-compose.yml", "deploy/compose/docker-compose.gpu.yml")
    devices = stack["services"]["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]


def test_compose_configs_load_with_vidgru() -> None:
    cfg = load_config(ROOT / "deploy" / "compose" / "analyze.yaml")
    assert [s.type for s in cfg.delivery.sinks] == ["redis"]
    cameras = load_cameras_config(ROOT / "deploy" / "compose" / "cameras.yaml")
    assert cameras.cameras[0].id == "entrance" and str(cameras.model) == "/data/model"


def test_kuberay_manifests_share_storage_token_and_cluster() -> None:
    kuberay = ROOT / "deploy" / "kuberay"
    (claim,) = yaml.safe_load_all((kuberay / "storage.yaml").read_text())
    (cluster,) = yaml.safe_load_all((kuberay / "raycluster.yaml").read_text())
    (job,) = yaml.safe_load_all((kuberay / "rayjob-analyze.yaml").read_text())
    assert (cluster["kind"], job["kind"], claim["kind"]) == ("RayCluster", "RayJob", "PersistentVolumeClaim")
    assert job["spec"]["clusterSelector"]["ray.io/cluster"] == cluster["metadata"]["name"]
    assert job["spec"]["entrypoint"].startswith("vidgru analyze /data/footage")
    pods = [cluster["spec"]["headGroupSpec"]["template"]["spec"]]
    pods += [g["template"]["spec"] for g in cluster["spec"]["workerGroupSpecs"]]
    for pod in pods:
        assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        (container,) = pod["containers"]
        assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/data", "/dev/shm"}
        assert {e["name"] for e in container["env"]} == {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"}
    assert cluster["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
