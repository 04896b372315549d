"""Split long videos into segments that decode in parallel, and stitch their features back per video.

A segment is a run of frames of one clip, decoded (with optical flow) by one task. Features of a clip
are stitched in frame order before the GRU sees them, so the temporal model, calibration and event
detection run on the whole clip exactly as if it had been decoded in one piece: the only context a
segment needs from before its start is the one frame that flow into its first frame is measured from
(and that tampering's frame change is measured from). Segment starts are multiples of the CNN batch
size, so batches, and which frames run the CNN (``features.interval``), are the whole clip's.

Example::

    segments = plan_segments(clip, frames=1800, segment_frames=480, batch_size=16)
    # [Segment(start=0, stop=480), Segment(start=480, stop=960), ..., Segment(start=1440, stop=None)]
    features = stitch(clip, feature_batches_of_all_segments, model.tamper, cfg.tampering)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from vidgru.batches import ClipFeatures, FeatureBatch
from vidgru.config import TamperingConfig
from vidgru.sources import Clip
from vidgru.tampering import TamperChange, TamperDetector, TamperReference


@dataclass(frozen=True)
class Segment:
    clip: Clip
    index: int  # 0-based, in frame order
    start: int  # first frame the segment scores
    stop: int | None  # one past its last frame; None: to the end of the clip (the clip's last segment)

    @property
    def last(self) -> bool:
        return self.stop is None


def plan_segments(
    clip: Clip, frames: int | None, segment_frames: int, batch_size: int, max_segments: int | None = None
) -> list[Segment]:
    """Segments of about ``segment_frames`` frames (rounded up to whole batches); the last one reads to
    the end, so a container that misstates its frame count loses nothing. ``segment_frames`` 0, or an
    unknown frame count, gives one segment. At most ``max_segments``: longer ones instead.

    Each segment's task decodes and drops every frame before its start (seeking is inexact in many
    codecs, and a segment must start at exactly the whole video's frame), so a video cut into n segments
    is decoded about (n + 1) / 2 times over. Without a cap an hour of video at 10 frames/s in segments of
    480 frames is 75 segments, about 38 decodes of the whole hour; capped at the number of decoders, the
    extra decoding stays at (decoders - 1) / 2 of the video, and no decoder waits for lack of a segment."""
    if segment_frames <= 0 or frames is None or frames <= segment_frames:
        return [Segment(clip, 0, 0, None)]
    starts = _starts(frames, math.ceil(segment_frames / batch_size) * batch_size)
    if max_segments is not None and len(starts) > max(1, max_segments):
        starts = _starts(frames, math.ceil(frames / max(1, max_segments) / batch_size) * batch_size)
    stops: list[int | None] = [*starts[1:], None]
    return [Segment(clip, i, start, stop) for i, (start, stop) in enumerate(zip(starts, stops, strict=True))]


def _starts(frames: int, length: int) -> list[int]:
    starts = list(range(0, frames, length))
    # A short tail joins the segment before it rather than becoming a task of its own.
    if len(starts) > 1 and frames - starts[-1] < length // 2:
        starts.pop()
    return starts


def stitch(
    clip: Clip,
    batches: Sequence[FeatureBatch],
    tamper: TamperReference | None = None,
    tamper_cfg: TamperingConfig | None = None,
) -> ClipFeatures:
    """One clip's features from the feature batches of all its segments (any order). With ``tamper``,
    the per-frame evidence the segments measured is replayed through one detector in frame order, so
    an episode that spans segments is one episode."""
    features = ClipFeatures.from_batches(clip, list(batches))
    if tamper is not None:
        detector = TamperDetector(tamper, tamper_cfg or TamperingConfig(), features.fps)
        changes: list[TamperChange] = []
        for batch in sorted(batches, key=lambda b: b.start):
            for offset, ev in enumerate(batch.evidence):
                changes += detector.update(ev, batch.start + offset)
        features.tamper = changes + detector.close()
    return features
