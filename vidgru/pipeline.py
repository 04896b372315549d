"""The feature stages composed in one process: clip -> frame batches -> CNN -> :class:`ClipFeatures`.

:class:`workers.pipeline.RayFeaturePipeline` runs the same stages on Ray; both share this interface, so
training and analysis do not care where features come from.

Example::

    pipeline = LocalFeaturePipeline(VidgruConfig())
    for features in pipeline.run(clips):
        ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from vidgru.batches import ClipFeatures, FeatureBatch, FrameBatch, frame_batches
from vidgru.config import VidgruConfig
from vidgru.features import FeatureExtractor
from vidgru.occupancy import SceneBackground
from vidgru.sources import Clip
from vidgru.tampering import TamperReference

FramesDone = Callable[[int], None]


class FeaturePipeline(Protocol):
    weights: dict[str, str]

    def run(
        self,
        clips: Sequence[Clip],
        on_frames: FramesDone | None = None,
        tamper: TamperReference | None = None,
        frames: Sequence[int | None] | None = None,
        background: SceneBackground | None = None,
    ) -> Iterator[ClipFeatures]:
        """Features of each clip, in order; with ``tamper``, also the tampering each clip shows; with
        ``background``, each frame's cell occupancy. ``frames``: the clips' frame counts as the containers
        state them, when already known."""
        ...


def extract_features(extractor: FeatureExtractor, batch: FrameBatch) -> FeatureBatch:
    return FeatureBatch(
        clip=batch.clip,
        start=batch.start,
        fps=batch.fps,
        motion=batch.motion,
        appearance=extractor(batch.cnn_input),
        appearance_rows=batch.cnn_rows,
        report=batch.report,
        tamper=batch.tamper,
        evidence=batch.evidence,
        occupancy=batch.occupancy,
        detections=batch.detections,
    )


class LocalFeaturePipeline:
    def __init__(self, cfg: VidgruConfig) -> None:
        self.cfg = cfg
        self.extractor = FeatureExtractor(cfg.features, cfg.motion.grid)
        self.weights = self.extractor.weights.describe()

    def run(
        self,
        clips: Sequence[Clip],
        on_frames: FramesDone | None = None,
        tamper: TamperReference | None = None,
        frames: Sequence[int | None] | None = None,  # not needed: one process reads each clip whole
        background: SceneBackground | None = None,
    ) -> Iterator[ClipFeatures]:
        for clip in clips:
            batches = []
            for batch in frame_batches(clip, self.cfg, tamper=tamper, background=background):
                batches.append(extract_features(self.extractor, batch))
                if on_frames:
                    on_frames(len(batch.motion))
            yield ClipFeatures.from_batches(clip, batches)
