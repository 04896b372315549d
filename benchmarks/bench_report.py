"""What every benchmark script shares: running the CLI, the machine's name, and its section of
BENCHMARKS.md.

Each script owns the text between its ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` markers; writing
replaces that text only, so the hand-written notes around it stay.
"""

from __future__ import annotations

import platform
import re
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def run_vidgru(*args: str, env: dict[str, str] | None = None) -> tuple[str, float]:
    """Run ``vidgru ARGS`` as a user would; its standard output and wall time. Exits on failure."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "vidgru", *args], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"vidgru {args[0]} failed:\n{result.stderr[-2000:]}")
    return result.stdout, time.monotonic() - started


def frames_per_s(out: str) -> float:
    """The frames/s that analyze and evaluate print: "... (N frames/s)"."""
    found = re.search(r"\(([\d.]+) frames/s\)", out)
    if found is None:
        sys.exit(f"no frames/s in the output:\n{out[-2000:]}")
    return float(found.group(1))


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, or what platform knows."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.is_file() else []
    names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def write_section(name: str, heading: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Put ``body`` (without markers) between ``name``'s markers, or append it under ``heading``."""
    begin, end = markers(name)
    section = f"{begin}\n{body.strip()}\n{end}"
    text = path.read_text(encoding="utf-8")
    if begin in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + f"\n\n## {heading}\n\n{section}\n"
    path.write_text(text, encoding="utf-8")
