from __future__ import annotations

import ray
import torch

from vidgru.batches import FeatureBatch, FrameBatch
from vidgru.config import BackboneConfig
from vidgru.features import FeatureExtractor
from vidgru.pipeline import extract_features


@ray.remote(num_cpus=1)
class FeatureActor:
    """Holds the CNN; loads weights once and is called on batches of frames from any clip or camera."""

    def __init__(self, cfg: BackboneConfig, grid: tuple[int, int], threads: int = 1) -> None:
        torch.set_num_threads(threads)
        self.extractor = FeatureExtractor(cfg, grid)

    def weights(self) -> dict[str, str]:
        return self.extractor.weights.describe()

    def extract(self, batch: FrameBatch) -> FeatureBatch:
        return extract_features(self.extractor, batch)
