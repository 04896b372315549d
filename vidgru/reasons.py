"""Why an event fired: ask the model again with one kind of evidence taken away.

Descriptors are z-scores against the camera's normal footage, so 0 means "as normal footage is on
average". The window that gave an event its peak is scored twice more by the same GRU ensemble: once
with the motion statistics set to 0, once with the CNN appearance components set to 0. The evidence whose
removal lowers the logit most is the reason: ``speed`` (how fast and which way things move) or
``appearance`` (what the CNN sees). When the behaviour GRU (:mod:`vidgru.behaviour`), whose memory spans
the video, gave the peak instead, the reason is ``time_pattern``. Tampering records carry ``tampering``.

Example::

    reason = peak_reason(model.temporal, model.descriptors, features, frame=120, cell=41)   # "speed"
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from vidgru.batches import ClipFeatures
from vidgru.descriptors import DescriptorSpace
from vidgru.motion import N_MOTION
from vidgru.temporal import TemporalModel

Reason = Literal["speed", "appearance", "time_pattern", "tampering"]
REASONS: tuple[str, ...] = ("speed", "appearance", "time_pattern", "tampering")


def window_reason(temporal: TemporalModel, window: np.ndarray, cell: int) -> Reason:
    """``window``: ``(W, D)`` descriptors of one cell ending at the peak frame."""
    if window.shape[-1] <= N_MOTION:  # a model without appearance sees only motion
        return "speed"
    no_motion, no_appearance = window.copy(), window.copy()
    no_motion[:, :N_MOTION] = 0
    no_appearance[:, N_MOTION:] = 0
    full, without_motion, without_appearance = temporal.score_cell_windows(
        np.stack([window, no_motion, no_appearance]), np.full(3, cell)
    )
    return "speed" if full - without_motion >= full - without_appearance else "appearance"


def peak_reason(
    temporal: TemporalModel, space: DescriptorSpace, features: ClipFeatures, frame: int, cell: int
) -> Reason:
    """Reason for the short-window GRU's score of ``cell`` at ``frame`` of a clip; frames before the clip's
    start repeat frame 0, as in scoring. The window's descriptors are made again from the features: the
    clip's are not kept past scoring (on a long video they would be the largest array)."""
    times = np.clip(np.arange(frame - temporal.window + 1, frame + 1), 0, None)
    window = space.transform_frames(features.motion, features.appearance, features.appearance_rows, times)
    return window_reason(temporal, window[:, cell], cell)
