"""`vidgru analyze --address` throughput on a local multi-node Ray cluster, over the UCSD Ped2 test clips.

Starts a real cluster on this machine (tests/cluster.py: `ray start --head --num-cpus=0` plus worker
nodes started with `ray start --address`), runs `vidgru analyze` as its driver, and stops it; once per
layout. Also runs the same command without --address (a local Ray started by the command) for reference.
Prints a table and, with --write, puts it in BENCHMARKS.md.

    python benchmarks/cluster.py --model /tmp/ped2model --write
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_report import cpu_name, write_section

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.cluster import LocalCluster  # noqa: E402  (the repository root, for the test helper)

PED2_TEST = ROOT.parent / "shared" / "datasets" / "ucsd_ped2" / "test"
# (label, CPUs of each worker node); None: no cluster, `vidgru analyze` starts its own local Ray.
LAYOUTS: list[tuple[str, list[int] | None]] = [
    ("local Ray started by the command (no --address)", None),
    ("1 worker node, 2 CPUs", [2]),
    ("2 worker nodes, 1 CPU each", [1, 1]),
]
SUMMARY = re.compile(r"analysed (\d+) frames of (\d+) clip\(s\) in ([\d.]+)s \(([\d.]+) frames/s\)")


def analyze(model: Path, out: Path, env: dict[str, str], address: str | None) -> tuple[int, float, float]:
    """Frames, frames/s as `analyze` reports it, and the wall time of the whole command."""
    args = [
        sys.executable,
        "-m",
        "vidgru",
        "analyze",
        str(PED2_TEST),
        "--model",
        str(model),
        "--events",
        str(out / "events.jsonl"),
        "--scores",
        str(out / "scores.csv"),
        "--fresh",
    ]
    if address:
        args += ["--address", address]
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=1800)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"analyze failed:\n{done.stderr[-3000:]}")
    match = SUMMARY.search(done.stdout)
    if not match:
        raise SystemExit(f"no summary line in:\n{done.stdout}")
    return int(match[1]), float(match[4]), wall


def run_layout(model: Path, nodes: list[int] | None, work: Path) -> tuple[int, float, float]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if nodes is None:
        return analyze(model, work, env, None)
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="vgb", dir="/tmp")))
    try:
        cluster.start_head()
        cluster.wait_for_nodes(1)
        for i, cpus in enumerate(nodes):
            cluster.add_worker(f"node_{i}", cpus)
            cluster.wait_for_nodes(2 + i)
        return analyze(model, work, cluster.env, cluster.address)
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, required=True, help="model from `vidgru train` on Ped2 train")
    parser.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, nodes) in enumerate(LAYOUTS):
            load = os.getloadavg()[0]
            frames, fps, wall = run_layout(args.model, nodes, Path(tmp) / str(i))
            rows.append(f"| {label} | {frames} | {fps:.1f} | {wall:.1f} s | {load:.2f} |")
            print(rows[-1], flush=True)
    table = "\n".join(
        [
            "| layout | frames | frames/s as reported by `analyze` | wall time | load average before |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    body = (
        f"Measured {dt.date.today().isoformat()} on {os.cpu_count()} cores ({cpu_name()}), no GPU. "
        f"Command: `python benchmarks/cluster.py --model {args.model} --write` (12 Ped2 test clips; each "
        "cluster: `ray start --head --num-cpus=0` and worker nodes started with `ray start --address`, "
        "all on this machine; default config, so each clip, under 480 frames, is one task). The 1-minute "
        "load average before each run is shown because the machine may be shared: on 2 cores, a load "
        "above 2 means other work competed with the run.\n\n" + table
    )
    print(body)
    if args.write:
        write_section("cluster", "`vidgru analyze` on a Ray cluster (Ped2 test clips)", body)


if __name__ == "__main__":
    main()
