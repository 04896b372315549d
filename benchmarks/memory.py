"""Memory of `vidgru analyze` on a long recording: how much the driver holds per frame of a video.

Builds one long video from the 12 UCSD Ped2 test clips played ``--repeat`` times over (in ``--work``, never
in the repository), trains on Ped2's 16 normal clips unless ``--model`` is given, then runs
`vidgru analyze` in a child Python that reports its own peak resident memory (``getrusage``): once on
one test clip (what the process needs whatever the video's length: torch, Ray's client, the model) and
once on the long video. The difference, per frame, is what the analysis of a video holds per frame of
it, so it says how long a recording one `analyze` fits in memory. Prints a table and, with --write, puts
it in BENCHMARKS.md.

    python benchmarks/memory.py --work /tmp/mem --write
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
from pathlib import Path

import cv2
from bench_report import cpu_name, frames_per_s, write_section
from bench_report import run_vidgru as run

ROOT = Path(__file__).resolve().parents[1]
PED2 = ROOT.parent / "shared" / "datasets" / "ucsd_ped2"
# The child: `vidgru ARGS` in this process, then its peak RSS in kB (Linux's ru_maxrss unit) on stderr.
CHILD = """
import resource, sys
from vidgru.cli import main
sys.argv = ["vidgru", *sys.argv[1:]]
code = 0
try:
    main()
except SystemExit as stop:
    code = stop.code or 0
print("peak_rss_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def long_video(path: Path, repeat: int) -> int:
    """The Ped2 test clips, in order, ``repeat`` times over, as one MP4 at their 10 frames/s; its frames."""
    clips = sorted((PED2 / "test").glob("*.mp4"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (360, 240))
    if not writer.isOpened():
        sys.exit(f"cannot write {path}: OpenCV has no mp4v encoder")
    frames = 0
    for _ in range(repeat):
        for clip in clips:
            cap = cv2.VideoCapture(str(clip))
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                writer.write(frame)
                frames += 1
            cap.release()
    writer.release()
    return frames


def analyze_peak(video: Path, model: Path, events: Path) -> tuple[float, float]:
    """Peak resident memory of `vidgru analyze` (MB) and its frames/s."""
    args = ["analyze", str(video), "--model", str(model), "--events", str(events), "--fresh"]
    result = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"vidgru analyze failed:\n{result.stderr[-2000:]}")
    line = next(ln for ln in result.stderr.splitlines() if ln.startswith("peak_rss_kb"))
    return int(line.split()[1]) / 1024, frames_per_s(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--work", type=Path, required=True, help="folder for the long video, model and events"
    )
    parser.add_argument(
        "--repeat", type=int, default=6, help="times the test clips are played (6: 20 minutes)"
    )
    parser.add_argument(
        "--model", type=Path, help="a trained model (default: train one on Ped2's normal clips)"
    )
    parser.add_argument("--write", action="store_true", help="put the table in BENCHMARKS.md")
    args = parser.parse_args()
    if not (PED2 / "test").is_dir():
        sys.exit(f"UCSD Ped2 not found at {PED2}; the benchmark reads it from ../shared beside the checkout")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    model = args.model
    if model is None:
        model = work / "model"
        train_clips = sorted(str(p) for p in (PED2 / "train").glob("*.mp4"))
        print("training on Ped2's normal clips ...", flush=True)
        run("train", "--normal", *train_clips, "--out", str(model))
    video = work / "long.mp4"
    print(f"writing the test clips {args.repeat} times over to {video} ...", flush=True)
    frames = long_video(video, args.repeat)
    short = sorted((PED2 / "test").glob("*.mp4"))[0]
    short_frames = int(cv2.VideoCapture(str(short)).get(cv2.CAP_PROP_FRAME_COUNT))
    print("analysing one clip, then the long video ...", flush=True)
    base_mb, base_fps = analyze_peak(short, model, work / "events-short.jsonl")
    long_mb, long_fps = analyze_peak(video, model, work / "events-long.jsonl")
    per_frame_kb = (long_mb - base_mb) * 1024 / (frames - short_frames)
    hour_gb = {fps: per_frame_kb * fps * 3600 / 1024**2 for fps in (10, 25)}
    today = dt.date.today().isoformat()
    body = "\n".join(
        [
            f"Measured {today} on {cpu_name()}, 2 cores. Command: `python benchmarks/memory.py --work "
            f"{work} --repeat {args.repeat}{f' --model {args.model}' if args.model else ''}`; model `{model}`.",
            "",
            "| video | frames | `analyze` peak resident memory (MB) | frames/s |",
            "|---|---|---|---|",
            f"| one test clip ({short.name}) | {short_frames} | {base_mb:.0f} | {base_fps:.1f} |",
            f"| the test clips {args.repeat} times over | {frames} | {long_mb:.0f} | {long_fps:.1f} |",
            "",
            f"Held per frame of video: {per_frame_kb:.1f} KiB, so {hour_gb[10]:.2f} GiB an hour of video at 10 "
            f"frames/s and {hour_gb[25]:.2f} GiB at 25 (arithmetic from the figure per frame: only the 10 "
            "frames/s video was run).",
        ]
    )
    print(body)
    if args.write:
        write_section("memory", "`vidgru analyze` memory on a long recording", body)


if __name__ == "__main__":
    main()
