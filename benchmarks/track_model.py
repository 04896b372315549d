"""The per-track behaviour GRU alone, on the footage of ``benchmarks/temporal.py``: a fast loop for design work.

``temporal.py`` trains and runs whole models through the CLI (about 10 minutes on 2 cores). This script
caches each clip's blobs once (``vidgru.tracks.detect`` against the empty scene fitted as ``vidgru train``
fits it) and then, in about a minute a run, tracks them, trains the track GRUs with
``vidgru.track_training.fit_tracks``, calibrates them as ``vidgru train`` does and turns their scores into
events as ``vidgru analyze`` does (``behaviour.floor``, ``behaviour.min_run_s``, the events config), from
the track model alone. On that footage ``temporal.py``'s full model raises only track-model events, and
this script gives the same episodes and false alarms.

It measures what ``temporal.py`` cannot afford to repeat:

- ``--train-seed N``: the same footage and design with the GRUs initialised and shuffled from another seed
  (``temporal.seed``): how much of a result is the draw;
- ``--folds K`` (default 3, as ``vidgru train`` with 3 GRUs and at least 3 clips): GRU ``i`` learns from
  all clips but fold ``i``, every training clip is scored by the GRU that did not see it, and events need
  the raw logit at ``--bar`` times that calibration's 99th percentile (measured from its median; ``vidgru
  train``: 1);
- ``--folds 0``: the calibration ``vidgru train`` had before 2026-11-30's eighth session: GRUs trained on
  the first 80% of each clip, calibrated on the last 20%. That leaks: a track crossing the split was
  learnt in its first part, and the GRU remembers tracks;
- ``--separate``: with ``--folds``, K separate fits of one GRU each (the experiment that found the leak);
- ``--explain``: one line per false alarm on what drove it: the track's box at the peak (a box much
  shorter than a figure is a piece of one), and the nearest figure of the clip's plan, what it did in the
  10 s before the event to its end (seconds standing, reversals, median speed) and whether it is the
  episode's.

    python benchmarks/track_model.py --work /tmp/vt1 --seed 1
    python benchmarks/track_model.py --work /tmp/vt1 --seed 1 --train-seed 1
    python benchmarks/track_model.py --work /tmp/vt1 --seed 1 --folds 0
    python benchmarks/track_model.py --work /tmp/vt1 --seed 1 --specialists    # one set of GRUs
    python benchmarks/track_model.py --work /tmp/vt1 --seed 1 --explain

``--work`` takes the folder ``temporal.py`` uses (its footage is reused, or made with the same seeds and
sizes).
"""

from __future__ import annotations

import argparse
import copy
import pickle
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from temporal import FPS, Detection, footage, load_ranges, nearest_figure, score

from vidgru.behaviour import step_stride
from vidgru.config import VidgruConfig
from vidgru.decode import FrameReader
from vidgru.jobs import detect_events, sustained_since
from vidgru.occupancy import DETECT_EVERY, SceneBackground, fit_background
from vidgru.scoring import Calibration
from vidgru.sources import discover_clips
from vidgru.synthetic import BehaviourSceneSpec, footage_clip_spec, plan_behaviour_scene
from vidgru.track_model import Handover, TrackModel
from vidgru.track_training import fit_set_scales, fit_tracks, unseen_by
from vidgru.tracks import TrackSequence, clip_tracks, detect

ROLES = ("train/normal", "eval/normal", "eval/test")
WIDTH, HEIGHT = BehaviourSceneSpec.width, BehaviourSceneSpec.height  # temporal.py's footage
PIECE_PX = 17  # a box shorter than this is a piece of a figure: a drawn figure is about 29 px tall
STILL_PX_S = 3.0  # a figure slower than this stands
Key = tuple[str, str]  # (role, clip stem)


def frames(path: Path) -> Iterator[np.ndarray]:
    return (frame for _, frame in FrameReader(discover_clips([path])[0]))


