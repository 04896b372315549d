"""Decode a clip into batches ready for the CNN, with each frame's motion statistics already attached.

This is the stage a decoder worker runs: it owns a clip's frames in order, which optical flow needs.

Example::

    for batch in frame_batches(clip, cfg):
        batch.cnn_input      # (B, h, w, 3) uint8 RGB at features.input_size
        batch.motion         # (B, cells, N_MOTION)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from vidgru.config import VidgruConfig
from vidgru.decode import DecodeReport, FrameReader
from vidgru.motion import N_MOTION, MotionAnalyzer
from vidgru.occupancy import SceneBackground
from vidgru.sources import Clip
from vidgru.tampering import Evidence, TamperChange, TamperDetector, TamperReference
from vidgru.tracks import detect


@dataclass
class FrameBatch:
    clip: str
    start: int  # index of the first frame in the clip
    fps: float
    cnn_input: np.ndarray  # only the frames the CNN runs on
    cnn_rows: np.ndarray  # (B,) for each frame, its row in cnn_input (the last CNN frame at or before it)
    motion: np.ndarray
    report: DecodeReport | None = None  # set on the clip's last batch
    tamper: list[TamperChange] = field(default_factory=list)  # tampering episodes opened/closed in it
    evidence: list[Evidence] = field(default_factory=list)  # per frame, when decoded as a segment
    occupancy: np.ndarray | None = None  # (B, cells), given a scene background
    # per frame, given a scene background (vidgru.tracks); None on frames it does not look at
    detections: list[np.ndarray | None] | None = None


@dataclass
class FeatureBatch:
    clip: str
    start: int
    fps: float
    motion: np.ndarray
    appearance: np.ndarray  # (n, cells, channels): once per frame the CNN ran on, not per frame
    appearance_rows: np.ndarray  # (B,) for each frame, its row in appearance
    report: DecodeReport | None = None
    tamper: list[TamperChange] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    occupancy: np.ndarray | None = None
    detections: list[np.ndarray | None] | None = None


@dataclass
class ClipFeatures:
    """Everything the temporal model needs about one clip, frame by frame.

    The CNN's features are kept once per frame it ran on (``appearance``), with each frame's row in them
    (``appearance_rows``): with the CNN on every 8th frame, a copy per frame would be most of what a long
    video's analysis holds in memory (see :meth:`frame_appearance`)."""

    clip: Clip
    fps: float
    motion: np.ndarray  # (T, cells, N_MOTION)
    appearance: np.ndarray  # (n, cells, channels), n <= T
    appearance_rows: np.ndarray  # (T,) for each frame, its row in appearance
    report: DecodeReport = field(default_factory=lambda: DecodeReport(""))
    tamper: list[TamperChange] = field(default_factory=list)
    occupancy: np.ndarray | None = None  # (T, cells): what stands in each cell (vidgru.occupancy)
    # per frame, the blobs to track (vidgru.tracks.detect); None on frames not looked at
    detections: list[np.ndarray | None] | None = None

    @property
    def n_frames(self) -> int:
        return len(self.motion)

    def frame_appearance(self) -> np.ndarray:
        """``(T, cells, channels)``: each frame's CNN features (a copy per frame; training only)."""
        return self.appearance[self.appearance_rows]

    @classmethod
    def from_batches(cls, clip: Clip, batches: list[FeatureBatch]) -> ClipFeatures:
        batches = sorted(batches, key=lambda b: b.start)
        report = next((b.report for b in batches if b.report is not None), DecodeReport(clip.name))
        starts = np.cumsum([0] + [len(b.appearance) for b in batches])
        return cls(
            clip=clip,
            fps=batches[0].fps,
            motion=np.concatenate([b.motion for b in batches]),
            appearance=np.concatenate([b.appearance for b in batches]),
            # Each batch's rows count from its own first CNN frame; the clip's from the clip's.
            appearance_rows=np.concatenate(
                [b.appearance_rows + offset for b, offset in zip(batches, starts[:-1], strict=True)]
            ),
            report=report,
            tamper=[change for b in batches for change in b.tamper],
            occupancy=(
                np.concatenate([b.occupancy for b in batches])
                if all(b.occupancy is not None for b in batches)
                else None
            ),
            detections=(
                [d for b in batches for d in b.detections or []]
                if all(b.detections is not None for b in batches)
                else None
            ),
        )


