"""The feature stages on Ray: a streaming decode task per clip feeds an actor pool of CNNs.

Decode tasks run ahead of the CNN by at most ``_AHEAD`` batches (Ray's generator backpressure), and at
most ``decoders`` clips decode at once, so memory stays bounded on any number of clips.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence

import ray
from ray import ObjectRefGenerator
from ray.util import ActorPool

from vidgru.batches import ClipFeatures, FeatureBatch
from vidgru.config import VidgruConfig
from vidgru.pipeline import FramesDone
from vidgru.sources import Clip
from vidgru.tampering import TamperReference
from workers.decode import decode_clip
from workers.features import FeatureActor
from workers.runtime import cluster_cpus, ensure_ray

_AHEAD = 8  # batches a decoder may produce before the CNN has taken them


class RayFeaturePipeline:
    def __init__(self, cfg: VidgruConfig) -> None:
        self.cfg = cfg
        ensure_ray(cfg.ray)
        cpus = cluster_cpus()
        n_actors = cfg.ray.cnn_actors or max(1, cpus // 3)
        self.decoders = cfg.ray.decoders or cpus
        # Decoders ask for a share of what the actors leave, so that all of them run at once: flow costs
        # about twice the CNN per frame, and one decoder per CNN actor would leave the actor idle.
        self.decode_cpus = max(0.1, (cpus - n_actors) / self.decoders)
        self.actors = [FeatureActor.remote(cfg.features, cfg.motion.grid) for _ in range(n_actors)]
        # Loading weights in every actor fails fast here, with the actor's own error.
        weights = ray.get([a.weights.remote() for a in self.actors])
        self.weights: dict[str, str] = weights[0]
        self.pool = ActorPool(self.actors)

    def _start(self, clip: Clip, tamper: TamperReference | None) -> ObjectRefGenerator:
        return decode_clip.options(
            num_cpus=self.decode_cpus, _generator_backpressure_num_objects=_AHEAD
        ).remote(clip, self.cfg, tamper)

    def run(
        self,
        clips: Sequence[Clip],
        on_frames: FramesDone | None = None,
        tamper: TamperReference | None = None,
    ) -> Iterator[ClipFeatures]:
        waiting = deque(clips)
        decoding: deque[tuple[Clip, ObjectRefGenerator]] = deque()

        def refill() -> None:
            while waiting and len(decoding) < self.decoders:
                clip = waiting.popleft()
                decoding.append((clip, self._start(clip, tamper)))

        refill()
        while decoding:
            clip, generator = decoding.popleft()
            refill()
            batches: list[FeatureBatch] = []
            for submitted, ref in enumerate(generator, start=1):
                self.pool.submit(lambda actor, r: actor.extract.remote(r), ref)
                # Bound the CNN's queue too: results are taken once _AHEAD batches wait on the pool.
                while submitted - len(batches) > _AHEAD:
                    batches.append(self._collect(on_frames))
            while self.pool.has_next():
                batches.append(self._collect(on_frames))
            yield ClipFeatures.from_batches(clip, batches)

    def _collect(self, on_frames: FramesDone | None) -> FeatureBatch:
        batch: FeatureBatch = self.pool.get_next()
        if on_frames:
            on_frames(len(batch.motion))
        return batch
