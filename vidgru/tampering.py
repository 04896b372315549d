"""Camera tampering: a frozen picture, a covered lens, a field of view that has moved.

Nothing here is a hand-set rule about what a picture should look like. A :class:`TamperReference` is
learned from the camera's normal footage, and each frame is compared with that camera's normal range:

- **freeze**: the mean grey-level change from the previous frame. A live camera always shows sensor and
  codec noise, so the change never falls far below the smallest change seen in normal footage; a frozen
  stream repeats its picture (exactly, or up to re-encoding noise).
- **cover**: fine detail (mean absolute Laplacian of the lightly blurred frame) in each region of a 4x6
  grid. A lens covered by tape, a cap, a hand or a cloth leaves most regions with far less detail than
  they ever show normally, whether the picture goes dark, bright or out of focus.
- **shift**: phase correlation of the frame's (log-compressed) edge image with the reference background (the median of
  normal frames, so passers-by vanish from it). Normal frames align with it to within a pixel or two;
  a view that has been turned or knocked aligns only at a clear displacement.

All of it runs on a small grey copy of the frame (``TamperingConfig.size``, 60x90 by default). A kind is
confirmed when most frames of its last ``freeze_s`` / ``cover_s`` / ``shift_s`` show it (so a single
codec refresh inside a freeze does not reset it), and ends after ``clear_s`` without it. A covered lens
also looks still and misaligned, so cover evidence suppresses freeze and shift evidence.

Example::

    reference = fit_reference(normal_clips, TamperingConfig())      # each clip: an iterable of BGR frames
    reference.save("models/cam1")
    detector = TamperDetector(TamperReference.load("models/cam1"), TamperingConfig(), fps=10)
    for index, frame in enumerate(frames):
        for change in detector.push(frame, index):
            print(change.type, change.episode.kind, change.episode.start_frame)
    detector.close()
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from vidgru.config import TamperingConfig
from vidgru.errors import ModelError, TrainingError

log = logging.getLogger(__name__)

TamperKind = Literal["freeze", "cover", "shift"]
KINDS: tuple[TamperKind, ...] = ("freeze", "cover", "shift")
REFERENCE_JSON, BACKGROUND_PNG = "tampering.json", "tampering_background.png"
REFERENCE_VERSION = 1
GRID = (4, 6)  # regions for cover: rows, cols
MIN_FRAMES = 20
MAX_SAMPLES = 2000  # small frames kept for the background and the shift statistics
# Share of a kind's confirmation window that must show it: a freeze re-encoded by a camera or recorder
# shows a small change at each key frame, and that alone must not restart the count.
CONFIRM_SHARE = 0.8
# Phase correlation's peak is flat when the picture has nothing in common with the background (a partly
# covered lens); its displacement is then noise, not a shift. Normal frames never fall below this share of
# their lowest peak.
RESPONSE_SHARE = 0.5
_NAMESPACE = uuid.UUID("5d1b8f0e-2a6c-4f7e-9b0a-3c9e7d41a2b6")
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class FrameMeasure:
    """What one frame shows, at the reference's size. ``change`` is None on the first frame after a reset."""

    change: float | None
    detail: np.ndarray  # (rows, cols) mean edge magnitude per region
    displacement: tuple[float, float]  # (dx, dy) from the background, fractions of width and height
    response: float  # phase-correlation peak