def cached_blobs(work: Path, cfg: VidgruConfig) -> dict[Key, list[np.ndarray | None]]:
    """Each clip's blobs per frame, against the background ``vidgru train`` would fit (cached in ``work``
    for every frame), None on the frames that background does not look at (``detect_every``)."""
    cache = work / "blobs.pkl"
    if cache.is_file():
        with cache.open("rb") as f:
            return _looked_at(pickle.load(f))
    started = time.monotonic()
    train = sorted((work / ROLES[0]).glob("*.mp4"))
    background: SceneBackground = fit_background(
        (frames(p) for p in train), cfg.behaviour.background_size, cfg.temporal.seed
    )
    blobs = {
        (role, p.stem): [detect(f, background) for f in frames(p)]
        for role in ROLES
        for p in sorted((work / role).glob("*.mp4"))
    }
    with cache.open("wb") as f:
        pickle.dump(blobs, f)
    print(f"blobs cached in {time.monotonic() - started:.0f} s -> {cache}")
    return _looked_at(blobs)


def _looked_at(blobs: dict[Key, list[np.ndarray]]) -> dict[Key, list[np.ndarray | None]]:
    """Every frame's blobs -> those of the frames a fitted background looks at (``looks_at``), else None."""
    return {k: [d if i % DETECT_EVERY == 0 else None for i, d in enumerate(v)] for k, v in blobs.items()}


class Averaged(TrackModel):
    """Several track models' logits averaged, scored as :class:`TrackModel` scores one: only how a track's
    steps are scored differs, so the rest (per clip, per frame, per object) is TrackModel's own. Each model
    keeps its own nets, standardisation and norms, which is why this does not build one TrackModel."""

    def __init__(self, models: Sequence[TrackModel]) -> None:  # its models hold the nets: no super().__init__
        self.models = list(models)
        self.hold = self.models[0].hold  # what TrackModel's clip and frame scoring read besides score_tracks

    def score_tracks(
        self, tracks: Sequence[TrackSequence], handovers: Sequence[Handover] = ()
    ) -> list[np.ndarray]:
        each = [m.score_tracks(tracks, handovers) for m in self.models]
        return [np.mean([e[i] for e in each], axis=0) for i in range(len(tracks))]


def frame_track_logits(model: TrackModel, tracks: Sequence[TrackSequence], n: int, stride: int) -> np.ndarray:
    """``(n,)``: each frame's highest track logit, as ``vidgru analyze`` scores a clip."""
    return model.frame_logits(tracks, n, stride)[0]


def set_norms(model: TrackModel, normal: Callable[[TrackModel], np.ndarray]) -> np.ndarray:
    """Each set of ``model``'s GRUs on its own scale, as ``vidgru train`` puts them
    (:func:`vidgru.track_training.fit_set_scales`), from ``normal``: a part's logits on normal footage it
    has not learnt from. Returns the model's logits there."""
    for g, q99 in enumerate(fit_set_scales(model, lambda part: finite(normal(part)))):
        print(f"GRU set {g}: median {model.norms[g][0]:.2f}, 99th percentile {q99:.2f}")
    return normal(model)


