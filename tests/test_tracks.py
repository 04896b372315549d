"""Per-object memory: blobs, DeepSORT tracks, the per-track GRU and its training edits. No Ray."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidgru.config import BehaviourConfig
from vidgru.errors import ModelError
from vidgru.jobs import _InView
from vidgru.occupancy import (
    BACKGROUND_COLOUR_PNG,
    BACKGROUND_JSON,
    BLOB_CLOSING,
    DETECT_EVERY,
    SceneBackground,
    fit_background,
)
from vidgru.synthetic import BehaviourSceneSpec, Episode, behaviour_frames, plan_behaviour_scene
from vidgru.track_model import TrackModel, TrackScorer, object_joins
from vidgru.track_training import (
    IGNORE,
    SLOW,
    back_and_forth,
    fit_tracks,
    hold,
    longest_normal_stop,
    normal_chains,
    stop_and_go,
    unseen_by,
)
from vidgru.tracks import (
    HANDOVER_STEPS,
    N_EMBED,
    N_TRACK,
    TRACK_FEATURES,
    VELOCITY_NOISE,
    SameObjects,
    TrackSequence,
    TrackStepper,
    box_cells,
    clip_tracks,
    detect,
    merged_blobs,
    quick_kalman,
    quick_tracker,
)

_SPEED = TRACK_FEATURES.index("speed")
_VX = TRACK_FEATURES.index("vx")


def _scene(xs: list[float], frames: int) -> tuple[SceneBackground, list[np.ndarray]]:
    """A flat grey 120x180 background and ``frames`` frames with a 6x14 bright figure at ``xs[t]``."""
    background = SceneBackground(np.full((120, 180), 100, np.uint8), 12.0)
    images = []
    for t in range(frames):
        img = np.full((120, 180, 3), 100, np.uint8)
        x = round(xs[t])
        img[50:64, x : x + 6] = (30, 200, 240)
        images.append(img)
    return background, images


def test_a_blob_is_detected_with_its_box_and_appearance() -> None:
    background, images = _scene([60.0], 1)
    dets = detect(images[0], background)
    assert dets.shape[0] == 1
    x1, y1, x2, y2 = dets[0, :4]
    assert x1 == pytest.approx(60 / 180, abs=0.01) and x2 == pytest.approx(66 / 180, abs=0.01)
    assert y1 == pytest.approx(50 / 120, abs=0.01) and y2 == pytest.approx(64 / 120, abs=0.01)
    assert np.linalg.norm(dets[0, 4:]) == pytest.approx(1.0, abs=1e-4)
    assert detect(np.full((120, 180, 3), 100, np.uint8), background).shape[0] == 0


def test_each_blobs_appearance_is_the_colour_histogram_of_its_own_pixels() -> None:
    """Histograms of all blobs are counted at once; each must still be its own pixels' calcHist."""
    rng = np.random.default_rng(3)
    background = SceneBackground(np.full((120, 180), 100, np.uint8), 12.0)
    image = np.full((120, 180, 3), 100, np.uint8)
    image[20:50, 10:30] = rng.integers(0, 256, (30, 20, 3), dtype=np.uint8)  # many colours
    image[60:62, 100:102] = (250, 10, 10)  # a speck: the opening removes it
    image[70:100, 120:160] = (20, 200, 90)
    image[80:90, 40:44] = (200, 200, 200)
    dets = detect(image, background)
    mask = cv2.morphologyEx(
        cv2.morphologyEx(
            background.foreground(image), cv2.MORPH_CLOSE, np.ones(background.closing, np.uint8)
        ),
        cv2.MORPH_OPEN,
        np.ones((3, 3), np.uint8),
    )
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    expected = []
    for i in range(1, n):
        x, y, w, h, area = stats[i]
        if area < 8:
            continue
        hist = cv2.calcHist(
            [image[y : y + h, x : x + w]], [0, 1, 2], (labels[y : y + h, x : x + w] == i).astype(np.uint8),
            [4, 4, 4], [0, 256] * 3,
        ).ravel()  # fmt: skip
        expected.append(hist / np.linalg.norm(hist))
    assert len(dets) == len(expected) >= 3
    np.testing.assert_array_equal(dets[:, 4:], np.stack(expected))


