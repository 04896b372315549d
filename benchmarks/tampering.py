"""Camera tampering on UCSD Ped2: injected freezes, covers and shifts, and the untouched clips.

Fits the tampering reference on the 16 normal training clips, then runs the detector on the 12 test clips
(held out: the reference never saw them), each clip once per tampering kind, injected with
:func:`vidgru.synthetic.inject_tampering` at a start drawn from a fixed seed:

- freeze: the picture frozen for 3 s;
- cover: the lens covered for 2 s, once by a near-uniform dark cover and once by an out-of-focus hand or
  cloth sliding in over 0.3 s;
- shift: the view panned by 15% of the width over 0.3 s and held to the end of the clip.

An injection is detected when an episode of its kind is raised within 2 s of the injection's first frame.
It also runs the untouched test clips (their pedestrian anomalies are not tampering) and the 16 training
clips (in-sample: a sanity check of the calibration only), where any tampering episode is a false alarm.
Every condition runs twice: on the decoded frames as they are, and after writing the frames through
OpenCV's MPEG-4 encoder and decoding them again (a recorder re-encoding the stream), which turns an exact
freeze into a near one.

    python benchmarks/tampering.py --write
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from bench_report import cpu_name, write_section

from vidgru.config import TamperingConfig
from vidgru.decode import video_frames
from vidgru.synthetic import inject_tampering
from vidgru.tampering import (
    FrameMeasurer,
    TamperChange,
    TamperDetector,
    TamperReference,
    fit_reference,
)

ROOT = Path(__file__).resolve().parents[1]
PED2 = ROOT.parent / "shared" / "datasets" / "ucsd_ped2"
FPS = 10.0
DEADLINE_S = 2.0
# (row label, kind, duration in frames or None for "to the end", cover style)
CONDITIONS = [
    ("freeze 3 s", "freeze", 30, "dark"),
    ("cover 2 s, dark", "cover", 20, "dark"),
    ("cover 2 s, hand/cloth", "cover", 20, "blob"),
    ("shift 15%, held", "shift", None, "dark"),
]


def reencode(frames: list[np.ndarray], work: Path) -> list[np.ndarray]:
    path = work / "clip.mp4"
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return video_frames(path)


@dataclass
class Run:
    starts: list[TamperChange] = field(default_factory=list)  # start changes, in order
    push_s: float = 0.0
    frames: int = 0


def detect(frames: list[np.ndarray], reference: TamperReference, cfg: TamperingConfig) -> Run:
    detector, run = TamperDetector(reference, cfg, FPS), Run()
    for index, frame in enumerate(frames):
        started = time.perf_counter()
        changes = detector.push(frame, index)
        run.push_s += time.perf_counter() - started
        run.starts += [c for c in changes if c.type == "start"]
    run.frames = len(frames)
    detector.close()
    return run


@dataclass
class Row:
    label: str
    detected: int = 0
    injected: int = 0
    delays: list[float] = field(default_factory=list)  # injection start -> episode raised, seconds
    other: int = 0  # episodes of another kind, or of this kind before the injection
    missed: list[str] = field(default_factory=list)


def run_condition(
    label: str,
    kind: str,
    duration: int | None,
    style: str,
    test: dict[str, list[np.ndarray]],
    reference: TamperReference,
    cfg: TamperingConfig,
    recode: bool,
    work: Path,
    costs: list[float],
) -> Row:
    row = Row(label)
    rng = np.random.default_rng(next(i for i, c in enumerate(CONDITIONS) if c[0] == label))
    for seed, (name, frames) in enumerate(test.items()):
        # Far enough in for the detector to have seen normal frames, early enough for the whole episode.
        start = int(rng.integers(round(2 * FPS), len(frames) - round(4 * FPS)))
        tampered = inject_tampering(frames, kind, start, duration, seed=seed, cover_style=style)  # type: ignore[arg-type]
        if recode:
            tampered = reencode(tampered, work)
        run = detect(tampered, reference, cfg)
        costs.append(run.push_s / run.frames)
        row.injected += 1
        hit = next(
            (c for c in run.starts if c.episode.kind == kind and c.episode.confirmed_frame >= start), None
        )
        if hit is not None and (hit.episode.confirmed_frame - start) / FPS <= DEADLINE_S:
            row.detected += 1
            row.delays.append((hit.episode.confirmed_frame - start) / FPS)
        else:
            row.missed.append(f"{name}@{start}")
        row.other += sum(1 for c in run.starts if c is not hit)
    return row


def false_alarms(
    clips: dict[str, list[np.ndarray]],
    reference: TamperReference,
    cfg: TamperingConfig,
    recode: bool,
    work: Path,
    costs: list[float],
) -> tuple[int, list[str]]:
    names = []
    for name, frames in clips.items():
        run = detect(reencode(frames, work) if recode else frames, reference, cfg)
        costs.append(run.push_s / run.frames)
        names += [f"{name}:{c.episode.kind}@{c.episode.start_frame}" for c in run.starts]
    return len(names), names


def headroom(clips: dict[str, list[np.ndarray]], reference: TamperReference, cfg: TamperingConfig) -> str:
    """How close untouched footage comes to each rule's line: the margin the calibration leaves."""
    still_below = cfg.freeze_ratio * reference.change_low
    shift_at = max(cfg.shift_margin * reference.shift_high, cfg.shift_min)
    changes, blanks, moves = [], [], []
    for frames in clips.values():
        measurer = FrameMeasurer(reference.size, reference.background)
        for frame in frames:
            m = measurer.measure(measurer.small(frame))
            if m.change is not None:
                changes.append(m.change)
            blanks.append(float(np.mean(m.detail < cfg.cover_ratio * reference.detail_low)))
            moves.append(max(abs(m.displacement[0]), abs(m.displacement[1])))
    return (
        f"Closest approach on the untouched test clips: smallest frame change {min(changes):.3f} "
        f"(still below {still_below:.3f}); largest blank share {max(blanks):.2f} (cover at {cfg.cover_area:.2f}); "
        f"largest displacement {max(moves):.4f} of the frame (shift above {shift_at:.4f})."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help="put the table into BENCHMARKS.md")
    args = parser.parse_args()
    if not PED2.is_dir():
        sys.exit(f"{PED2} not found: the benchmark needs UCSD Ped2 beside the checkout")
    cv2.setNumThreads(1)  # as in a decode worker: one core per stream
    cfg = TamperingConfig()
    train = {p.stem: video_frames(p) for p in sorted((PED2 / "train").glob("*.mp4"))}
    test = {p.stem: video_frames(p) for p in sorted((PED2 / "test").glob("*.mp4"))}
    started = time.perf_counter()
    reference = fit_reference(train.values(), cfg)
    fit_s = time.perf_counter() - started
    print(
        f"reference: {reference.frames} frames in {fit_s:.1f} s; change_low {reference.change_low:.3f}, "
        f"shift_high {reference.shift_high:.4f}, response_low {reference.response_low:.3f}"
    )
    lines, costs, ok = [], [], True
    with tempfile.TemporaryDirectory() as tmp:
        for recode in (False, True):
            source = "re-encoded (MPEG-4)" if recode else "decoded frames"
            for label, kind, duration, style in CONDITIONS:
                row = run_condition(
                    label, kind, duration, style, test, reference, cfg, recode, Path(tmp), costs
                )
                delays = row.delays or [float("nan")]
                ok &= row.detected == row.injected and row.other == 0
                lines.append(
                    f"| {source} | {row.label} | {row.detected}/{row.injected} | {np.mean(delays):.1f} | "
                    f"{np.max(delays):.1f} | {row.other} |"
                )
                if row.missed:
                    print(f"missed ({source}, {label}): {', '.join(row.missed)}")
            for split, clips in (("test", test), ("train", train)):
                count, names = false_alarms(clips, reference, cfg, recode, Path(tmp), costs)
                ok &= count == 0
                what = "12 untouched test clips" if split == "test" else "16 train clips (in-sample)"
                lines.append(f"| {source} | {what} | | | | {count} |")
                if names:
                    print(f"false alarms ({source}, {split}): {', '.join(names)}")
    table = "\n".join(
        [
            "| frames | condition | detected within 2 s | mean delay (s) | max delay (s) | other tampering "
            "episodes (false alarms) |",
            "|---|---|---|---|---|---|",
            *lines,
        ]
    )
    cost_ms = 1000 * float(np.mean(costs))
    summary = (
        f"Detector cost: {cost_ms:.3f} ms per 360x240 frame (mean over every run, one OpenCV thread). "
        f"Reference fitted on {reference.frames} training frames in {fit_s:.1f} s. "
        f"Acceptance (every injection within 2 s, no other episode, none on untouched clips): "
        f"{'met' if ok else 'NOT met'}. {headroom(test, reference, cfg)}"
    )
    print(table)
    print(summary)
    if args.write:
        write(table, summary)


def write(table: str, summary: str) -> None:
    body = (
        f"Measured {dt.date.today().isoformat()} on 2 cores ({cpu_name()}), no GPU. "
        "Command: `python benchmarks/tampering.py --write`.\n\n"
        "Reference fitted on the 16 training clips; tampering injected by `vidgru.synthetic.inject_tampering` "
        "into each of the 12 test clips (held out), one kind per run, at a start drawn with a fixed seed "
        "between 2 s in and 4 s before the end: freeze 3 s (the last live frame repeated); cover 2 s, a "
        "near-uniform dark cover, and an out-of-focus hand or cloth sliding in over 0.3 s; shift: a pan of "
        "15% of the width over 0.3 s, held to the end, the uncovered edge filled by reflecting the picture. "
        "Delay: from the first tampered frame to the frame at which the episode is raised. The 're-encoded' "
        "rows write every clip (untouched ones too) through OpenCV's MPEG-4 encoder and decode it again "
        "first. The train rows are in-sample (the reference was fitted on them).\n\n"
        f"{table}\n\n{summary}"
    )
    write_section("tampering", "Camera tampering on UCSD Ped2", body)


if __name__ == "__main__":
    main()
