import numpy as np
import pytest
import torch

from vidgru.config import EventsConfig, TemporalConfig
from vidgru.events import EventDetector
from vidgru.scoring import Calibration, frame_scores
from vidgru.temporal import StreamState, TemporalModel


def test_streaming_matches_whole_clip_scoring() -> None:
    model = TemporalModel.build(in_dim=6, n_cells=10, cfg=TemporalConfig(window=4, ensemble=2))
    desc = np.random.default_rng(0).normal(size=(30, 10, 6)).astype(np.float32)
    whole = model.score(desc)
    state = StreamState()
    streamed = np.stack([model.step(d, state) for d in desc])
    np.testing.assert_allclose(whole, streamed, rtol=1e-5, atol=1e-6)
    # Chunked scoring with carried state matches too.
    state = StreamState()
    chunked = np.concatenate([model.score(desc[:13], state), model.score(desc[13:], state)])
    np.testing.assert_allclose(whole, chunked, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("window", "position_dim"), [(4, 8), (1, 0), (7, 3)])
def test_scoring_equals_the_trained_grus_on_every_window(window: int, position_dim: int) -> None:
    """score() runs the GRU's equations itself (shared input projections); the logits are nn.GRU's."""
    cfg = TemporalConfig(window=window, position_dim=position_dim, ensemble=2)
    model = TemporalModel.build(in_dim=5, n_cells=6, cfg=cfg)
    for net in model.nets:  # weights far from init, so that every gate matters
        for param in net.parameters():
            torch.nn.init.normal_(param, std=0.7)
    desc = np.random.default_rng(1).normal(size=(40, 6, 5)).astype(np.float32)
    seq = torch.from_numpy(np.concatenate([np.repeat(desc[:1], window - 1, axis=0), desc]))
    windows = seq.unfold(0, window, 1).permute(0, 1, 3, 2).reshape(-1, window, 5)
    with torch.inference_mode():
        cells = torch.arange(6).repeat(40)
        expected = torch.stack([net(windows, cells) for net in model.nets]).mean(0).reshape(40, 6)
    np.testing.assert_allclose(model.score(desc), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_window_limits_memory() -> None:
    model = TemporalModel.build(in_dim=3, n_cells=2, cfg=TemporalConfig(window=3, ensemble=1))
    a = np.zeros((10, 2, 3), np.float32)
    b = a.copy()
    b[2] = 5.0  # differs only at frame 2
    sa, sb = model.score(a), model.score(b)
    assert not np.allclose(sa[2:5], sb[2:5])
    np.testing.assert_allclose(sa[5:], sb[5:])  # frame 2 is out of every window from frame 5 on


def test_calibration_and_frame_scores() -> None:
    logits = np.array([[0.0, 2.0], [3.0, 1.0]])
    raw, cells = frame_scores(logits)
    assert raw.tolist() == [2.0, 3.0] and cells.tolist() == [1, 0]
    cal = Calibration.fit(np.arange(1001, dtype=float))
    assert abs(cal(np.array([500.0]))[0]) < 1e-6 and abs(cal(np.array([990.0]))[0] - 1) < 1e-3


def _run(scores: list[float], cfg: EventsConfig) -> list[tuple[str, int, int, int]]:
    det = EventDetector("cam", cfg, fps=10, model="m")
    out = [c for i, s in enumerate(scores) for c in det.update(i, s, cell=i % 3)]
    out += det.close()
    return [(c.type, c.event.start_frame, c.event.end_frame, c.event.peak_frame) for c in out]


def test_event_lifecycle_hysteresis_and_min_duration() -> None:
    cfg = EventsConfig(threshold=1.0, hysteresis=0.5, min_duration_s=0.3, merge_gap_s=0.0)
    scores = [0, 0, 1.2, 0.8, 2.0, 0.6, 0.1, 0, 1.5, 0, 0]
    changes = _run(scores, cfg)
    # 2..5 stays open through 0.8 and 0.6 (above 0.5); the lone 1.5 at frame 8 is too short.
    assert [c[0] for c in changes] == ["start", "end"]
    assert changes[1][1:] == (2, 5, 4)


def test_merge_gap_bridges_short_dips_and_close_ends_open_event() -> None:
    cfg = EventsConfig(threshold=1.0, hysteresis=0.9, min_duration_s=0.0, merge_gap_s=0.2)
    changes = _run([2, 2, 0, 0, 2, 0, 0, 0, 2, 2], cfg)
    ends = [c for c in changes if c[0] == "end"]
    assert [(s, e) for _, s, e, _ in ends] == [(0, 4), (8, 9)]


def test_sustained_since_counts_runs_causally_and_says_where_they_began() -> None:
    from vidgru.jobs import sustained_since

    mask = np.array([1, 1, 0, 1, 1, 1, 1, 0, 1], bool)
    assert sustained_since(mask, 3).tolist() == [-1, -1, -1, -1, -1, 3, 3, -1, -1]
    assert sustained_since(mask, 1).tolist() == [0, 0, -1, 3, 3, 3, 3, -1, 8]
    assert sustained_since(mask, 0).tolist() == sustained_since(mask, 1).tolist()


def test_an_event_whose_cause_began_earlier_starts_there_but_not_inside_the_last_event() -> None:
    cfg = EventsConfig(threshold=1.0, hysteresis=0.9, min_duration_s=0.2, merge_gap_s=0.0)
    det = EventDetector("cam", cfg, fps=10, model="m")
    scores = [0, 2, 2, 2, 0, 0, 0, 0, 2, 2, 0]
    since = [None, None, None, None, None, None, None, None, 2, 2, None]
    changes = [c for i, (s, b) in enumerate(zip(scores, since, strict=True)) for c in det.update(i, s, 0, b)]
    changes += det.close()
    ends = [(c.event.start_frame, c.event.end_frame, c.event.start_time) for c in changes if c.type == "end"]
    # The second run's cause began at frame 2, inside the first event (1-3): it starts right after it.
    assert ends == [(1, 3, 0.1), (4, 9, 0.4)]
    # A behaviour confirmed at frame 8 that began at frame 5 opens an event that has already lasted long
    # enough: it starts at once.
    det = EventDetector("cam", cfg, fps=10, model="m")
    (start,) = det.update(8, 2.0, 0, 5)
    assert start.type == "start" and (start.event.start_frame, start.event.end_frame) == (5, 8)


def test_a_behaviours_event_bridges_longer_gaps_than_others() -> None:
    cfg = EventsConfig(
        threshold=1.0, hysteresis=0.9, min_duration_s=0.0, merge_gap_s=0.2, behaviour_merge_gap_s=0.5
    )
    # Two runs 4 frames apart: one event when the behaviour models drove the first run, two otherwise.
    scores = [2, 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 0, 0, 0]
    for behaviour, expected in ((True, [(0, 7)]), (False, [(0, 1), (6, 7)])):
        det = EventDetector("cam", cfg, fps=10, model="m")
        since = [0 if behaviour and s else None for s in scores]
        changes = [
            c for i, (s, b) in enumerate(zip(scores, since, strict=True)) for c in det.update(i, s, 0, b)
        ]
        changes += det.close()
        assert [(c.event.start_frame, c.event.end_frame) for c in changes if c.type == "end"] == expected


def test_a_behaviour_that_came_back_inside_the_gap_carries_its_event_on_once_confirmed() -> None:
    """A pacer's score dips at a turn: the run that follows began inside the 5-frame gap but is confirmed
    (``since`` given) only 3 frames later, after the gap. With ``confirm_s`` the event waits for it."""
    cfg = EventsConfig(
        threshold=1.0, hysteresis=0.9, min_duration_s=0.0, merge_gap_s=0.1, behaviour_merge_gap_s=0.5
    )
    # Behaviour active 0-3; back at frame 7 (inside the gap: 3 + 5), confirmed from frame 10 on.
    scores = [2.0] * 4 + [0.0] * 6 + [2.0] * 3 + [0.0] * 12
    since = [0] * 4 + [None] * 6 + [7] * 3 + [None] * 12
    # A run that began after the gap (frame 9) is an event of its own, as is everything without confirm_s.
    late = [0] * 4 + [None] * 6 + [9] * 3 + [None] * 12
    cases = [(since, 0.3, [(0, 12)]), (since, 0.0, [(0, 3), (7, 12)]), (late, 0.3, [(0, 3), (9, 12)])]
    for begun, confirm_s, expected in cases:
        det = EventDetector("cam", cfg, fps=10, model="m", confirm_s=confirm_s)
        changes = [
            c for i, (s, b) in enumerate(zip(scores, begun, strict=True)) for c in det.update(i, s, 0, b)
        ]
        ends = [(c.event.start_frame, c.event.end_frame) for c in changes if c.type == "end"]
        assert ends == expected, (confirm_s, begun[10])
        assert det.close() == []
    # While it waits, a new cause that is no behaviour of the gap ends the event and opens its own.
    det = EventDetector("cam", cfg, fps=10, model="m", confirm_s=0.3)
    changes = [c for i in range(4) for c in det.update(i, 2.0, 0, 0)]
    changes += [c for i in range(4, 9) for c in det.update(i, 0.0, 0)]
    changes += det.update(9, 2.0, 1)
    changes += det.close()
    assert [(c.type, c.event.start_frame, c.event.end_frame) for c in changes] == [
        ("start", 0, 3),  # the same event object, updated till its end
        ("end", 0, 3),
        ("start", 9, 9),
        ("end", 9, 9),
    ]


# Events held per tracked object: a short gap, so that holding is what keeps an event open.
_HELD = EventsConfig(
    threshold=1.0,
    hysteresis=0.9,
    min_duration_s=0.0,
    merge_gap_s=0.1,
    behaviour_merge_gap_s=0.5,
    behaviour_track_hold_s=15.0,
)


def test_a_tracked_objects_behaviour_stays_one_event_while_it_is_in_view() -> None:
    """A pacer's event (track 7) ends; 10 s later, still in view, the same track's behaviour comes back:
    one event. Another track's, the same track out of view, or past behaviour_track_hold_s: two."""
    cfg = _HELD

    def ends(back: int, by: int, seen: set[int], hold_s: float = 15.0) -> list[tuple[int, int]]:
        det = EventDetector(
            "cam", cfg.model_copy(update={"behaviour_track_hold_s": hold_s}), 10, "m", confirm_s=0.3
        )
        changes = []
        for i in range(back + 20):
            active = i < 30 or back <= i < back + 10
            track = 7 if i < 30 else by
            since = (0 if i < 30 else back - 3) if active else None
            changes += det.update(i, 2.0 if active else 0.0, 0, since, track if active else None, seen)
        changes += det.close()
        return [(c.event.start_frame, c.event.end_frame) for c in changes if c.type == "end"]

    assert ends(130, 7, {7, 8}) == [(0, 139)]
    assert ends(130, 8, {7, 8}) == [(0, 29), (127, 139)]
    assert ends(130, 7, {8}) == [(0, 29), (127, 139)]
    assert ends(200, 7, {7, 8}) == [(0, 29), (197, 209)]  # 17 s after: past the hold
    assert ends(130, 7, {7, 8}, hold_s=0.0) == [(0, 29), (127, 139)]
    # A cause that is no track's behaviour ends the held event and opens its own.
    det = EventDetector("cam", cfg, 10, "m", confirm_s=0.3)
    changes = [c for i in range(30) for c in det.update(i, 2.0, 0, 0, 7, {7})]
    changes += [c for i in range(30, 100) for c in det.update(i, 0.0, 0, None, None, {7})]
    changes += det.update(100, 2.0, 1, None, None, {7})
    changes += det.close()
    assert [(c.type, c.event.start_frame, c.event.end_frame) for c in changes if c.type == "end"] == [
        ("end", 0, 29),
        ("end", 100, 100),
    ]


def test_a_held_event_follows_its_track_into_the_object_that_track_joins() -> None:
    """Track 8's behaviour drives an event; at frame 60 track 8 is found to follow track 5's object (it was
    seen where 5 was, and 5 was dropped), so from then on its frames say 5. Its behaviour coming back is the
    same object's: one event. Without word of the join, 5 is another object: two."""

    def ends(told: bool) -> list[tuple[int, int]]:
        det = EventDetector("cam", _HELD, 10, "m", confirm_s=0.3)
        changes = []
        for i in range(150):
            active = i < 30 or 130 <= i < 140
            track = 5 if i >= 60 else 8
            since = (0 if i < 30 else 127) if active else None
            joined = (lambda k, i=i: 5 if i >= 60 and k == 8 else k) if told else None
            changes += det.update(
                i, 2.0 if active else 0.0, 0, since, track if active else None, {track}, joined
            )
        changes += det.close()
        return [(c.event.start_frame, c.event.end_frame) for c in changes if c.type == "end"]

    assert ends(told=True) == [(0, 139)]
    assert ends(told=False) == [(0, 29), (127, 139)]