def finite(x: np.ndarray) -> np.ndarray:
    return x[np.isfinite(x)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True, help="temporal.py's folder (footage, blob cache)")
    parser.add_argument("--seed", type=int, default=1, help="training footage seed; evaluation uses seed + 1")
    parser.add_argument("--train-seed", type=int, default=0, help="temporal.seed: the GRUs' initialisation")
    parser.add_argument(
        "--folds", type=int, default=3, help="GRUs on K folds, calibrated on unseen clips (0: on the tails)"
    )
    parser.add_argument(
        "--separate", action="store_true", help="with --folds: K separate one-GRU fits (the first experiment)"
    )
    parser.add_argument("--bar", type=float, default=1.0, help="with --folds: events from this many q99s")
    parser.add_argument(
        "--track-hold", type=float, help="events.behaviour_track_hold_s (default: the config's)"
    )
    parser.add_argument(
        "--specialists",
        nargs="*",
        choices=["hold", "back_and_forth", "stop_and_go"],
        help="behaviour.specialists (default: the config's); none given: one set of GRUs, as before them",
    )
    parser.add_argument("--explain", action="store_true", help="a line per false alarm on what drove it")
    args = parser.parse_args()
    if args.folds == 1:
        parser.error("--folds needs at least 2 folds (0: calibrate on the tails, as vidgru train once did)")
    sizes = argparse.Namespace(
        seed=args.seed,
        train_clips=30,  # temporal.py's default
        train_seconds=60.0,
        normal_minutes=10.0,
        episodes_per_kind=10,
        clip_seconds=(70.0, 90.0),
    )
    args.work.mkdir(parents=True, exist_ok=True)
    footage(sizes, args.work)
    cfg = VidgruConfig()
    cfg.behaviour.enabled = True
    blobs = cached_blobs(args.work, cfg)  # the background of the default seed, whatever --train-seed says
    cfg.temporal.seed = args.train_seed
    if args.specialists is not None:
        cfg.behaviour.specialists = args.specialists
    if args.track_hold is not None:
        cfg.events.behaviour_track_hold_s = args.track_hold
    stride = step_stride(FPS, cfg.behaviour.step_s)
    started = time.process_time()
    tracks = {key: clip_tracks(b, stride, FPS) for key, b in blobs.items()}
    n_frames = sum(len(b) for b in blobs.values())
    print(f"tracked {n_frames} frames at {1000 * (time.process_time() - started) / n_frames:.2f} ms a frame")
    train = [k for k in blobs if k[0] == ROLES[0]]

    model: TrackModel
    if args.folds and args.separate:
        one = copy.deepcopy(cfg.behaviour)
        one.ensemble = 1
        one.specialists = []  # the first experiment had one set of GRUs
        fold_models = [
            fit_tracks(
                [tracks[k] for i, k in enumerate(train) if i % args.folds != fold],
                stride / FPS,
                one,
                args.train_seed * 10 + fold,
            )[0]
            for fold in range(args.folds)
        ]
        model = Averaged(fold_models)
        raw = np.concatenate(
            [
                frame_track_logits(Averaged([fold_models[i % args.folds]]), tracks[k], len(blobs[k]), stride)
                for i, k in enumerate(train)
            ]
        )
    elif args.folds:
        # As vidgru train does (vidgru.training._fit_tracks) with at least as many clips as GRUs.
        clips = [tracks[k] for k in train]
        model = fit_tracks(clips, stride / FPS, cfg.behaviour, cfg.temporal.seed, folds=args.folds)[0]

        def unseen(part: TrackModel) -> np.ndarray:
            return np.concatenate(
                [
                    frame_track_logits(unseen_by(part, i, args.folds), tracks[k], len(blobs[k]), stride)
                    for i, k in enumerate(train)
                ]
            )

        raw = set_norms(model, unseen)
    else:
        # As vidgru train did before 2026-11-30's eighth session: heads train, tails calibrate.
        splits = {k: max(1, round(len(blobs[k]) * (1 - cfg.temporal.holdout_fraction))) for k in train}
        heads = [clip_tracks(blobs[k][: splits[k]], stride, FPS) for k in train]
        model = fit_tracks(heads, stride / FPS, cfg.behaviour, cfg.temporal.seed)[0]
        raw = set_norms(
            model,
            lambda part: np.concatenate(
                [frame_track_logits(part, tracks[k], len(blobs[k]), stride)[splits[k] :] for k in train]
            ),
        )
    fitted = Calibration.fit(finite(raw))
    # With folds, events start at --bar times the 99th percentile's distance from the median (vidgru train:
    # 1.0, its 99th percentile at the floor); on the tails, the 99th percentile at 1.0, as before.
    at = cfg.behaviour.floor / args.bar if args.folds else 1.0
    calibration = Calibration(fitted.median, fitted.q99, fitted.frames, at)
    print(
        f"calibration: median {fitted.median:.2f}, 99th percentile {fitted.q99:.2f} over {fitted.frames} frames"
    )

    found: list[Detection] = []
    min_run = round(cfg.behaviour.min_run_s * FPS)
    held_out_logits = []
    for key in blobs:
        if key[0] == ROLES[0]:
            continue
        scored = model.frame_tracks(tracks[key], len(blobs[key]), stride)
        logits, ids, in_view, boxes = scored.logits, scored.track, scored.in_view, scored.boxes
        if key[0] == ROLES[1]:
            held_out_logits.append(logits)
        scores = calibration(logits)
        since = sustained_since(scores >= cfg.behaviour.floor, min_run)
        on = since >= 0
        counted = np.where(on, scores, 0).astype(np.float32)
        cells = np.zeros(len(counted), np.int64)
        for event in detect_events(
            key[1],
            counted,
            cells,
            FPS,
            cfg.events,
            "track-model",
            since,
            cfg.behaviour.min_run_s,
            np.where(on, ids, -1),
            in_view,
            scored.joins,
        ):
            peak = event.peak_frame
            box = (
                tuple(float(v) for v in boxes[peak] * [WIDTH, HEIGHT, WIDTH, HEIGHT]) if boxes.size else None
            )
            found.append(Detection(key[1], event.start_frame, event.end_frame + 1, "time_pattern", peak, box))
    held_out = np.concatenate(held_out_logits)
    held_out = held_out[np.isfinite(held_out)]
    q99, top = np.quantile(held_out, 0.99), held_out.max()
    print(f"held-out normal clips' logits: 99th percentile {q99:.2f}, highest {top:.2f}")
    ranges, clip_frames = load_ranges(args.work / "eval")
    result = score(found, ranges, clip_frames)
    false = len(result.false_alarms)
    kinds = ", ".join(f"{kind} {k.detected}/{k.episodes}" for kind, k in result.kinds.items())
    print(
        f"{kinds}; false alarms {false} ({result.per_hour(false, result.normal_frames):.1f}/h), "
        f"{result.heldout_false_alarms} on held-out normal clips"
    )
    for d in result.false_alarms:
        print(f"  false alarm: {d.clip} frames {d.start}-{d.end}")
        if args.explain:
            print(f"    {explain(d, args.seed + 1)}")


