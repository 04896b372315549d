from pathlib import Path

import numpy as np

from tests.conftest import fast_config
from vidgru.batches import frame_batches
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
