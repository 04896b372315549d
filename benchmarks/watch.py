"""Live benchmark: ``vidgru watch`` on 1, 2 and 4 simultaneous 10 fps RTSP streams of the UCSD Ped2 test clips.

A real RTSP server (tests/rtsp_server.py, GStreamer under /usr/bin/python3) serves one mount per camera,
each playing the 12 test clips in a different order, in real time (their frames re-encoded once into one
continuous MPEG-4 file per camera, in a temp dir: see :func:`long_clip`). For each number of streams,
``vidgru watch`` runs for ``--duration`` seconds (after its start-up) and the script reads back:

- frames analysed per second, over all cameras (from ``--scores``: frames scored / the scoring window);
- frames dropped (the readers' count, printed by ``vidgru watch`` when it stops);
- capture -> event emission latency, p50 and p95, over the ``start`` and ``end`` records (each record
  carries ``captured``, the capture time of the frame that caused it, and ``emitted``);
- capture -> score latency, p50 and p95, over every analysed frame;
- memory, sampled every 5 s: the `vidgru watch` process's resident memory, and the proportional memory
  (PSS: shared pages split between the processes that map them, so Ray's object store counts once) of it
  and every process under it (Ray's own and its workers), one minute after the start and at the end. A
  process that runs for days must not grow: run with a long ``--duration`` to see whether it does.

"Capture" is when vidgru's reader took the frame off the stream, so what the network and the camera add
before that is not included (on 127.0.0.1 it is small). Prints a table; ``--write`` puts it in BENCHMARKS.md.

    python benchmarks/watch.py --model /tmp/ped2model --write
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import yaml
from bench_report import cpu_name, markers, write_section

from vidgru.decode import video_frames

ROOT = Path(__file__).resolve().parents[1]
PED2 = ROOT.parent / "shared" / "datasets" / "ucsd_ped2"
SERVER = ROOT / "tests" / "rtsp_server.py"
BEGIN, END = markers("watch")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seconds(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    p50, p95 = np.percentile(values, [50, 95])
    return f"{p50:.2f} / {p95:.2f}"


def _memory_mb(pid: int, field: str, name: str) -> float:
    """``field`` (kB) of ``/proc/PID/NAME`` in MB; 0 once the process has gone."""
    try:
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process under it, from each process's parent in ``/proc/PID/stat``."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (field 2) may hold spaces: the parent is the 2nd field after its ")".
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def sample_memory(pid: int) -> tuple[float, float]:
    """The process's resident memory and the PSS of it and all its descendants, in MB."""
    tree = sum(_memory_mb(p, "Pss", "smaps_rollup") for p in _descendants(pid))
    return _memory_mb(pid, "VmRSS", "status"), tree


def long_clip(clips: list[Path], out: Path) -> Path:
    """The clips' frames, one after the other, as one MPEG-4 file at 10 fps (written outside the repo).

    Served one by one, the Ped2 files stall the RTSP stream at clip boundaries for seconds: they hold
    B-frames whose last timestamp runs past the clip's duration, and GStreamer's concat overlaps them.
    One continuous file has no boundary; the frames are re-encoded once (OpenCV's MPEG-4 part 2).
    """
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (360, 240))
    try:
        for clip in clips:
            for frame in video_frames(clip):
                writer.write(frame)
    finally:
        writer.release()
    return out


