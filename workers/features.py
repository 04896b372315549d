from __future__ import annotations

import ray
import torch

from vidgru.batches import FeatureBatch, FrameBatch
from vidgru.config import BackboneConfig
from vidgru.features import FeatureExtractor
from vidgru.pipeline import extract_features


# Without task events: one call per batch of frames, for as long as a camera is watched, would fill the
# GCS's store of them (Ray keeps 100,000 tasks' events for its dashboard and State API), and the GCS grew
# by about 4 MB a minute on one camera (BENCHMARKS.md, `vidgru watch`).
@ray.remote(num_cpus=1, enable_task_events=False)
class FeatureActor:
    """Holds the CNN; loads weights once and is called on batches of frames from any clip or camera.

    Created with ``num_gpus`` > 0 it runs on the GPU Ray assigned it (``gpu=True``), with float16
    autocast when ``mixed_precision``. It keeps no state between calls, so Ray may restart it on another
    node and re-run a call that was lost with it.
    """

    def __init__(
        self,
        cfg: BackboneConfig,
        grid: tuple[int, int],
        threads: int = 1,
        gpu: bool = False,
        mixed_precision: bool = True,
    ) -> None:
        torch.set_num_threads(threads)
        # Ray sets CUDA_VISIBLE_DEVICES to the GPUs it gave this actor, so "cuda" is one of those.
        self.extractor = FeatureExtractor(cfg, grid, "cuda" if gpu else "cpu", mixed_precision)

    def weights(self) -> dict[str, str]:
        return self.extractor.weights.describe()

    def extract(self, batch: FrameBatch) -> FeatureBatch:
        return extract_features(self.extractor, batch)