@pytest.mark.parametrize("tall", [True, False])
def test_a_figure_split_by_a_torso_of_the_background_grey_is_one_blob(tall: bool) -> None:
    """A figure whose torso has the walkway's grey shows as a head and legs; figures side by side do not
    touch. The tall closing joins the head to the legs and keeps the two figures apart; a square 3 x 3
    one leaves the head and the legs apart too."""
    background = SceneBackground(np.full((120, 180), 100, np.uint8), 12.0, (7, 3) if tall else (3, 3))
    image = np.full((120, 180, 3), 100, np.uint8)
    image[20:25, 40:44] = 30  # a head, 5 px above ...
    image[30:42, 40:44] = 30  # ... its legs
    image[20:40, 100:104] = 30  # two figures 5 px apart (3 once the background's blur has spread them)
    image[20:40, 109:113] = 30
    boxes = detect(image, background)[:, :4] * np.array([180, 120, 180, 120])
    spans_head_and_legs = (boxes[:, 1] < 20.5) & (boxes[:, 3] > 41.5)
    side_by_side = (boxes[:, 0] > 95) & (boxes[:, 2] < 115) & (boxes[:, 2] - boxes[:, 0] < 8)
    assert side_by_side.sum() == 2
    assert spans_head_and_legs.sum() == (1 if tall else 0)
    assert len(boxes) == (3 if tall else 4)


def test_a_background_keeps_the_closing_its_model_learnt_with(tmp_path: Path) -> None:
    fitted = fit_background([[np.full((60, 90, 3), 100, np.uint8)] * 3], (120, 180))
    assert fitted.closing == BLOB_CLOSING == (7, 3)
    fitted.save(tmp_path)
    assert SceneBackground.load(tmp_path).closing == (7, 3)
    # A background saved before the closing was kept with it: its model learnt from blobs closed 3 x 3.
    meta = json.loads((tmp_path / BACKGROUND_JSON).read_text())
    del meta["closing"]
    (tmp_path / BACKGROUND_JSON).write_text(json.dumps(meta))
    assert SceneBackground.load(tmp_path).closing == (3, 3)
    meta["closing"] = [0, 3]
    (tmp_path / BACKGROUND_JSON).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="closing 0 x 3"):
        SceneBackground.load(tmp_path)


def test_a_background_keeps_which_frames_its_model_tracked_on(tmp_path: Path) -> None:
    fitted = fit_background([[np.full((60, 90, 3), 100, np.uint8)] * 3], (120, 180))
    assert fitted.detect_every == DETECT_EVERY == 2
    assert [fitted.looks_at(i) for i in range(5)] == [True, False, True, False, True]
    fitted.save(tmp_path)
    assert SceneBackground.load(tmp_path).detect_every == 2
    # A background saved before it was kept: its model's tracks were made from blobs on every frame.
    meta = json.loads((tmp_path / BACKGROUND_JSON).read_text())
    del meta["detect_every"]
    (tmp_path / BACKGROUND_JSON).write_text(json.dumps(meta))
    assert SceneBackground.load(tmp_path).detect_every == 1
    meta["detect_every"] = 3
    (tmp_path / BACKGROUND_JSON).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="detect_every 3"):
        SceneBackground.load(tmp_path)


def test_a_body_of_the_walkways_grey_but_not_its_colour_is_foreground(tmp_path: Path) -> None:
    """A body whose grey level is the walkway's leaves only its head in a grey foreground; its chroma
    differs, and the colour background keeps it whole, through a save and a load. Grey footage fits a grey
    background, and one saved before colour was read stays grey."""
    walkway = np.full((120, 180, 3), (90, 110, 120), np.uint8)  # grey level 110
    fitted = fit_background([[walkway] * 3], (120, 180))
    assert fitted.colour is not None and fitted.chroma_threshold == 12.0
    frame = walkway.copy()
    blue = (200, 130, 40)  # grey level 107, Cb 166 against the walkway's 116
    frame[20:25, 40:44] = 30  # a dark head ...
    frame[25:45, 40:44] = blue  # ... on a blue body
    body = (slice(27, 43), slice(41, 43))
    grey_only = SceneBackground(fitted.picture, fitted.threshold)
    assert grey_only.foreground(frame)[body].sum() == 0
    assert fitted.foreground(frame)[body].all()
    assert fitted.foreground(walkway).sum() == 0
    fitted.save(tmp_path)
    loaded = SceneBackground.load(tmp_path)
    assert np.array_equal(loaded.foreground(frame), fitted.foreground(frame))
    (tmp_path / BACKGROUND_COLOUR_PNG).unlink()
    with pytest.raises(ModelError, match=BACKGROUND_COLOUR_PNG):
        SceneBackground.load(tmp_path)
    meta = json.loads((tmp_path / BACKGROUND_JSON).read_text())
    del meta["chroma_threshold"]
    (tmp_path / BACKGROUND_JSON).write_text(json.dumps(meta))
    assert SceneBackground.load(tmp_path).colour is None
    grey = cv2.cvtColor(walkway, cv2.COLOR_BGR2GRAY)
    assert fit_background([[grey] * 3], (120, 180)).colour is None
    # Grey footage in a colour file (as UCSD Ped2's): its chroma is neutral, and not read.
    assert fit_background([[cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)] * 3], (120, 180)).colour is None


