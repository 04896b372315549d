"""The Ray pipeline computes exactly what the in-process pipeline computes."""

from pathlib import Path

import numpy as np

from tests.conftest import fast_config
from vidgru.pipeline import LocalFeaturePipeline
from vidgru.sources import discover_clips
from workers.pipeline import RayFeaturePipeline


def test_ray_and_local_pipelines_agree(clips: dict[str, Path], ray_local: None) -> None:
    cfg = fast_config()
    cfg.features.batch_size = 7  # batches that do not divide the clip
    sources = discover_clips([clips["normal"], clips["intruder"]])
    frames_seen: list[int] = []
    ray_out = list(RayFeaturePipeline(cfg).run(sources, on_frames=frames_seen.append))
    local_out = list(LocalFeaturePipeline(cfg).run(sources))
    assert [f.clip.name for f in ray_out] == [c.name for c in sources]
    assert sum(frames_seen) == sum(f.n_frames for f in local_out) == 500
    for r, loc in zip(ray_out, local_out, strict=True):
        assert r.n_frames == loc.n_frames
        np.testing.assert_allclose(r.motion, loc.motion, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(r.appearance, loc.appearance, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(r.appearance_rows, loc.appearance_rows)
        assert r.report.problem is None and r.report.frames == r.n_frames
