"""A real `vidgru serve` process on 127.0.0.1, started and stopped by the tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx


class ServeProcess:
    def __init__(self, args: list[str], port: int, token: str | None = None, cwd: Path | None = None) -> None:
        self.args, self.port, self.token, self.cwd = args, port, token, cwd
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 60) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("VIDGRU_API_TOKEN", "VIDGRU_METRICS_DIR")}
        env["PYTHONWARNINGS"] = "ignore"
        if self.token:
            env["VIDGRU_API_TOKEN"] = self.token
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vidgru", "serve", "--port", str(self.port), *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=self.cwd,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vidgru serve exited {self.proc.returncode}: {self.proc.stdout.read()}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"vidgru serve did not answer /healthz on port {self.port} in {timeout}s")

    def client(self, token: str | None = "default") -> httpx.Client:
        """An httpx client for the server; ``token=None`` sends none, the default sends the server's."""
        token = self.token if token == "default" else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