def test_the_quick_kalman_filter_computes_what_deepsorts_own_does() -> None:
    from deep_sort_realtime.deep_sort.kalman_filter import KalmanFilter

    stock, quick = KalmanFilter(), quick_kalman()()
    assert quick._std_weight_velocity == VELOCITY_NOISE != stock._std_weight_velocity
    stock._std_weight_velocity = VELOCITY_NOISE
    rng = np.random.default_rng(0)
    states, measures, crowd = [], [], []
    for _ in range(20):
        box = np.array([rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.2, 1), rng.uniform(0.02, 0.3)])
        mean, cov = stock.initiate(box)
        mean[4:] = rng.normal(0, 0.01, 4)
        cov = cov + 1e-4 * np.eye(8)
        measured = box + rng.normal(0, 0.01, 4)
        others = box + rng.normal(0, 0.05, (5, 4))
        for a, b in zip(stock.predict(mean, cov), quick.predict(mean, cov), strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
        for a, b in zip(stock.update(mean, cov, measured), quick.update(mean, cov, measured), strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
        for only_position in (False, True):
            np.testing.assert_allclose(
                quick.gating_distance(mean, cov, others, only_position),
                stock.gating_distance(mean, cov, others, only_position),
                rtol=1e-9,
            )
        states.append((mean, cov))
        measures.append(measured)
        crowd.append(others[0])
    # The stacked versions that the quick tracker calls: each track's answer, as the stock filter's.
    means, covs = np.stack([m for m, _ in states]), np.stack([c for _, c in states])
    for i, (mean, cov) in enumerate(zip(*quick.predict_many(means, covs), strict=True)):
        for a, b in zip(stock.predict(*states[i]), (mean, cov), strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
    for i, (mean, cov) in enumerate(zip(*quick.update_many(means, covs, np.stack(measures)), strict=True)):
        for a, b in zip(stock.update(*states[i], measures[i]), (mean, cov), strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
    gates = quick.gating_distances(means, covs, np.stack(crowd))
    for i in range(len(states)):
        np.testing.assert_allclose(gates[i], stock.gating_distance(*states[i], np.stack(crowd)), rtol=1e-9)


def test_the_quick_tracker_makes_deepsorts_own_tracks(monkeypatch: pytest.MonkeyPatch) -> None:
    # A busy generated scene (figures crossing, stopping, one pacing): tracks lost and found again, so the
    # matching cascade runs at several track ages.
    from deep_sort_realtime.deep_sort.track import Track
    from deep_sort_realtime.deep_sort.tracker import Tracker

    import vidgru.tracks

    spec = BehaviourSceneSpec(seconds=40.0, seed=5, walkers=5.0, episodes=(Episode("pacing", 5.0),))
    frames = list(behaviour_frames(plan_behaviour_scene(spec)))
    background = fit_background([frames], (120, 180))
    detections = [detect(f, background) for f in frames]
    assert type(TrackStepper(5, 10.0).tracker.tracker) is quick_tracker()
    quick = clip_tracks(detections, 5, 10.0)
    stock_update = Track.update

    def update(track: Track, kf: object, detection: object) -> None:
        # The one rule vidgru adds to the package's tracks, one track at a time: a merged blob's colours
        # are not the track's.
        predicted = track.mean[None, :4].copy()
        stock_update(track, kf, detection)
        if merged_blobs(predicted, detection.to_xyah()[None])[0]:
            track.features.pop()

    monkeypatch.setattr(Track, "update", update)
    monkeypatch.setattr(vidgru.tracks, "quick_tracker", lambda: Tracker)
    assert type(TrackStepper(5, 10.0).tracker.tracker) is Tracker
    stock = clip_tracks(detections, 5, 10.0)
    assert len(stock) >= 8
    assert [t.track for t in quick] == [t.track for t in stock]
    for a, b in zip(quick, stock, strict=True):
        np.testing.assert_array_equal(a.steps, b.steps)
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.features, b.features)


@pytest.mark.parametrize("every", [1, 2])
def test_one_walker_is_one_track_whose_steps_carry_its_velocity(every: int) -> None:
    # 1 px/frame to the right for 6 s, then standing 6 s: one id throughout, speed falls to about zero.
    # Looked at on every ``every``-th frame only, as a background with that detect_every has it: the track
    # coasts between looks without being missed, and is seen in all of each step's looks.
    xs = [20.0 + min(t, 60) for t in range(120)]
    background, images = _scene(xs, 120)
    detections = [detect(f, background) if t % every == 0 else None for t, f in enumerate(images)]
    tracks = clip_tracks(detections, stride=5, fps=10.0)
    assert len(tracks) == 1
    (track,) = tracks
    walking = track.features[2:10]
    assert np.allclose(walking[:, _VX], 10 / 180, atol=0.01)  # 10 px/s in fractions of the width
    assert (track.features[-8:, _SPEED] < SLOW).all()
    assert np.allclose(track.features[1:, TRACK_FEATURES.index("seen")], 1.0)
    assert list(track.steps) == sorted(track.steps)
    assert list(track.steps) == list(range(int(track.steps[0]), 24))  # a step every 0.5 s to the end


@pytest.mark.parametrize("rule", [True, False])
def test_a_blob_merged_with_another_adds_no_appearance_sample(
    rule: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One thing tracked for 10 frames; in frame 10 a second one walks into it and the blob doubles, with
    # both their colours; then it is alone again. The track follows the merged blob, but only its own
    # colours are kept as its appearance.
    if not rule:
        monkeypatch.setattr(
            "vidgru.tracks.merged_blobs", lambda predicted, measured: np.zeros(len(measured), bool)
        )
    own, other = np.zeros(N_EMBED, np.float32), np.zeros(N_EMBED, np.float32)
    own[5], other[40] = 1.0, 1.0
    merged = (own + other) / np.sqrt(2)

    def blob(x: float, width: float, colours: np.ndarray) -> np.ndarray:
        return np.concatenate([[x, 0.4, x + width, 0.52], colours]).astype(np.float32)[None]

    stepper = TrackStepper(5, 10.0)
    for t in range(15):
        x = 0.2 + 0.005 * t
        stepper.push(blob(x, 0.07, merged) if t == 10 else blob(x, 0.035, own))
    tracker = stepper.tracker.tracker
    assert len(tracker.tracks) == 1 and tracker.tracks[0].time_since_update == 0
    samples = np.array(tracker.metric.samples[tracker.tracks[0].track_id])
    kept_merged = bool(np.isclose(samples @ merged, 1.0).any())
    assert kept_merged is not rule
    assert np.isclose(samples @ own, 1.0).any()
    # Centre, aspect, height: 1.69 times the predicted area is a merge, 1.44 times is not.
    predicted = np.array([[0.5, 0.5, 0.5, 0.1]])
    assert merged_blobs(predicted, np.array([[0.5, 0.5, 0.5, 0.13], [0.5, 0.5, 0.5, 0.12]])).tolist() == [
        True,
        False,
    ]


@pytest.mark.parametrize(("memory", "sets"), [(0, 1), (1, 1), (3, 1), (0, 2), (3, 2)])
def test_live_steps_equal_scoring_the_whole_clip(memory: int, sets: int) -> None:
    # Two figures, one walking back and forth, one standing: the live scorer's frame logits are the
    # clip's, frame for frame.
    frames = 200
    xs = [30.0 + 40 * abs(np.sin(t / 25)) for t in range(frames)]
    background, images = _scene(xs, frames)
    for img in images:
        img[80:94, 140:146] = (200, 40, 40)
    detections = [detect(f, background) for f in images]
    cfg = BehaviourConfig(hidden=8, ensemble=2, memory=memory)
    model = TrackModel.build(
        cfg.hidden, cfg.ensemble, memory, np.zeros(N_TRACK), np.ones(N_TRACK), seed=3, sets=sets
    )
    model.norms = [(-0.5, 1.5), (0.2, 0.6)][:sets]
    stride = 5
    tracks = clip_tracks(detections, stride, 10.0)
    assert len(tracks) == 2
    best, boxes = model.clip_logits(tracks, frames // stride)
    whole = model.frame_tracks(tracks, frames, stride)
    scorer = TrackScorer(model, stride, 10.0)
    live, ids, in_view = [], [], []
    for d in detections:
        live.append(scorer.push(d))
        ids.append(scorer.track)
        in_view.append(set(scorer.in_view))
    for k in range(frames // stride):
        logit, box = live[k * stride + stride - 1]
        assert logit == pytest.approx(float(best[k]), abs=1e-5)
        assert box is not None and np.allclose(box, boxes[k])
    assert live[stride - 2][0] == -np.inf  # nothing before the first step is complete
    # Which track gave each frame's score, and which tracks are in view, are the same live and in batch.
    assert [-1 if i is None else i for i in ids] == whole.track.tolist()
    assert len(set(whole.track.tolist()) - {-1}) == 2
    for frame, seen in enumerate(in_view):
        assert seen == {t for t, (a, b) in whole.in_view.items() if a <= frame <= b}, frame


@pytest.mark.parametrize("hold", [0, 2])
def test_a_track_hidden_for_a_moment_keeps_its_last_score_for_hold_steps(hold: int) -> None:
    # A walker hidden for frames 40-54 (steps 8, 9 and 10 of 5 frames) and seen again: it keeps the score
    # of its last seen step for `hold` steps, then counts no more; live and batch agree step for step.
    frames, stride = 100, 5
    background, images = _scene([20.0 + t for t in range(frames)], frames)
    for img in images[40:55]:
        img[:] = 100
    detections = [detect(f, background) for f in images]
    model = TrackModel.build(8, 2, 0, np.zeros(N_TRACK), np.ones(N_TRACK), seed=3, hold=hold)
    tracks = clip_tracks(detections, stride, 10.0)
    seen = np.unique(np.concatenate([t.steps for t in tracks]))
    assert 7 in seen and not {8, 9, 10} & set(seen) and 11 in seen
    best, boxes = model.clip_logits(tracks, frames // stride)
    (first, *_) = tracks
    last_seen = model.score_tracks([first])[0][list(first.steps).index(7)]
    for k in (8, 9):
        if hold:
            assert best[k] == pytest.approx(last_seen) and np.allclose(
                boxes[k], first.boxes[first.steps == 7][0]
            )
        else:
            assert best[k] == -np.inf and np.isnan(boxes[k]).all()
    assert best[10] == -np.inf
    scorer = TrackScorer(model, stride, 10.0)
    live, in_view = [], []
    for d in detections:
        live.append(scorer.push(d))
        in_view.append(set(scorer.in_view))
    for k in range(frames // stride):
        logit, box = live[k * stride + stride - 1]
        assert logit == pytest.approx(float(best[k]), abs=1e-5)
        assert (box is None) == np.isnan(boxes[k]).all()
    # A track is in view, live and in batch, for as long as the tracker holds it: hidden for a moment too.
    spans = model.frame_tracks(tracks, frames, stride).in_view
    for frame, seen in enumerate(in_view):
        assert seen == {t for t, (a, b) in spans.items() if a <= frame <= b}, frame
    assert all(first.track in in_view[f] for f in range(40, 55))


def _detection(box: tuple[float, float, float, float], bin_: int) -> np.ndarray:
    """One blob as :func:`detect` gives it: a box and a histogram with all its pixels in colour bin ``bin_``."""
    d = np.zeros(4 + N_EMBED, np.float32)
    d[:4], d[4 + bin_] = box, 1.0
    return d


def test_a_dropped_track_hands_its_object_to_the_track_seen_where_it_would_be() -> None:
    same = SameObjects()
    step = np.array([0.02, 0.0, 0.02, 0.0])
    walker = np.array([0.1, 0.3, 0.14, 0.45])
    other = np.array([0.8, 0.3, 0.84, 0.45])
    for k in range(5):  # track 1 walks right; track 2 stands far off
        same.push({1: walker + k * step, 2: other}, {1, 2})
    # Track 1 is lost; two steps later track 3 is seen where 1 would be by then, and 2 where it stood.
    same.push({2: other}, {1, 2})
    same.push({2: other}, {1, 2})
    same.push({2: other, 3: walker + 7 * step}, {1, 2, 3})
    assert same.object(3) == 3  # track 1 may still come back
    same.push({2: other, 3: walker + 8 * step}, {1, 2, 3})
    same.push({2: other, 3: walker + 9 * step}, {2, 3})  # the tracker drops 1
    assert [same.object(k) for k in (1, 2, 3)] == [1, 2, 1]
    # Hidden for a moment behind track 4 and seen again, track 2 is not handed on when it is dropped later.
    same.push({3: walker + 10 * step, 4: other}, {2, 3, 4})
    same.push({2: other, 3: walker + 11 * step, 4: other + 0.1}, {2, 3, 4})
    same.push({3: walker + 12 * step, 4: other + 0.1}, {3, 4})
    assert same.object(4) == 4
    # A track lost with nothing where it would be has nobody to hand on to.
    for _ in range(HANDOVER_STEPS + 2):
        same.push({4: other + 0.1}, {3, 4})
    assert same.object(3) == 1
    same.push({4: other + 0.1}, {4})
    assert same.object(4) == 4
    assert same.object(3) == 3  # dropped, and forgotten: only tracks still held are asked about


def _walker_seen_again(frames: int) -> list[np.ndarray | None]:
    """A walker hidden for frames 60-65 who comes out looking different (it turned, or the light did):
    DeepSORT starts a new track on it and drops the old one 5 s later."""
    detections: list[np.ndarray | None] = []
    for t in range(frames):
        x = 0.1 + 0.003 * t
        walker = _detection((x, 0.40, x + 0.035, 0.52), 0 if t < 60 else 63)
        seen = walker[None] if not 60 <= t < 66 else np.zeros((0, 4 + N_EMBED), np.float32)
        detections.append(seen if t % DETECT_EVERY == 0 else None)
    return detections


def test_a_track_started_on_an_object_whose_track_was_dropped_is_that_object_live_and_in_batch() -> None:
    # From the drop on, the new track scores as the walker's first id, and keeps it in view. Live and batch
    # say the same, frame for frame.
    frames, stride = 200, 5
    detections = _walker_seen_again(frames)
    tracks = clip_tracks(detections, stride, 10.0)
    assert len(tracks) == 2
    first, second = sorted(tracks, key=lambda t: t.track)
    assert first.last_alive < frames // stride - 1  # dropped
    model = TrackModel.build(8, 2, 0, np.zeros(N_TRACK), np.ones(N_TRACK), seed=3)
    whole = model.frame_tracks(tracks, frames, stride)
    scorer = TrackScorer(model, stride, 10.0)
    ids, in_view, objects = [], [], []
    for d in detections:
        scorer.push(d)
        ids.append(scorer.track)
        in_view.append(set(scorer.in_view))
        objects.append(scorer.object_of(second.track))
    assert [-1 if i is None else i for i in ids] == whole.track.tolist()
    for frame, seen in enumerate(in_view):
        assert seen == {t for t, (a, b) in whole.in_view.items() if a <= frame <= b}, frame
    # The object the second track follows, frame by frame, from the joins batch analysis hands on.
    replay = _InView(whole.in_view, whole.joins)
    for frame, live_object in enumerate(objects):
        replay.frame = frame
        assert replay.object_of(second.track) == live_object, frame
    dropped = (first.last_alive + 2) * stride - 1  # the first frame after the step the tracker dropped it
    assert objects[dropped - 1] == second.track and objects[dropped] == first.track
    assert set(whole.track[dropped:].tolist()) == {first.track}
    assert second.track in whole.track[:dropped].tolist()
    assert all(first.track in in_view[f] for f in range(dropped, frames))


@pytest.mark.parametrize("memory", [0, 20])  # 20 steps reach back past the hand-over
def test_a_track_that_takes_over_a_dropped_track_carries_on_its_memory_live_and_in_batch(memory: int) -> None:
    # The walker's second track, from the step its first is dropped, scores as one track would have that
    # followed the walker throughout: the first track's steps, then the second's since the first was last
    # seen. Before the drop it scores alone. Live and batch give the same logits, frame for frame.
    frames, stride = 200, 5
    detections = _walker_seen_again(frames)
    tracks = clip_tracks(detections, stride, 10.0)
    first, second = sorted(tracks, key=lambda t: t.track)
    # Steps standardised to a wide spread, so that memories differ plainly.
    model = TrackModel.build(8, 2, memory, np.zeros(N_TRACK), np.full(N_TRACK, 0.02), seed=3)
    handed = first.last_alive + 1  # the step at whose end the tracker no longer holds the first track
    since = second.steps > first.steps[-1]
    one = TrackSequence(
        first.track,
        np.concatenate([first.steps, second.steps[since]]),
        np.concatenate([first.features, second.features[since]]),
        np.concatenate([first.boxes, second.boxes[since]]),
    )
    followed = model.score_tracks([one])[0][-len(second.steps[since]) :]
    alone = model.score_tracks([second])[0]
    scored = model.score_tracks(tracks, object_joins(tracks, frames // stride, model.hold))[1]
    after = second.steps >= handed
    assert 0 < after.sum() < len(second.steps)
    assert np.allclose(scored[~after], alone[~after], atol=1e-5)
    assert np.allclose(scored[after], followed[-after.sum() :], atol=1e-5)
    assert np.abs(scored[after] - alone[after]).max() > 1e-3
    whole = model.frame_tracks(tracks, frames, stride)
    scorer = TrackScorer(model, stride, 10.0)
    live = np.array([scorer.push(d)[0] for d in detections], np.float32)
    assert np.allclose(live, whole.logits, atol=1e-5)


def test_a_track_outside_the_region_of_interest_does_not_count() -> None:
    background, images = _scene([20.0] * 20, 20)  # left side of the picture
    model = TrackModel.build(8, 1, 0, np.zeros(N_TRACK), np.ones(N_TRACK), seed=0)
    grid = (2, 2)
    right_only = np.array([False, True, False, True])
    scorer = TrackScorer(model, 5, 10.0, right_only, grid)
    results = [scorer.push(detect(f, background)) for f in images]
    assert all(logit == -np.inf and box is None for logit, box in results)
    assert box_cells(np.array([[0.6, 0.6, 0.8, 0.9]]), grid).tolist() == [3]


def _walk(n: int, rng: np.random.Generator) -> np.ndarray:
    f = np.zeros((n, N_TRACK), np.float32)
    f[:, _VX] = 0.04 + rng.normal(0, 0.002, n)
    f[:, _SPEED] = np.abs(f[:, _VX])
    f[:, 3:5] = (0.03, 0.12)
    f[:, 5] = 1.0
    return f


def test_edits_label_only_what_outlasts_or_repeats() -> None:
    rng = np.random.default_rng(0)
    f = _walk(60, rng)
    assert longest_normal_stop([f]) == 4  # no stop: the floor

    held = hold(f, 10, length=40, normal=6, onset=12, step_s=0.5, rng=rng)
    assert len(held.features) == 100
    assert held.features[11:51, _SPEED].mean() < SLOW  # swaying, not walking
    assert (held.labels[:17] == 0).all()  # a stop as long as normal ones is a negative
    assert (held.labels[17:23] == IGNORE).all()
    assert (held.labels[23:51] == 1).all()
    assert (held.labels[-5:] == 0).all()

    paced = back_and_forth(f, 10, length=8, passes=5)
    assert len(paced.features) == 60 + 4 * 8
    assert (paced.features[18:26, _VX] < 0).all()  # the second pass walks back
    assert (paced.labels[:22] == 0).all() and (paced.labels[26:50] == 1).all()

    stopped = stop_and_go(f, 10, goes=[3, 3, 3, 3], stops=[4, 4, 4, 4], step_s=0.5, rng=rng)
    third_stop = 10 + 3 * 3 + 2 * 4
    assert (stopped.labels[:17] == 0).all()  # through the first stop: people stop once
    assert (stopped.labels[third_stop : third_stop + 4] == 1).all()
    assert stopped.features[third_stop : third_stop + 4, _SPEED].mean() < SLOW


def test_chained_normal_tracks_never_meet_head_on() -> None:
    rng = np.random.default_rng(2)
    rightwards = [_walk(20, rng) for _ in range(5)]
    leftwards = [_walk(20, rng) * np.array([-1, 1, 1, 1, 1, 1], np.float32) for _ in range(5)]
    standing = _walk(20, rng) * np.array([0, 0, 0, 1, 1, 1], np.float32)
    chains = normal_chains(rightwards + leftwards + [standing], 100, rng)
    headings = [np.unique(np.sign(c[c[:, _SPEED] >= SLOW, _VX])).tolist() for c in chains]
    # A chain is one walk on and on, never a turn back that nobody made; both ways occur.
    assert all(len(h) == 1 for h in headings)
    assert {h[0] for h in headings} == {-1.0, 1.0}
    assert any(len(c) == 60 and (c[:, _SPEED] < SLOW).sum() == 20 for c in chains)  # standing joins either


def test_a_track_scores_the_highest_of_its_sets_each_on_its_own_scale() -> None:
    rng = np.random.default_rng(1)
    track = TrackSequence(0, np.arange(30), _walk(30, rng), np.zeros((30, 4), np.float32))
    model = TrackModel.build(8, 2, 0, np.zeros(N_TRACK), np.ones(N_TRACK), seed=3, sets=2)
    assert model.groups == [0, 0, 1, 1]
    raw = [model.group(g).score_tracks([track])[0] for g in (0, 1)]
    # Set 1 is new (its own initialisation), not a copy of set 0.
    assert not np.allclose(raw[0], raw[1])
    model.norms = [(float(raw[0].min()), float(raw[0].max())), (float(raw[1].max()), float(raw[1].max()) + 1)]
    expected = np.maximum((raw[0] - raw[0].min()) / (raw[0].max() - raw[0].min()), raw[1] - raw[1].max())
    assert np.allclose(model.score_tracks([track])[0], expected, atol=1e-5)
    with pytest.raises(ValueError, match="norms"):
        TrackModel(model.nets, model.mean, model.std, 0, groups=model.groups, norms=[(0.0, 1.0)])


def test_fold_training_leaves_every_clip_unseen_by_one_gru() -> None:
    rng = np.random.default_rng(0)
    clips = [
        [TrackSequence(t, np.arange(40), _walk(40, rng), np.zeros((40, 4), np.float32)) for t in range(3)]
        for _ in range(4)
    ]
    cfg = BehaviourConfig(enabled=True, ensemble=3, track_epochs=1, hidden=8, specialists=["stop_and_go"])
    model, meta = fit_tracks(clips, 0.5, cfg, seed=0, folds=3)
    # Three GRUs that learn every behaviour, three that learn stop-and-go alone.
    assert meta["tracks_folds"] == 3 and len(model.nets) == 6 and model.groups == [0, 0, 0, 1, 1, 1]
    # In each set, GRU i learnt from every clip but those at i, i + 3, ...: clip j is scored by GRU j % 3
    # of each set alone.
    for j in range(4):
        part = unseen_by(model, j, 3)
        assert part.nets == [model.nets[j % 3], model.nets[3 + j % 3]] and part.groups == [0, 1]
    # The same when the sets' nets are interleaved: a net's fold is its place within its own set.
    mixed = TrackModel(
        [model.nets[i] for i in (0, 3, 1, 4, 2, 5)], model.mean, model.std, 0, groups=[0, 1] * 3
    )
    for j in range(4):
        assert unseen_by(mixed, j, 3).nets == [model.nets[j % 3], model.nets[3 + j % 3]]
    # The GRUs differ by what they learnt from, not only by their seeds: one fit per fold gives other logits
    # than one fit of all clips.
    whole, _ = fit_tracks(clips, 0.5, cfg, seed=0)
    track = clips[0][:1]
    assert not np.allclose(model.score_tracks(track)[0], whole.score_tracks(track)[0])


def test_one_long_recording_is_cut_into_pieces_for_the_folds() -> None:
    from vidgru.batches import ClipFeatures
    from vidgru.sources import Clip
    from vidgru.training import MIN_PIECE_S, fold_pieces

    def recording(seconds: float) -> ClipFeatures:
        n = round(seconds * 10)
        dets = [np.full((1, 4), i, np.float32) for i in range(n)]
        return ClipFeatures(
            Clip("cam", Path("cam.mp4"), "video"),
            10.0,
            np.zeros((n, 1, 1)),
            np.zeros((1, 1, 1)),
            np.zeros(n, np.int64),
            detections=dets,
        )

    (hour,) = clips = [recording(3600)]
    pieces = fold_pieces(clips, 3)
    assert [p.n_frames for p in pieces] == [12000] * 3
    # Contiguous and apart: each frame's blobs are in exactly one piece, in order.
    assert [float(d[0, 0]) for p in pieces for d in p.detections or []] == list(range(hour.n_frames))
    two = [recording(100), recording(50)]
    assert [p.n_frames for p in fold_pieces(two, 3)] == [500, 500, 250, 250]
    assert fold_pieces(two, 2) is two  # enough clips already
    short = [recording(2 * MIN_PIECE_S)]
    assert fold_pieces(short, 3) is short  # pieces under MIN_PIECE_S: heads and tails instead