def explain(d: Detection, seed: int) -> str:
    """What drove false alarm ``d`` (on a clip of the evaluation footage, made from ``seed``): its box, and
    the nearest figure of the clip's plan, with what it did from 10 s before the event to its end."""
    if d.box is None or d.peak < 0:
        return "no box"
    x1, y1, x2, y2 = d.box
    edge = x1 < 2 or y1 < 2 or x2 > WIDTH - 2 or y2 > HEIGHT - 2
    said = f"box {x2 - x1:.0f}x{y2 - y1:.0f} px at ({(x1 + x2) / 2:.0f}, {(y1 + y2) / 2:.0f})"
    said += f"{' (a piece of a figure)' if y2 - y1 < PIECE_PX else ''}{', at the edge' if edge else ''}"
    kind, index = d.clip.rsplit("_", 1)
    scene = plan_behaviour_scene(footage_clip_spec(seed, kind, int(index)))  # temporal.py's default sizes
    near = nearest_figure(d, scene)
    if near is None:
        return f"{said}; no figure in view"
    distance, figure = near
    in_view = sum(f.at(d.peak) is not None for f in scene.figures)
    first = max(d.start - 10 * round(FPS), figure.start)
    xy = figure.xy[first - figure.start : min(d.end, figure.end) - figure.start]
    velocity = np.diff(xy, axis=0) * FPS
    speed = np.hypot(*velocity.T)
    moving_x = velocity[:, 0][np.abs(velocity[:, 0]) > STILL_PX_S]
    reversals = int((np.sign(moving_x[1:]) != np.sign(moving_x[:-1])).sum())
    return (
        f"{said}; nearest figure ({figure.role}) {distance:.0f} px away, {in_view} in view; from 10 s before "
        f"to the end: {(speed < STILL_PX_S).sum() / FPS:.1f} s standing, {reversals} reversals, median speed "
        f"{np.median(speed) if len(speed) else 0:.0f} px/s"
    )


if __name__ == "__main__":
    main()
