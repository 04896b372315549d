"""Time-based behaviour on synthetic footage: loitering, pacing, stop-and-go and a left bag, which no single
frame shows, with the full model against the same model with its behaviour memory cut to one step.

Footage from :func:`vidgru.synthetic.make_behaviour_footage`, one camera throughout:
- training: normal activity only, from seed ``--seed`` (default 30 clips of 60 s: with 10, the threshold
  rested on the few normal stops and turns that score highest, and moved from draw to draw);
- evaluation, from seed ``--seed`` + 1: held-out normal clips (default 10 minutes) and test clips, each with
  one labelled episode among normal activity (default 10 per kind, 70-90 s each). Every clip's activity
  has its own seed, derived from those, so no clip repeats another.

Trains two models with ``vidgru train``: the full one, and the ablation (``--memory 1``: the behaviour GRU
re-reads only the last step, so it cannot remember). Each is run with ``vidgru analyze`` over the held-out
normal and the test clips together, as a user would. Then, per kind of episode: recall, the share of
episodes that at least one event overlaps, and the reasons of those events. False alarms: events that
overlap no labelled range, in all the analysed footage, per hour of normal footage (the held-out normal
clips plus the unlabelled parts of the test clips); of those, the ones whose box is on the test clip's
episode figure (its scene planned again from the seeds) are counted too, to tell an alert that trails
the labelled range from one on someone who did nothing. Camera tampering records are counted apart.

Ped2 detection quality (no regression) is measured by ``benchmarks/ped2.py`` (``--ped2`` runs it and adds
its vidgru row) and camera tampering on real footage by ``benchmarks/tampering.py``.

    python benchmarks/temporal.py --write
    # A check of the wiring: small footage and a config with one GRU and one epoch each (about 2 minutes on
    # 2 cores); the numbers mean nothing at that size.
    python benchmarks/temporal.py --work /tmp/vt --config fast.yaml --episodes-per-kind 1 \\
        --normal-minutes 0.5 --train-clips 1 --train-seconds 30 --clip-seconds 60 60

Footage already in ``--work`` with the same sizes is reused; the models are trained again every run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from bench_report import cpu_name, frames_per_s, markers, write_section
from bench_report import run_vidgru as run

from vidgru.synthetic import (
    BEHAVIOURS,
    BehaviourScene,
    LabelledRange,
    Track,
    footage_clip_spec,
    make_behaviour_footage,
    plan_behaviour_scene,
)

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = markers("temporal")
FPS = 10.0
# The ablation: the behaviour GRU keeps one step of memory (config key behaviour.memory). The one place
# that says how `vidgru train` is told so.
ABLATION_ARGS = ("--memory", "1")
FULL_ARGS = ("--memory", "0")  # the behaviour GRU is off by default; this trains it with unlimited memory
ANOMALY_TYPE = "end"  # analyze writes each anomaly event once, when it has ended, with its final extent


@dataclass(frozen=True)
class Detection:
    """One event of ``vidgru analyze``: frames [start, end) of clip ``clip``."""

    clip: str
    start: int
    end: int  # exclusive (the record's end_frame is inclusive)
    reason: str
    peak: int = -1  # the frame of its peak score
    box: tuple[float, float, float, float] | None = None  # what drove it at the peak, pixels x1, y1, x2, y2


def read_events(path: Path) -> tuple[list[Detection], int]:
    """The anomaly events in an events JSONL file, and how many camera tampering records it has."""
    detections, tampering = [], 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if record.get("type") == ANOMALY_TYPE:
            detections.append(
                Detection(
                    record["camera"],
                    int(record["start_frame"]),
                    int(record["end_frame"]) + 1,
                    str(record.get("reason", "?")),
                    int(record.get("peak_frame", -1)),
                    tuple(record["box"]) if record.get("box") else None,
                )
            )
        elif str(record.get("type", "")).startswith("camera_tampering"):
            tampering += record["type"] == "camera_tampering"
    return detections, tampering


def overlaps(d: Detection, clip: str, r: LabelledRange) -> bool:
    return d.clip == clip and d.start < r.end and r.start < d.end


@dataclass
class KindScore:
    episodes: int = 0
    detected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)  # of the events that hit an episode of this kind
    labelled_frames: int = 0


@dataclass
class Score:
    kinds: dict[str, KindScore]
    false_alarms: list[Detection]
    normal_frames: int  # frames outside every labelled range
    normal_flagged: (
        int  # of those, frames inside an event (a detector that flags everything hits every episode)
    )
    heldout_false_alarms: int  # of false_alarms, those on clips with no episode
    heldout_frames: int

    def per_hour(self, count: int, frames: int) -> float:
        return count / (frames / FPS / 3600) if frames else float("nan")


def score(
    detections: Iterable[Detection],
    ranges: Mapping[str, Sequence[LabelledRange]],
    frames: Mapping[str, int],
    kinds: Sequence[str] = BEHAVIOURS,
) -> Score:
    """Match events to labelled ranges. ``ranges``: the labelled ranges of each clip (none for a normal one);
    ``frames``: every analysed clip's length. An episode is detected when an event overlaps its range;
    an event that overlaps no range is a false alarm."""
    detections = list(detections)
    unknown = {d.clip for d in detections} - set(frames)
    if unknown:
        raise ValueError(f"events on clips that were not analysed: {sorted(unknown)}")
    per_kind = {k: KindScore() for k in kinds}
    for clip, rs in ranges.items():
        for r in rs:
            hits = [d for d in detections if overlaps(d, clip, r)]
            ks = per_kind.setdefault(r.kind, KindScore())
            ks.episodes += 1
            ks.detected += bool(hits)
            ks.reasons.update(d.reason for d in hits)
            ks.labelled_frames += r.end - r.start
    false = [d for d in detections if not any(overlaps(d, d.clip, r) for r in ranges.get(d.clip, ()))]
    labelled = sum(ks.labelled_frames for ks in per_kind.values())
    flagged = 0
    for clip, n in frames.items():
        inside, normal = np.zeros(n, bool), np.ones(n, bool)
        for d in detections:
            if d.clip == clip:
                inside[d.start : d.end] = True
        for r in ranges.get(clip, ()):
            normal[r.start : r.end] = False
        flagged += int(np.sum(inside & normal))
    heldout = [c for c in frames if not ranges.get(c)]
    return Score(
        per_kind,
        false,
        sum(frames.values()) - labelled,
        flagged,
        sum(1 for d in false if d.clip in heldout),
        sum(frames[c] for c in heldout),
    )


def footage(args: argparse.Namespace, work: Path) -> tuple[Path, Path, Path, dict]:
    """Training, held-out and test folders, generated unless ``work`` already has them with these sizes."""
    heldout_clips = max(1, math.ceil(args.normal_minutes))
    sizes = {
        "seed": args.seed,
        "train": [args.train_clips, args.train_seconds],
        "heldout": [heldout_clips, args.normal_minutes * 60 / heldout_clips],
        "episodes_per_kind": args.episodes_per_kind,
        "clip_seconds": list(args.clip_seconds),
    }
    stamp = work / "footage.json"
    if not (stamp.is_file() and json.loads(stamp.read_text()) == sizes):
        started = time.monotonic()
        make_behaviour_footage(
            work / "train",
            seed=args.seed,
            normal_clips=args.train_clips,
            normal_seconds=args.train_seconds,
            episodes_per_kind=0,
        )
        make_behaviour_footage(
            work / "eval",
            seed=args.seed + 1,
            normal_clips=heldout_clips,
            normal_seconds=sizes["heldout"][1],
            episodes_per_kind=args.episodes_per_kind,
            episode_clip_seconds=tuple(args.clip_seconds),
        )
        stamp.write_text(json.dumps(sizes))
        print(f"footage generated in {time.monotonic() - started:.0f} s -> {work}")
    return work / "train" / "normal", work / "eval" / "normal", work / "eval" / "test", sizes


def load_ranges(eval_dir: Path) -> tuple[dict[str, list[LabelledRange]], dict[str, int]]:
    episodes = json.loads((eval_dir / "episodes.json").read_text())
    labels = json.loads((eval_dir / "labels.json").read_text())["videos"]
    ranges = {
        stem: [LabelledRange(r["kind"], r["start"], r["end"]) for r in rs] for stem, rs in episodes.items()
    }
    return ranges, {stem: entry["frames"] for stem, entry in labels.items()}


def on_episode_figure(d: Detection, scene: BehaviourScene, near_px: float = 20.0) -> bool:
    """Whether the event's box, at its peak, is on the figure of the clip's episode: the nearest figure in
    view to the box's centre, within ``near_px``. An alert there outside the labelled range is about
    the right person (a pacer walking off after the last turn), which the false-alarm count cannot tell
    from an alert on someone who did nothing."""
    near = nearest_figure(d, scene)
    return near is not None and near[1].role != "normal" and near[0] <= near_px


def nearest_figure(d: Detection, scene: BehaviourScene) -> tuple[float, Track] | None:
    """The figure in view at the event's peak nearest its box's centre, and how far it is (pixels); None
    without a box or a figure in view."""
    if d.box is None or d.peak < 0:
        return None
    centre = np.array([(d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2])
    seen = [(float(np.hypot(*(xy - centre))), f) for f in scene.figures if (xy := f.at(d.peak)) is not None]
    return min(seen, key=lambda s: s[0]) if seen else None


def false_alarms_on_episode_figures(
    false_alarms: Iterable[Detection], sizes: Mapping, ranges: Mapping[str, Sequence[LabelledRange]]
) -> int:
    """How many of ``false_alarms`` (on test clips of footage made with ``sizes``, :func:`footage`) are on
    their episode's own figure: each test clip's scene planned again from its seeds."""
    count = 0
    scenes: dict[str, BehaviourScene] = {}
    for d in false_alarms:
        if not ranges.get(d.clip):
            continue
        if d.clip not in scenes:  # planning a scene walks every figure's path: once per clip
            kind, index = d.clip.rsplit("_", 1)
            spec = footage_clip_spec(
                sizes["seed"] + 1, kind, int(index), episode_clip_seconds=tuple(sizes["clip_seconds"])
            )
            scenes[d.clip] = plan_behaviour_scene(spec)
        count += on_episode_figure(d, scenes[d.clip])
    return count


@dataclass
class ModelRun:
    name: str
    score: Score
    tampering: int
    fps: float
    train_s: float
    analyze_s: float
    on_episode_figure: int = 0  # of the false alarms, those on a test clip's episode figure


def evaluate(
    slug: str,
    name: str,
    extra: Sequence[str],
    work: Path,
    train: Path,
    analysed: Sequence[Path],
    cfg_args: Sequence[str],
    ranges: Mapping[str, Sequence[LabelledRange]],
    frames: Mapping[str, int],
    sizes: Mapping,
) -> ModelRun:
    model, out = work / f"model-{slug}", work / f"out-{slug}"
    out.mkdir(parents=True, exist_ok=True)
    _, train_s = run("train", "--normal", str(train), "--out", str(model), *cfg_args, *extra)
    events = out / "events.jsonl"
    stdout, analyze_s = run(
        "analyze",
        *map(str, analysed),
        "--model",
        str(model),
        "--events",
        str(events),
        "--scores",
        str(out / "scores.csv"),
        "--fresh",
        *cfg_args,
    )
    detections, tampering = read_events(events)
    scored = score(detections, ranges, frames)
    trailing = false_alarms_on_episode_figures(scored.false_alarms, sizes, ranges)
    return ModelRun(name, scored, tampering, frames_per_s(stdout), train_s, analyze_s, trailing)


def table(runs: Sequence[ModelRun]) -> list[str]:
    def reasons(c: Counter[str]) -> str:
        return ", ".join(f"{r} {n}" for r, n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"

    def cell(r: ModelRun, kind: str) -> str:
        ks = r.score.kinds[kind]
        chance = (
            r.score.per_hour(len(r.score.false_alarms), r.score.normal_frames)
            * ks.labelled_frames
            / FPS
            / 3600
        )
        return f"{ks.detected}/{ks.episodes} ({reasons(ks.reasons)}; {chance:.1f} by chance)"

    def alarms(r: ModelRun, count: int, frames: int) -> str:
        return f"{count} ({r.score.per_hour(count, frames):.1f}/h)"

    lines = [
        "| | " + " | ".join(r.name for r in runs) + " |",
        "|---" * (len(runs) + 1) + "|",
    ]
    lines += [
        f"| {kind}: episodes detected | " + " | ".join(cell(r, kind) for r in runs) + " |"
        for kind in BEHAVIOURS
    ]
    lines += [
        "| false alarms, all footage (per hour of normal footage) | "
        + " | ".join(alarms(r, len(r.score.false_alarms), r.score.normal_frames) for r in runs)
        + " |",
        "| of those, on the episode's own figure outside its labelled range (just after it, say) | "
        + " | ".join(str(r.on_episode_figure) for r in runs)
        + " |",
        "| false alarms on the held-out normal clips only | "
        + " | ".join(alarms(r, r.score.heldout_false_alarms, r.score.heldout_frames) for r in runs)
        + " |",
        "| share of normal footage inside events | "
        + " | ".join(f"{r.score.normal_flagged / max(1, r.score.normal_frames):.1%}" for r in runs)
        + " |",
        "| camera tampering episodes (not counted above) | "
        + " | ".join(str(r.tampering) for r in runs)
        + " |",
        "| `analyze` frames/s (end to end) | " + " | ".join(f"{r.fps:.1f}" for r in runs) + " |",
    ]
    return lines


def ped2_rows() -> list[str]:
    """The head and the vidgru row of ``benchmarks/ped2.py``'s table (a run of its own, a few minutes)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "ped2.py")], capture_output=True, text=True, cwd=ROOT
    )
    if result.returncode != 0:
        sys.exit(f"benchmarks/ped2.py failed:\n{result.stderr[-2000:]}")
    lines = result.stdout.splitlines()
    head = next((i for i, ln in enumerate(lines) if ln.startswith("| method")), None)
    row = next((ln for ln in lines if ln.startswith("| vidgru")), None)
    if head is None or row is None:
        return ["(no vidgru row in the output of benchmarks/ped2.py)"]
    return [lines[head], lines[head + 1], row]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config", type=Path, help="vidgru config for training and analysis (default: the defaults)"
    )
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/vidgru-temporal"), help="footage, models, outputs"
    )
    parser.add_argument("--seed", type=int, default=1, help="training footage seed; evaluation uses seed + 1")
    parser.add_argument("--train-clips", type=int, default=30, help="normal training clips")
    parser.add_argument("--train-seconds", type=float, default=60.0, help="length of each training clip")
    parser.add_argument("--normal-minutes", type=float, default=10.0, help="held-out normal footage, minutes")
    parser.add_argument("--episodes-per-kind", type=int, default=10, help="test clips per kind of episode")
    parser.add_argument(
        "--clip-seconds",
        type=float,
        nargs=2,
        default=(70.0, 90.0),
        metavar=("MIN", "MAX"),
        help="test clip lengths",
    )
    parser.add_argument("--ped2", action="store_true", help="also run benchmarks/ped2.py and report its AUC")
    parser.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    args = parser.parse_args()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    cfg_args = ["--config", str(args.config)] if args.config else []

    train, heldout, test, sizes = footage(args, work)
    ranges, frames = load_ranges(work / "eval")
    runs = [
        evaluate(slug, name, extra, work, train, [heldout, test], cfg_args, ranges, frames, sizes)
        for slug, name, extra in (
            ("full", "full model", FULL_ARGS),
            ("memory1", "memory 1 step (ablation)", ABLATION_ARGS),
        )
    ]

    n_train, train_s = sizes["train"]
    heldout_min = sum(n for stem, n in frames.items() if not ranges.get(stem)) / FPS / 60
    test_min = sum(n for stem, n in frames.items() if ranges.get(stem)) / FPS / 60
    normal_min = runs[0].score.normal_frames / FPS / 60
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f"GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    command = " ".join(["python benchmarks/temporal.py", *sys.argv[1:]])
    body = [
        f"Measured {dt.date.today().isoformat()} on {os.cpu_count()} cores ({cpu_name()}), {gpu}. "
        f"Command: `{command}`.",
        "",
        f"Footage (`vidgru.synthetic.make_behaviour_footage`, 360x240 at 10 frames/s, one camera): training "
        f"{n_train} normal clip(s) of {train_s:g} s ({n_train * train_s / 60:.1f} min, seed {args.seed}); evaluation "
        f"(seed {args.seed + 1}) {heldout_min:.1f} min of held-out normal clips and {test_min:.1f} min of test "
        f"clips, {args.episodes_per_kind} per kind with one episode each. Normal footage for the false-alarm "
        f"rate: the held-out clips plus the unlabelled parts of the test clips, {normal_min:.1f} min. "
        "An episode is detected when an event overlaps its labelled range (the reasons are those events'); "
        "'by chance': the detections that the model's false-alarm rate alone would give over the labelled "
        "time. The ablation is trained with `vidgru train "
        + " ".join(ABLATION_ARGS)
        + "`; both are run by `vidgru analyze` over the held-out and test clips together.",
        "",
        *table(runs),
        "",
        "Wall time: "
        + "; ".join(f"{r.name}: `train` {r.train_s:.0f} s, `analyze` {r.analyze_s:.0f} s" for r in runs)
        + ".",
        "",
        "Ped2 detection quality (no regression) is measured by `benchmarks/ped2.py` (its section above), camera "
        "tampering on real footage by `benchmarks/tampering.py`.",
    ]
    if args.ped2:
        body += ["", "Ped2 in the same session (`python benchmarks/ped2.py`):", "", *ped2_rows()]
    text = "\n".join([BEGIN, *body, END])
    print(text)
    if args.write:
        write_section(
            "temporal",
            "Time-based behaviour (synthetic footage): loitering, pacing, stop-and-go, a left bag",
            "\n".join(body),
        )


if __name__ == "__main__":
    main()