def run_streams(n: int, port: int, model: Path, duration: float, work: Path) -> dict[str, object]:
    run_dir = work / f"streams{n}"
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / "cameras.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": str(model),
                "cameras": [{"id": f"cam{i}", "url": f"rtsp://127.0.0.1:{port}/cam{i}"} for i in range(n)],
            }
        )
    )
    events, scores = run_dir / "events.jsonl", run_dir / "scores.csv"
    watch = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vidgru",
            "watch",
            "--config",
            str(config),
            "--events",
            str(events),
            "--scores",
            str(scores),
            "--duration",
            str(duration),
            "--status-every",
            "10",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Memory is sampled beside communicate(), which reads both pipes so that neither fills and blocks.
    started, samples, stopped = time.monotonic(), [], threading.Event()

    def sample() -> None:
        while not stopped.is_set():
            samples.append((time.monotonic() - started, *sample_memory(watch.pid)))
            stopped.wait(5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stdout, stderr = watch.communicate(timeout=duration + 300)
    except subprocess.TimeoutExpired:
        watch.kill()
        sys.exit("vidgru watch did not stop")
    finally:
        stopped.set()
        sampler.join()
    if watch.returncode != 0:
        sys.exit(f"vidgru watch failed:\n{stderr[-3000:]}")
    (run_dir / "stderr.log").write_text(stderr)
    (run_dir / "memory.csv").write_text(
        "seconds,watch_rss_mb,tree_pss_mb\n" + "".join(f"{t:.0f},{r:.1f},{p:.1f}\n" for t, r, p in samples)
    )
    # From a minute in (start-up is over) to the last sample but one (the last may catch Ray stopping).
    whole = [s for s in samples if s[2] > 0]
    after_1min = next((s for s in whole if s[0] >= 60), None)
    at_end = whole[-2] if len(whole) > 1 else None
    memory = (
        f"{after_1min[1]:.0f} -> {at_end[1]:.0f} / {after_1min[2]:.0f} -> {at_end[2]:.0f}"
        f" (s {after_1min[0]:.0f}-{at_end[0]:.0f})"
        if after_1min is not None and at_end is not None and at_end[0] > after_1min[0]
        else "n/a (a run under a minute)"
    )
    dropped = sum(int(m) for m in re.findall(r"analysed, (\d+) dropped", stdout))
    with scores.open() as fh:
        rows = list(csv.DictReader(fh))
    captured = np.array([float(r["captured"]) for r in rows])
    scored = np.array([float(r["scored"]) for r in rows])
    records = [json.loads(line) for line in events.read_text().splitlines()]
    alerts = [r for r in records if r["type"] in ("start", "end")]
    offline = [r for r in records if r["type"] == "camera_offline"]
    return {
        "streams": n,
        "analysed_fps": len(rows) / (scored.max() - captured.min()) if len(rows) > 1 else 0.0,
        "analysed": len(rows),
        "dropped": dropped,
        "events": sum(r["type"] == "start" for r in alerts),
        "event_latency": percentiles([seconds(r["emitted"]) - seconds(r["captured"]) for r in alerts]),
        "score_latency": percentiles(list(scored - captured)),
        "offline": len(offline),
        "load": os.getloadavg()[0],  # other processes on the machine change every number here
        "memory": memory,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="Ped2 model dir (default: train one with 'vidgru train')")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds each run watches (default 60)")
    parser.add_argument("--streams", default="1,2,4", help="numbers of simultaneous streams (default 1,2,4)")
    parser.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    args = parser.parse_args()
    if not PED2.is_dir():
        sys.exit(f"UCSD Ped2 not found at {PED2}")
    work = Path(tempfile.mkdtemp(prefix="vidgru-watch-"))
    model = args.model
    if model is None:
        model = work / "model"
        train = sorted(str(p) for p in (PED2 / "train").glob("*.mp4"))
        subprocess.run(
            [sys.executable, "-m", "vidgru", "train", "--normal", *train, "--out", str(model)], check=True
        )
    counts = [int(n) for n in args.streams.split(",")]
    clips = sorted((PED2 / "test").glob("*.mp4"))
    port = free_port()
    # Each camera plays all 12 clips (201 s), starting at a different one.
    mounts = [
        f"cam{i}={long_clip(clips[3 * i :] + clips[: 3 * i], work / f'cam{i}.mp4')}"
        for i in range(max(counts))
    ]
    server = subprocess.Popen(
        [
            "/usr/bin/python3",
            str(SERVER),
            "--port",
            str(port),
            # Each camera's 201 s, played as often as a run needs (start-up included).
            "--repeat",
            str(math.ceil((args.duration + 120) / 201)),
            *(a for m in mounts for a in ("--stream", m)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if server.stdout.readline().strip() != "ready":  # type: ignore[union-attr]
            sys.exit(f"RTSP server did not start: {server.stderr.read()}")  # type: ignore[union-attr]
        results = [run_streams(n, port, model, args.duration, work) for n in counts]
    finally:
        server.terminate()
        server.wait(10)

    table = [
        "| streams (10 fps each) | frames analysed/s | frames analysed | frames dropped | events | "
        "capture -> event emitted, p50 / p95 (s) | capture -> score, p50 / p95 (s) | load average at end | "
        "memory (MB) from 1 min in to the end: `vidgru watch` resident / it and its Ray processes, PSS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    table += [
        f"| {r['streams']} | {r['analysed_fps']:.1f} | {r['analysed']} | {r['dropped']} | {r['events']} | "
        f"{r['event_latency']} | {r['score_latency']} | {r['load']:.1f} | {r['memory']} |"
        for r in results
    ]
    cpu = cpu_name()
    text = "\n".join(
        [
            BEGIN,
            f"Measured {dt.date.today().isoformat()} on {os.cpu_count()} cores ({cpu}), no GPU. "
            "Command: `python benchmarks/watch.py"
            + (f" --model {args.model}" if args.model else "")
            + ("" if args.streams == "1,2,4" else f" --streams {args.streams}")
            + f" --duration {args.duration:g} --write`. Each run watches for {args.duration:g} s after start-up;"
            " default config (local Ray, one CNN actor). Each camera streams the 12 test clips (2,010 frames)"
            " from a different start, over and over for as long as the run needs, re-encoded once into one"
            " MPEG-4 part 2 file (the Ped2 H.264 files"
            " served one after another stall the stream at clip boundaries). The load average (1 min)"
            " counts every process on the machine, vidgru's own included.",
            "",
            *table,
            "",
            f"Camera-offline records during the runs: {', '.join(str(r['offline']) for r in results)}.",
            END,
        ]
    )
    print(text)
    if args.write:
        write_section(
            "watch",
            "`vidgru watch`: live RTSP streams of UCSD Ped2",
            text.removeprefix(BEGIN).removesuffix(END),
        )


if __name__ == "__main__":
    main()
