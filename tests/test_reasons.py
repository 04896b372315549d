"""Event reasons: the peak window re-scored without motion or without appearance, by the real model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.conftest import fast_config
from vidgru.jobs import score_clip
from vidgru.model_store import load_model
from vidgru.pipeline import LocalFeaturePipeline
from vidgru.reasons import peak_reason
from vidgru.sources import discover_clips


def test_cell_windows_score_as_the_clip_does_and_a_fast_intruder_is_speed(
    model_dir: Path, clips: dict
) -> None:
    model = load_model(model_dir)
    (features,) = LocalFeaturePipeline(fast_config()).run(discover_clips([clips["intruder"]]))
    desc = model.descriptors.transform(features.motion, features.appearance, features.appearance_rows)
    logits = model.temporal.score(desc)
    window = model.temporal.window
    rng = np.random.default_rng(0)
    frames, cells = rng.integers(0, len(desc), 20), rng.integers(0, desc.shape[1], 20)
    times = np.clip(frames[:, None] + np.arange(-window + 1, 1)[None, :], 0, None)
    again = model.temporal.score_cell_windows(desc[times, cells[:, None]], cells)
    np.testing.assert_allclose(again, logits[frames, cells], rtol=1e-4, atol=1e-4)

    # the intruder's strongest moment: it is faster than anything in the normal footage
    start, end = clips["labels"][0]
    frame = start + int(logits[start:end].max(1).argmax())
    cell = int(logits[frame].argmax())
    assert peak_reason(model.temporal, model.descriptors, features, frame, cell) == "speed"


def test_a_clip_scored_a_stretch_at_a_time_scores_as_at_once(model_dir: Path, clips: dict) -> None:
    model = load_model(model_dir)
    (features,) = LocalFeaturePipeline(fast_config()).run(discover_clips([clips["intruder"]]))
    whole = score_clip(features, model)
    assert features.n_frames > 3 * 7
    stretches = score_clip(features, model, stretch=7)
    np.testing.assert_allclose(stretches.raw, whole.raw, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(stretches.cells, whole.cells)