class FrameMeasurer:
    """Frame -> :class:`FrameMeasure` at ``size``; keeps the previous frame for the change.
    ``background`` (the reference's) is needed for the displacement; without it that is (0, 0)."""

    def __init__(self, size: tuple[int, int], background: np.ndarray | None) -> None:
        self.size = size
        self.window = cv2.createHanningWindow((size[1], size[0]), cv2.CV_32F)
        # The window is applied here rather than by cv2.phaseCorrelate, which (OpenCV 5.0) writes the
        # windowed image back into its inputs and would wear the background away call by call.
        self.background_edges = (
            None if background is None else _structure(_edges(background.astype(np.float32))) * self.window
        )
        self.previous: np.ndarray | None = None

    def small(self, frame: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        h, w = self.size
        return cv2.resize(grey, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)

    def measure(self, small: np.ndarray) -> FrameMeasure:
        change = (
            None if self.previous is None else float(cv2.norm(small, self.previous, cv2.NORM_L1)) / small.size
        )
        self.previous = small
        rows, cols = GRID
        detail = cv2.resize(_fine_detail(small), (cols, rows), interpolation=cv2.INTER_AREA)
        edges = _edges(small)
        displacement, response = (0.0, 0.0), 0.0
        if self.background_edges is not None:
            (dx, dy), response = cv2.phaseCorrelate(self.background_edges, _structure(edges) * self.window)
            displacement = (dx / self.size[1], dy / self.size[0])
        return FrameMeasure(change, detail, displacement, float(response))


def _fine_detail(small: np.ndarray) -> np.ndarray:
    # Second derivative: an out-of-focus hand or cloth keeps broad shading, which gradients still see,
    # but no fine structure. The light blur keeps pixel noise from passing for structure.
    return np.abs(cv2.Laplacian(cv2.GaussianBlur(small, (0, 0), 0.7), cv2.CV_32F))


def _edges(small: np.ndarray) -> np.ndarray:
    # The blur keeps pixel noise out of the gradients: edges then mean structure, not grain.
    blurred = cv2.GaussianBlur(small, (0, 0), 1.0)
    return cv2.magnitude(cv2.Sobel(blurred, cv2.CV_32F, 1, 0), cv2.Sobel(blurred, cv2.CV_32F, 0, 1))


def _structure(edges: np.ndarray) -> np.ndarray:
    # Log-compressed so that a few high-contrast passers-by cannot outweigh the scene's own faint
    # structure in the alignment; centred so the mean level does not bias the correlation.
    compressed = np.log1p(edges)
    return compressed - float(compressed.mean())


@dataclass
class TamperReference:
    """One camera's normal range, learned from its normal footage.

    ``change_low``: 0.1th percentile of the frame-to-frame change; ``detail_low``: per region, the 0.5th
    percentile of edge detail; ``shift_high``: 99.9th percentile of the displacement from the background
    (fraction of the frame); ``response_low``: 0.1th percentile of the phase-correlation peak.
    """

    size: tuple[int, int]
    background: np.ndarray  # uint8 grey, at size
    change_low: float
    detail_low: np.ndarray  # (rows, cols)
    shift_high: float
    response_low: float
    frames: int

    def save(self, directory: str | Path) -> None:
        """Write ``tampering.json`` and ``tampering_background.png`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "version": REFERENCE_VERSION,
            "size": list(self.size),
            "change_low": self.change_low,
            "detail_low": np.round(self.detail_low, 4).tolist(),
            "shift_high": self.shift_high,
            "response_low": self.response_low,
            "frames": self.frames,
        }
        (directory / REFERENCE_JSON).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        if not cv2.imwrite(str(directory / BACKGROUND_PNG), self.background):
            raise ModelError(f"cannot write {directory / BACKGROUND_PNG}; check the folder is writable")

    @classmethod
    def load(cls, directory: str | Path) -> TamperReference:
        directory = Path(directory)
        meta_path, png = directory / REFERENCE_JSON, directory / BACKGROUND_PNG
        if not meta_path.is_file() or not png.is_file():
            raise ModelError(
                f"{directory} has no tampering reference ({REFERENCE_JSON}, {BACKGROUND_PNG}); "
                "train the model again with this version of vidgru"
            )
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            size = (int(meta["size"][0]), int(meta["size"][1]))
            reference = cls(
                size=size,
                background=cv2.imread(str(png), cv2.IMREAD_GRAYSCALE),
                change_low=float(meta["change_low"]),
                detail_low=np.asarray(meta["detail_low"], np.float32),
                shift_high=float(meta["shift_high"]),
                response_low=float(meta["response_low"]),
                frames=int(meta["frames"]),
            )
        except (ValueError, KeyError, TypeError, IndexError) as err:
            raise ModelError(f"{meta_path} is unreadable ({err}); train the model again") from err
        if meta.get("version") != REFERENCE_VERSION:
            raise ModelError(
                f"{meta_path} has version {meta.get('version')}, expected {REFERENCE_VERSION}; retrain"
            )
        if (
            reference.background is None
            or reference.background.shape != size
            or reference.detail_low.shape != GRID
        ):
            raise ModelError(f"{directory}: tampering reference files do not match each other; train again")
        return reference


class ReferenceBuilder:
    """Collects normal frames clip by clip and fits a :class:`TamperReference` from them.

    Example::

        builder = ReferenceBuilder(TamperingConfig().size)
        for clip in clips:
            for frame in clip:
                builder.add(frame)
            builder.end_clip()      # the next frame is not compared with this clip's last
        reference = builder.build()
    """

    def __init__(self, size: tuple[int, int], seed: int = 0) -> None:
        self.size = (int(size[0]), int(size[1]))
        self._measurer = FrameMeasurer(self.size, background=None)
        self._changes: list[float] = []
        self._details: list[np.ndarray] = []
        self._samples: list[np.ndarray] = []
        self._seen = 0
        self._rng = np.random.default_rng(seed)

    def add(self, frame: np.ndarray) -> None:
        small = self._measurer.small(frame)
        m = self._measurer.measure(small)
        if m.change is not None:
            self._changes.append(m.change)
        self._details.append(m.detail)
        # Reservoir sample: long footage keeps a fair, bounded sample for the background.
        self._seen += 1
        if len(self._samples) < MAX_SAMPLES:
            self._samples.append(small.astype(np.uint8))
        else:
            slot = int(self._rng.integers(self._seen))
            if slot < MAX_SAMPLES:
                self._samples[slot] = small.astype(np.uint8)

    def end_clip(self) -> None:
        self._measurer.previous = None

    def build(self) -> TamperReference:
        if self._seen < MIN_FRAMES or not self._changes:
            raise TrainingError(
                f"{self._seen} normal frames are too few for a tampering reference (need {MIN_FRAMES}); "
                "give more normal footage"
            )
        # Background from every other sample, shift statistics from the rest: measured on frames that
        # did not make the background, as new frames will be.
        stack = np.stack(self._samples)
        background = np.median(stack[0::2], axis=0).astype(np.uint8)
        measurer = FrameMeasurer(self.size, background)
        held_out = stack[1::2] if len(stack) > 1 else stack
        shifts, responses = [], []
        for small in held_out:
            m = measurer.measure(small.astype(np.float32))
            shifts.append(max(abs(m.displacement[0]), abs(m.displacement[1])))
            responses.append(m.response)
        changes = np.asarray(self._changes)
        if float(np.percentile(changes, 0.1)) <= 0.0:
            log.warning(
                "normal footage has frames that repeat exactly; freeze detection on this camera will "
                "only see longer freezes than its normal repeats"
            )
        return TamperReference(
            size=self.size,
            background=background,
            change_low=float(np.percentile(changes, 0.1)),
            detail_low=np.percentile(np.stack(self._details), 0.5, axis=0).astype(np.float32),
            shift_high=float(np.percentile(shifts, 99.9)),
            response_low=float(np.percentile(responses, 0.1)),
            frames=self._seen,
        )


def fit_reference(
    clips: Iterable[Iterable[np.ndarray]], cfg: TamperingConfig, seed: int = 0
) -> TamperReference:
    """Fit a reference from normal clips, each an iterable of BGR (or grey) frames in order."""
    builder = ReferenceBuilder(cfg.size, seed)
    for clip in clips:
        for frame in clip:
            builder.add(frame)
        builder.end_clip()
    return builder.build()


@dataclass
class TamperEpisode:
    kind: TamperKind
    start_frame: int  # first frame that showed it
    end_frame: int | None  # last frame that showed it, inclusive; None while it lasts
    score: float  # strongest evidence so far (see ``evidence``)
    confirmed_frame: int  # frame at which it was raised


@dataclass
class TamperChange:
    type: Literal["start", "end"]
    episode: TamperEpisode


@dataclass(frozen=True)
class Evidence:
    """Per kind: whether this frame shows it, and how strongly. Scores: freeze 0-1 (1: exact repeat),
    cover 0-1 (share of regions blank), shift: displacement as a fraction of the frame."""

    shows: dict[str, bool]
    scores: dict[str, float]


def evidence(m: FrameMeasure, reference: TamperReference, cfg: TamperingConfig) -> Evidence:
    """Compare one frame's measures with the reference's normal range."""
    blank = float(np.mean(m.detail < cfg.cover_ratio * reference.detail_low))
    cover = blank >= cfg.cover_area
    still_below = cfg.freeze_ratio * reference.change_low
    freeze = m.change is not None and m.change < still_below and not cover
    moved = max(abs(m.displacement[0]), abs(m.displacement[1]))
    shift_at = max(cfg.shift_margin * reference.shift_high, cfg.shift_min)
    shift = moved > shift_at and m.response >= RESPONSE_SHARE * reference.response_low and not cover
    freeze_score = 0.0 if m.change is None else max(0.0, 1.0 - m.change / max(still_below, 1e-6))
    return Evidence(
        {"freeze": freeze, "cover": cover, "shift": shift},
        {"freeze": freeze_score, "cover": blank, "shift": moved},
    )


class _KindState:
    """One kind's recent evidence and its open episode (at most one)."""

    def __init__(self, kind: TamperKind, confirm: int, clear: int) -> None:
        self.kind, self.confirm, self.clear = kind, confirm, clear
        self.recent: deque[tuple[int, bool, float]] = deque(maxlen=max(confirm, clear))
        self.open: TamperEpisode | None = None
        self.last_seen = -1

    def update(self, frame: int, shows: bool, score: float) -> TamperChange | None:
        self.recent.append((frame, shows, score))
        if shows:
            self.last_seen = frame
        if self.open is None:
            window = list(self.recent)[-self.confirm :]
            hits = [f for f, s, _ in window if s]
            if shows and len(window) == self.confirm and len(hits) >= CONFIRM_SHARE * self.confirm:
                peak = max(sc for _, s, sc in window if s)
                self.open = TamperEpisode(self.kind, hits[0], None, peak, frame)
                return TamperChange("start", self.open)
            return None
        if shows:
            self.open.score = max(self.open.score, score)
        elif frame - self.last_seen >= self.clear:
            return self.finish()
        return None

    def finish(self) -> TamperChange | None:
        episode, self.open = self.open, None
        self.recent.clear()
        if episode is None:
            return None
        episode.end_frame = max(episode.start_frame, self.last_seen)
        return TamperChange("end", episode)


class TamperDetector:
    """Feed it one camera's frames in order; it returns the tampering episodes they open and close.

    ``push`` costs well under a millisecond for frames up to a few hundred pixels wide; pass the
    smallest copy of the frame at hand (a preview), since only a 60x90 grey version is used.
    """

    def __init__(self, reference: TamperReference, cfg: TamperingConfig, fps: float) -> None:
        self.reference, self.cfg, self.fps = reference, cfg, fps
        self._measurer = FrameMeasurer(reference.size, reference.background)
        seconds = {"freeze": cfg.freeze_s, "cover": cfg.cover_s, "shift": cfg.shift_s}
        clear = max(1, round(cfg.clear_s * fps))
        self._states = {k: _KindState(k, max(1, round(seconds[k] * fps)), clear) for k in KINDS}
        self.last_frame = -1

    def push(self, frame: np.ndarray, frame_index: int) -> list[TamperChange]:
        return self.update(self.measure(frame), frame_index)

    def measure(self, frame: np.ndarray) -> Evidence:
        """What one frame shows; depends on the previous frame measured only. A clip decoded in segments
        measures each segment where it is decoded and replays the evidence in order with :meth:`update`."""
        return evidence(self._measurer.measure(self._measurer.small(frame)), self.reference, self.cfg)

    def update(self, ev: Evidence, frame_index: int) -> list[TamperChange]:
        """Advance the episodes by one frame's evidence, frames in order."""
        self.last_frame = frame_index
        changes = []
        for kind, state in self._states.items():
            change = state.update(frame_index, ev.shows[kind], ev.scores[kind])
            if change is not None:
                changes.append(change)
        return changes

    def reset(self) -> None:
        """The stream restarted (a reconnect, dropped frames): forget the previous frame and any evidence
        not yet confirmed. Open episodes stay open and end once ``clear_s`` passes without them."""
        self._measurer.previous = None
        for state in self._states.values():
            if state.open is None:
                state.recent.clear()

    def close(self) -> list[TamperChange]:
        """End of the clip or stream: end every open episode at the last frame that showed it."""
        return [c for c in (s.finish() for s in self._states.values()) if c is not None]

    @property
    def open_episodes(self) -> list[TamperEpisode]:
        return [s.open for s in self._states.values() if s.open is not None]


def tamper_record(
    camera: str,
    episode: TamperEpisode,
    clock: Callable[[int], float | str],
    type: Literal["camera_tampering", "camera_tampering_end"] = "camera_tampering",
) -> dict[str, Any]:
    """The record every sink takes (``event.schema.json``, ``camera_tampering``). ``clock`` turns a frame
    index into a time: seconds from the start of a video, or ISO-8601 UTC for a live camera. The
    episode's ``camera_tampering`` and ``camera_tampering_end`` records share one id, which is stable:
    the same video gives the same ids."""
    start_time = clock(episode.start_frame)
    end = episode.end_frame
    if type == "camera_tampering_end" and end is None:
        raise ValueError("camera_tampering_end needs an episode that has ended")
    return {
        "schema_version": SCHEMA_VERSION,
        "type": type,
        "id": str(uuid.uuid5(_NAMESPACE, f"{camera}|{episode.kind}|{start_time}|{episode.start_frame}")),
        "camera": camera,
        "kind": episode.kind,
        "reason": "tampering",
        "start_frame": episode.start_frame,
        "start_time": start_time,
        "end_frame": end,
        "end_time": None if end is None else clock(end),
        "score": round(float(episode.score), 4),
    }