def probe_clip(clip: Clip) -> int | None:
    """Fail fast, before any worker starts, if a clip cannot yield a single frame; return its frame count
    as the container states it (None if unknown)."""
    reader = FrameReader(clip)
    for _ in reader:
        break
    return reader.report.expected


def frame_batches(
    clip: Clip,
    cfg: VidgruConfig,
    fps: float | None = None,
    tamper: TamperReference | None = None,
    start: int = 0,
    stop: int | None = None,
    evidence: bool = False,
    background: SceneBackground | None = None,
) -> Iterator[FrameBatch]:
    """``tamper``: the model's reference picture; given, each batch carries the tampering it saw.
    ``background``: the model's empty scene; given, each batch carries the blobs that differ from it
    (:func:`vidgru.tracks.detect`) and, for a model with a region GRU (``behaviour.reads_regions``), each
    frame's cell occupancy.

    ``start`` / ``stop``: only frames ``start <= index < stop`` (a segment; see :mod:`vidgru.segments`).
    The frame before ``start`` is decoded too, so that flow into ``start`` is what the whole clip gives;
    ``start`` should be a multiple of ``features.batch_size`` so that batches (and which frames run the
    CNN) are the whole clip's. ``evidence``: batches carry each frame's tampering evidence instead of
    episodes, which need the whole clip and are found by replaying the evidence in order.
    Only a batch read to the end of the clip (``stop`` None) carries the decode report.
    """
    warmup = 1 if start > 0 else 0
    reader = FrameReader(clip, fps=fps, first=start - warmup, stop=stop)
    motion = MotionAnalyzer(cfg.motion)
    detector = TamperDetector(tamper, cfg.tampering, reader.fps) if tamper is not None else None
    changes: list[TamperChange] = []
    seen: list[Evidence] = []
    height, width = cfg.features.input_size
    size = cfg.features.batch_size
    every = cfg.features.interval + 1
    images: list[np.ndarray] = []
    rows: list[int] = []
    stats: list[np.ndarray] = []
    occupied: list[np.ndarray] = []
    blobs: list[np.ndarray | None] = []
    grid = cfg.motion.grid
    measure_occupancy = background is not None and cfg.behaviour.reads_regions
    batch_start = start

    def flush() -> FrameBatch:
        batch = FrameBatch(
            clip=clip.name,
            start=batch_start,
            fps=reader.fps,
            cnn_input=np.stack(images),
            cnn_rows=np.asarray(rows, np.int64),
            motion=np.stack(stats),
            tamper=changes.copy(),
            evidence=seen.copy(),
            occupancy=np.stack(occupied) if measure_occupancy else None,
            detections=blobs.copy() if background is not None else None,
        )
        changes.clear()
        seen.clear()
        return batch

    for index, frame in reader:
        stat = motion.push(frame)
        if detector is not None and evidence:
            seen.append(detector.measure(frame))
        elif detector is not None:
            changes.extend(detector.push(frame, index))
        if index < start:  # the warm-up frame: only the flow and tampering measures of the next need it
            seen.clear()
            continue
        # A batch's first frame always runs the CNN, so every frame has features within its own batch.
        if not rows or index % every == 0:
            small = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
            images.append(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
        rows.append(len(images) - 1)
        stats.append(stat)
        if background is not None:
            # Without a region GRU nothing reads occupancy, and the foreground is needed only for blobs.
            looks = background.looks_at(index)
            differs = background.foreground(frame) if looks or measure_occupancy else None
            if measure_occupancy:
                occupied.append(background.occupancy(frame, grid, differs))
            blobs.append(detect(frame, background, differs) if looks else None)
        if len(rows) == size:
            yield flush()
            images, rows, stats, occupied, blobs, batch_start = [], [], [], [], [], index + 1
    # The last batch carries the decode report and the episodes still open, even when it holds no frames.
    if detector is not None and not evidence:
        changes.extend(detector.close())
    if rows:
        last = flush()
    else:
        last = FrameBatch(
            clip=clip.name,
            start=batch_start,
            fps=reader.fps,
            cnn_input=np.zeros((0, height, width, 3), np.uint8),
            cnn_rows=np.zeros(0, np.int64),
            motion=np.zeros((0, motion.n_cells, N_MOTION), np.float32),
            tamper=changes.copy(),
            occupancy=np.zeros((0, motion.n_cells), np.float32) if measure_occupancy else None,
            detections=[] if background is not None else None,
        )
    if stop is None:
        last.report = reader.report
    yield last
