"""Frame- and event-level accuracy against labelled footage.

Labels are JSON, as in ``../shared/datasets/ucsd_ped2/labels.json``::

    {"fps": 10,
     "videos": {"test_01": {"frames": 180, "anomalous": [[60, 180]]}, ...}}

Keys of ``videos`` are file stems; ``anomalous`` lists 0-based ``[start, end)`` frame ranges; ``frames``
(optional) is the clip's length and is checked against what was decoded.

Example::

    labels = load_labels("labels.json")
    report = evaluate_clips({"test_01": scores}, labels, events={"test_01": [(61, 179)]})
    report.micro_auc
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from vidgru.errors import InputError


class LabelsError(InputError):
    pass


@dataclass(frozen=True)
class ClipLabels:
    frames: int | None
    anomalous: list[tuple[int, int]]

    def mask(self, n: int) -> np.ndarray:
        y = np.zeros(n, bool)
        for start, end in self.anomalous:
            y[start:end] = True
        return y


def load_labels(path: str | Path) -> dict[str, ClipLabels]:
    path = Path(path)
    fix = "see the labels format in 'vidgru evaluate --help'"
    if not path.is_file():
        raise LabelsError(f"labels file {path} does not exist; {fix}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise LabelsError(f"{path} is not valid JSON (line {err.lineno}); {fix}") from err
    videos = data.get("videos") if isinstance(data, dict) else None
    if not isinstance(videos, dict) or not videos:
        raise LabelsError(f"{path} has no 'videos' mapping of clip name to labels; {fix}")
    labels: dict[str, ClipLabels] = {}
    for name, entry in videos.items():
        where = f"{path}: videos.{name}"
        ranges = entry.get("anomalous") if isinstance(entry, dict) else None
        if not isinstance(ranges, list):
            raise LabelsError(f"{where} has no 'anomalous' list of [start, end) ranges; {fix}")
        frames = entry.get("frames")
        if frames is not None and (not isinstance(frames, int) or frames <= 0):
            raise LabelsError(f"{where}.frames must be a positive integer, not {frames!r}")
        parsed = []
        for r in ranges:
            ok = isinstance(r, list) and len(r) == 2 and all(isinstance(v, int) for v in r)
            if not ok or not 0 <= r[0] < r[1] or (frames is not None and r[1] > frames):
                raise LabelsError(
                    f"{where}.anomalous has a bad range {r!r}; each must be [start, end) with "
                    f"0 <= start < end{' <= frames' if frames is not None else ''}"
                )
            parsed.append((r[0], r[1]))
        labels[name] = ClipLabels(frames, parsed)
    return labels


def overlaps(events: list[tuple[int, int]], ranges: list[tuple[int, int]]) -> tuple[int, int]:
    """Events ``(start, end_inclusive)`` against labelled ``[start, end)`` ranges: how many events hit a
    range, and how many ranges some event hits."""
    true_events = sum(any(a < hi and b >= lo for lo, hi in ranges) for a, b in events)
    found = sum(any(a < hi and b >= lo for a, b in events) for lo, hi in ranges)
    return true_events, found


def minmax(scores: np.ndarray) -> np.ndarray:
    span = scores.max() - scores.min()
    return (scores - scores.min()) / span if span > 0 else np.zeros_like(scores)


@dataclass
class ClipMetrics:
    clip: str
    frames: int
    anomalous_frames: int
    auc: float | None  # None when the clip holds only one class
    events: int
    true_events: int
    ranges: int
    ranges_found: int


@dataclass
class EvaluationReport:
    micro_auc: float
    micro_auc_normalised: float
    macro_auc: float | None
    event_precision: float | None
    event_recall: float | None
    clips: list[ClipMetrics]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else None


def evaluate_clips(
    scores: dict[str, np.ndarray],
    labels: dict[str, ClipLabels],
    events: dict[str, list[tuple[int, int]]] | None = None,
) -> EvaluationReport:
    """Score arrays per clip against labels; ``events`` are ``(start_frame, end_frame_inclusive)``."""
    missing = [name for name in scores if name not in labels]
    if missing:
        raise LabelsError(
            f"no labels for {', '.join(missing)}; add them to the labels file or leave them out"
        )
    ys, raw, norm, per_clip = [], [], [], []
    for name, s in scores.items():
        lab = labels[name]
        if lab.frames is not None and lab.frames != len(s):
            raise LabelsError(
                f"{name}: the labels say {lab.frames} frames but {len(s)} were decoded; check the video and labels"
            )
        y = lab.mask(len(s))
        ys.append(y)
        raw.append(s)
        norm.append(minmax(s))
        clip_events = (events or {}).get(name, [])
        true_events, found = overlaps(clip_events, lab.anomalous)
        per_clip.append(
            ClipMetrics(
                name,
                len(s),
                int(y.sum()),
                _auc(y, s),
                len(clip_events),
                true_events,
                len(lab.anomalous),
                found,
            )
        )
    y_all = np.concatenate(ys)
    if y_all.all() or not y_all.any():
        raise LabelsError(
            "the labelled frames are all of one class, so AUC is undefined; evaluate more clips"
        )
    macro = [c.auc for c in per_clip if c.auc is not None]
    n_events = sum(c.events for c in per_clip)
    n_ranges = sum(c.ranges for c in per_clip)
    return EvaluationReport(
        micro_auc=float(roc_auc_score(y_all, np.concatenate(raw))),
        micro_auc_normalised=float(roc_auc_score(y_all, np.concatenate(norm))),
        macro_auc=float(np.mean(macro)) if macro else None,
        event_precision=sum(c.true_events for c in per_clip) / n_events if n_events else None,
        event_recall=sum(c.ranges_found for c in per_clip) / n_ranges if n_ranges else None,
        clips=per_clip,
    )
