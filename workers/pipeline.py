"""The feature stages on Ray: streaming decode tasks, one per video segment, feed an actor pool of CNNs.

Decode tasks run ahead of the CNN by at most ``_AHEAD`` batches each (Ray's generator backpressure) plus
``_PENDING`` taken into the driver, and at most ``decoders`` segments decode at once, so memory stays
bounded on any number of clips. Ray places the tasks and actors over the cluster's nodes.

Fault tolerance is Ray's: a decode task whose worker or node dies is run again (``ray.retries``); the
batches it had already yielded keep their object ids, so none is delivered twice. CNN actors hold no
state, so they are restarted (elsewhere, if their node is gone) and a call lost with one is run again
until it succeeds; a batch lost with a node is rebuilt from its lineage. Each clip's features are
stitched in the driver (:func:`vidgru.segments.stitch`), so a clip is yielded once, whatever failed.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict, deque
from collections.abc import Iterator, Sequence
from typing import Any

import ray
from ray import ObjectRefGenerator
from ray.actor import ActorHandle

from vidgru.batches import ClipFeatures, FeatureBatch, probe_clip
from vidgru.config import VidgruConfig
from vidgru.occupancy import SceneBackground
from vidgru.pipeline import FramesDone
from vidgru.segments import Segment, plan_segments, stitch
from vidgru.sources import Clip
from vidgru.tampering import TamperReference
from workers.decode import decode_segment
from workers.features import FeatureActor
from workers.runtime import cluster_cpus, cluster_gpus, ensure_ray

log = logging.getLogger(__name__)

_AHEAD = 8  # batches a decoder may produce before the driver has taken them
# Decoded batches the driver takes ahead of the CNN (about 0.7 MB each at the default sizes): enough for the
# decoders to keep going through the actors' start-up.
_PENDING = 64


class RayFeaturePipeline:
    def __init__(self, cfg: VidgruConfig) -> None:
        self.cfg = cfg
        ensure_ray(cfg.ray)
        cpus = cluster_cpus()
        gpus = cluster_gpus() if cfg.ray.gpus else 0.0
        n_actors = cfg.ray.cnn_actors or (int(gpus) if gpus >= 1 else max(1, cpus // 3))
        # With GPUs, each actor takes an equal share of them (a whole one with the default actor count).
        gpu_share = min(1.0, gpus / n_actors) if gpus else 0.0
        self.decoders = cfg.ray.decoders or cpus
        # An actor takes a whole CPU unless the actors asked for would leave none to decode: then they share
        # the CPUs with the decoders (without this, ray.cnn_actors >= the CPUs left decoding unschedulable).
        self.actor_cpus = min(1.0, cpus / (n_actors + 1))
        # Decoders ask for a share of what the actors leave, so that all of them run at once: flow costs
        # about twice the CNN per frame, and one decoder per CNN actor would leave the actor idle.
        self.decode_cpus = max(0.1, (cpus - n_actors * self.actor_cpus) / self.decoders)
        # The actors hold no state and extract() is idempotent, so a call lost with its actor is retried
        # until a restarted one (on another node if need be) takes it. A bounded count is used up within
        # seconds while a dead node is being detected ("actor temporarily unavailable"), as the
        # two-node test showed with 3.
        self.actors = [
            FeatureActor.options(
                num_cpus=self.actor_cpus, num_gpus=gpu_share, max_restarts=-1, max_task_retries=-1
            ).remote(
                cfg.features, cfg.motion.grid, gpu=gpu_share > 0, mixed_precision=cfg.ray.mixed_precision
            )
            for _ in range(n_actors)
        ]
        log.info(
            "%d CNN actor(s)%s, %d decoder(s) of %.2f CPU",
            n_actors,
            f" on {gpu_share:g} GPU each" if gpu_share else "",
            self.decoders,
            self.decode_cpus,
        )
        # Each actor reports its weights once loaded: until then it takes no batch, while the decoders already
        # run (an actor loads torch for about 3 s on 2 cores). A failed load surfaces with the actor's error.
        self._loading: dict[ray.ObjectRef, ActorHandle] = {a.weights.remote(): a for a in self.actors}
        self._idle: list[ActorHandle] = []
        self._weights: dict[str, str] | None = None

    @property
    def weights(self) -> dict[str, str]:
        """The backbone weights every actor loaded (waits for the actors if they are still loading)."""
        while self._loading:
            self._actor_loaded(next(iter(self._loading)))
        assert self._weights is not None
        return self._weights

    def _actor_loaded(self, ref: ray.ObjectRef) -> None:
        actor = self._loading.pop(ref)
        self._weights = ray.get(ref)
        self._idle.append(actor)

    def segments(self, clip: Clip, frames: int | None = None) -> list[Segment]:
        """How ``clip`` is split into tasks; ``frames``: its frame count if known (else probed)."""
        frames = probe_clip(clip) if frames is None else frames
        return plan_segments(
            clip, frames, self.cfg.ray.segment_frames, self.cfg.features.batch_size, self.decoders
        )

    def _start(
        self, segment: Segment, tamper: TamperReference | None, background: SceneBackground | None
    ) -> ObjectRefGenerator:
        return decode_segment.options(
            num_cpus=self.decode_cpus,
            max_retries=self.cfg.ray.retries,
            _generator_backpressure_num_objects=_AHEAD,
        ).remote(segment, self.cfg, tamper, background)

    def run(
        self,
        clips: Sequence[Clip],
        on_frames: FramesDone | None = None,
        tamper: TamperReference | None = None,
        frames: Sequence[int | None] | None = None,
        background: SceneBackground | None = None,
    ) -> Iterator[ClipFeatures]:
        """Features of each clip, in the order of ``clips``. ``frames``: the clips' frame counts, when
        already probed; ``background``: the scene background occupancy is measured against.

        Decoded batches are taken from every segment as soon as they are ready (one ``ray.wait`` over the
        decoders, the busy actors and the loading ones), and handed to the first idle actor; up to
        ``_PENDING`` of them wait in the driver for one, so decoding goes on while the actors load or are
        busy. Clips are started at most ``4 * decoders`` ahead of the oldest not yet yielded, which bounds
        the features held in the driver.
        """
        if len({c.name for c in clips}) != len(clips):
            raise ValueError("clips must have distinct names: their batches are grouped by name")
        counts = frames if frames is not None else [None] * len(clips)
        waiting = deque(s for clip, n in zip(clips, counts, strict=True) for s in self.segments(clip, n))
        segments_left = Counter(s.clip.name for s in waiting)  # per clip: segments still decoding or waiting
        in_cnn: Counter[str] = Counter()  # per clip: batches decoded, not yet back from the CNN
        done: dict[str, list[FeatureBatch]] = defaultdict(list)
        order = deque(clips)
        started: set[str] = set()  # clips with a segment started and not yet yielded
        decoding: dict[ObjectRefGenerator, Segment] = {}
        pending: deque[ray.ObjectRef] = deque()  # decoded batches waiting for an idle actor
        busy: dict[ray.ObjectRef, ActorHandle] = {}  # a call in flight -> its actor

        def can_start(segment: Segment) -> bool:
            name = segment.clip.name
            return len(decoding) < self.decoders and (name in started or len(started) < 4 * self.decoders)

        while order:
            while waiting and can_start(waiting[0]):
                segment = waiting.popleft()
                started.add(segment.clip.name)
                decoding[self._start(segment, tamper, background)] = segment
            head = order[0].name
            if segments_left[head] == 0 and in_cnn[head] == 0:
                clip = order.popleft()
                started.discard(clip.name)
                yield stitch(clip, done.pop(clip.name), tamper, self.cfg.tampering)
                continue
            while pending and self._idle:
                actor = self._idle.pop()
                busy[actor.extract.remote(pending.popleft())] = actor
            waitables: list[Any] = [*busy, *self._loading]
            if len(pending) < _PENDING:
                waitables += decoding
            ready, _ = ray.wait(waitables, num_returns=1)
            for item in ready:
                if isinstance(item, ObjectRefGenerator):
                    segment = decoding[item]
                    try:
                        pending.append(next(item))
                    except StopIteration:
                        del decoding[item]
                        segments_left[segment.clip.name] -= 1
                        continue
                    in_cnn[segment.clip.name] += 1
                elif item in self._loading:
                    self._actor_loaded(item)
                else:
                    self._idle.append(busy.pop(item))
                    batch: FeatureBatch = ray.get(item)
                    if on_frames:
                        on_frames(len(batch.motion))
                    in_cnn[batch.clip] -= 1
                    done[batch.clip].append(batch)
