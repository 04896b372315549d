from pathlib import Path

import numpy as np

from tests.conftest import fast_config
from vidgru.batches import frame_batches
from vidgru.decode import FrameReader
from vidgru.occupancy import fit_background
from vidgru.pipeline import LocalFeaturePipeline
from vidgru.sources import discover_clips


def test_cnn_interval_reuses_the_last_features(clips: dict[str, Path]) -> None:
    (clip,) = discover_clips([clips["intruder"]])
    every_frame, skipping = fast_config(), fast_config()
    every_frame.features.interval = 0
    skipping.features.interval = 2
    skipping.features.batch_size = every_frame.features.batch_size = 10
    batches = list(frame_batches(clip, skipping))
    assert batches[0].cnn_rows.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    assert batches[1].cnn_rows.tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 3, 3]  # frame 10 starts a batch
    assert sum(len(b.cnn_input) for b in batches) < 150 / 2

    (full,) = LocalFeaturePipeline(every_frame).run([clip])
    (sparse,) = LocalFeaturePipeline(skipping).run([clip])
    np.testing.assert_allclose(sparse.motion, full.motion)
    source = [0, 0, 0, 3, 3, 3, 6, 6, 6, 9, 10, 10, 12, 12, 12, 15]
    np.testing.assert_allclose(
        sparse.frame_appearance()[:16], full.frame_appearance()[source], rtol=1e-4, atol=1e-4
    )
    # Kept once per CNN frame: frames 0-9 ran it on 0, 3, 6 and 9, frames 10-19 on 10, 12, 15 and 18.
    assert len(sparse.appearance) < len(full.appearance) / 2
    assert sparse.appearance_rows[:16].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 4, 4, 5, 5, 5, 6]


def test_blobs_are_made_on_the_frames_the_background_looks_at(clips: dict[str, Path]) -> None:
    # By the frame's index in the video, so a segment decoded apart looks at the frames one pass would.
    (clip,) = discover_clips([clips["intruder"]])
    cfg = fast_config()
    cfg.features.batch_size = 10
    background = fit_background([(f for _, f in FrameReader(clip))], (120, 180))
    assert background.detect_every == 2
    whole = [d for b in frame_batches(clip, cfg, background=background) for d in b.detections or []]
    assert len(whole) == 150
    assert [d is None for d in whole[:4]] == [False, True, False, True]
    assert all((d is None) == (i % 2 == 1) for i, d in enumerate(whole))
    assert sum(len(d) for d in whole if d is not None) > 0  # the intruder is found
    segment = [
        d
        for b in frame_batches(clip, cfg, start=30, stop=50, background=background)
        for d in b.detections or []
    ]
    assert len(segment) == 20 and segment[1] is None and segment[0] is not None
    for a, b in zip(segment, whole[30:50], strict=True):
        assert (a is None and b is None) or np.array_equal(a, b)
    # Cell occupancy only for a model with a region GRU, the only reader of it.
    assert all(b.occupancy is None for b in frame_batches(clip, cfg, background=background))
    cfg.behaviour.enabled = cfg.behaviour.region_model = True
    rows, cols = cfg.motion.grid
    batches = list(frame_batches(clip, cfg, background=background))
    assert all(b.occupancy is not None and b.occupancy.shape == (len(b.motion), rows * cols) for b in batches)
    assert sum(len(b.motion) for b in batches) == 150
