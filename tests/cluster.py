"""A real multi-node Ray cluster on this machine, for the scale-out tests and benchmarks/cluster.py.

``ray start --head`` (no CPUs: it only coordinates, as a head pod would) plus worker nodes started with
``ray start --address``, each a separate raylet with its own workers. Every process runs in its own
session (``--block``), so a node can be killed as a whole (SIGKILL to its process group), and everything
is started under one short temp dir, so that stopping kills only the processes that name it. Token
authentication is on, with a token of its own that every node and driver gets in ``env``, as on a real
cluster (Ray 2.60 turns it on for a local head by itself, and its worker nodes must share the token).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalCluster:
    def __init__(self, root: Path) -> None:
        # Ray's socket paths live under the temp dir and must stay under 107 bytes: keep it short.
        self.root = root
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: dict[str, subprocess.Popen[bytes]] = {}
        self.env = {
            **os.environ,
            "PYTHONWARNINGS": "ignore",
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
        }

    def _ray_start(self, name: str, *args: str) -> None:
        log = (self.root / f"{name}.log").open("wb")
        self.nodes[name] = subprocess.Popen(
            [
                str(RAY),
                "start",
                *args,
                "--block",
                "--disable-usage-stats",
                "--node-ip-address=127.0.0.1",
                # Fixed default ports would clash between nodes on one machine, and with other Rays on it.
                f"--dashboard-agent-listen-port={free_port()}",
                f"--metrics-export-port={free_port()}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=self.env,
        )

    def start_head(self, cpus: int = 0) -> None:
        """``cpus``: 0 (the default) only coordinates, as a head pod would; else a one-node cluster."""
        self._ray_start(
            "head",
            "--head",
            f"--port={self.port}",
            f"--num-cpus={cpus}",
            f"--temp-dir={self.root / 'ray'}",
            "--include-dashboard=false",
        )

    def add_worker(self, name: str, cpus: int) -> None:
        self._ray_start(name, f"--address={self.address}", f"--num-cpus={cpus}")

    def wait_for_nodes(self, count: int, timeout: float = 120) -> None:
        """Until ``count`` nodes (head included) are alive, asked of the cluster by a short-lived driver."""
        script = (
            "import sys, time, ray\n"
            f"ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False)\n"
            f"deadline = time.monotonic() + {timeout}\n"
            f"while sum(n['Alive'] for n in ray.nodes()) < {count}:\n"
            "    if time.monotonic() > deadline: sys.exit(1)\n"
            "    time.sleep(0.5)\n"
        )
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run(
                [sys.executable, "-c", script], capture_output=True, timeout=timeout + 30, env=self.env
            )
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                logs = "\n".join(p.read_text(errors="replace")[-1500:] for p in self.root.glob("*.log"))
                raise RuntimeError(f"the local Ray cluster did not reach {count} nodes:\n{logs}")
            time.sleep(1)

    def node_processes(self, name: str) -> list[str]:
        """Titles (``ray::decode_segment``, ``ray::FeatureActor`` ...) of a node's processes: its process
        group and their descendants (Ray's workers run in sessions of their own, children of the raylet)."""
        parents: dict[int, int] = {}
        groups: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    parents[int(entry.name)], groups[int(entry.name)] = int(stat[1]), int(stat[2])
                except (OSError, IndexError, ValueError):
                    continue
        group = self.nodes[name].pid  # start_new_session: the group's id is the `ray start` process's
        ours = {pid for pid, g in groups.items() if g == group}
        grew = True
        while grew:
            more = {pid for pid, parent in parents.items() if parent in ours} - ours
            ours |= more
            grew = bool(more)
        titles = []
        for pid in ours:
            try:
                titles.append(
                    Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                )
            except OSError:
                continue
        return titles

    def kill_node(self, name: str) -> None:
        """The node dies at once, its raylet and every worker on it, as when a machine is lost."""
        os.killpg(self.nodes[name].pid, signal.SIGKILL)
        self.nodes[name].wait()

    def stop(self) -> None:
        for proc in self.nodes.values():
            if proc.poll() is None:
                proc.terminate()  # `ray start --block` stops the node's processes on SIGTERM
        for proc in self.nodes.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # Anything left that was started for this cluster names its temp dir (--session-dir and the like).
        marker = str(self.root).encode()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if marker in (entry / "cmdline").read_bytes():
                        os.kill(int(entry.name), signal.SIGKILL)
                except (OSError, ProcessLookupError):
                    continue
        shutil.rmtree(self.root, ignore_errors=True)
