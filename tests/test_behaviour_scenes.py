"""Behaviour scenes (vidgru.synthetic): the paths drawn show the behaviour their labels claim, normal activity
shows none of it; and the temporal benchmark's matching of events to labels."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from vidgru.decode import video_frames
from vidgru.metrics import load_labels
from vidgru.synthetic import (
    BEHAVIOURS,
    BehaviourScene,
    BehaviourSceneSpec,
    Episode,
    LabelledRange,
    Track,
    _fit_episode,
    behaviour_frames,
    footage_clip_spec,
    make_behaviour_footage,
    plan_behaviour_scene,
    render_behaviour_scene,
)

FPS = 10
W = 360
STILL_PX = 0.75  # px: a shorter step is swaying on the spot (at most ~0.6); walking is 1-2 px a frame
MIN_STOP = 3  # frames: a single short step ends each walk, where the figure lands on its target


def _scene(
    kind: str, start_s: float = 15.0, duration_s: float | None = None, seed: int = 3
) -> BehaviourScene:
    return plan_behaviour_scene(BehaviourSceneSpec(90, seed, episodes=(Episode(kind, start_s, duration_s),)))  # type: ignore[arg-type]


def _episode_figure(scene: BehaviourScene) -> Track:
    (figure,) = [f for f in scene.figures if f.role != "normal"]
    return figure


def _motion(track: Track) -> tuple[np.ndarray, np.ndarray]:
    """Per position: whether the figure stands (moved under STILL_PX since the frame before), and its
    horizontal direction (-1, 1; 0 while standing)."""
    step = np.diff(track.xy, axis=0, prepend=track.xy[:1])
    still = np.hypot(step[:, 0], step[:, 1]) < STILL_PX
    still[0] = False
    return still, np.where(still, 0, np.sign(step[:, 0])).astype(int)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def _reversals(track: Track) -> list[int]:
    """Frames (clip time) at which the figure walks off the other way from how it last walked."""
    _, direction = _motion(track)
    moving = np.flatnonzero(direction)
    turns = moving[1:][direction[moving[1:]] != direction[moving[:-1]]]
    return [track.start + int(i) for i in turns]


def _stops(track: Track) -> list[tuple[int, int]]:
    """[start, end) in clip frames of each time the figure stands."""
    still, _ = _motion(track)
    return [(track.start + s, track.start + e) for s, e in _runs(still) if e - s >= MIN_STOP]


def _in_view(x: float) -> bool:
    return -5 < x < W + 5


def test_loiter_stays_within_a_small_area_for_its_whole_label() -> None:
    scene = _scene("loiter", start_s=12.0, duration_s=40.0)
    (label,) = scene.labels
    assert (label.kind, label.start, label.end) == ("loiter", 120, 520)
    figure = _episode_figure(scene)
    stay = figure.xy[label.start - figure.start : label.end - figure.start]
    assert np.max(np.hypot(*(stay - stay[0]).T)) <= 10.0  # 40 s within 10 px of where it arrived
    # It walked in from outside the picture before, and walks off after.
    assert not _in_view(figure.xy[0, 0]) and not _in_view(figure.xy[-1, 0])
    assert np.ptp(figure.xy[: label.start - figure.start, 0]) > 50
    # ... and while there it sways rather than freezes.
    assert np.all(np.abs(np.diff(stay[:50, 0])) > 0)


def test_loiter_duration_drawn_from_35_to_60_s() -> None:
    for seed in range(5):
        (label,) = _scene("loiter", seed=seed).labels
        assert 35 * FPS <= label.end - label.start <= 60 * FPS


def test_pacing_reverses_at_least_4_times_within_20_s_over_a_short_stretch() -> None:
    for seed in range(4):
        scene = _scene("pacing", seed=seed)
        (label,) = scene.labels
        assert 25 * FPS <= label.end - label.start - 1 <= 46 * FPS  # the last leg (<= 6 s) may end past it
        figure = _episode_figure(scene)
        # A reversal shows when the figure walks back, after a pause at the end of the stretch of up to 0.5 s.
        reversals = [t for t in _reversals(figure) if label.start < t <= label.end + 6]
        most = max(sum(1 for u in reversals if t <= u < t + 20 * FPS) for t in reversals)
        assert most >= 4, (seed, reversals)
        inside = figure.xy[label.start - figure.start : label.end - figure.start, 0]
        assert 60 - 2 <= np.ptp(inside) <= 120 + 2  # the stretch, give or take the sway at the ends
        # Outside the label it only walks in and out: no reversal.
        assert reversals == _reversals(figure) and reversals[0] <= label.start + 6


def test_stop_and_go_stops_at_least_4_times_with_short_walks_between() -> None:
    for seed in range(4):
        scene = _scene("stop_and_go", seed=seed)
        (label,) = scene.labels
        figure = _episode_figure(scene)
        stops = [(s, e) for s, e in _stops(figure) if s < label.end and e > label.start]
        assert len(stops) >= 4
        # Each stop 1-3 s; the frame the figure lands on the spot counts as standing too.
        assert all(1 * FPS <= e - s <= 3 * FPS + 1 for s, e in stops), stops
        walks = [b[0] - a[1] for a, b in itertools.pairwise(stops)]
        assert all(1 * FPS - 1 <= w <= 2 * FPS for w in walks), walks
        assert abs(stops[0][0] - label.start) <= 2 and abs(stops[-1][1] - label.end) <= 2
        assert _reversals(figure) == []  # it crosses: always the same way


def test_left_bag_stays_on_the_ground_after_its_owner_has_gone() -> None:
    scene = _scene("left_object", start_s=15.0)
    (label,) = scene.labels
    (bag,) = scene.bags
    owner = scene.figures[bag.owner]
    assert owner.role == "left_object" and bag.down == 150 and bag.until == scene.frames
    assert label.end == scene.frames and label.start > bag.down
    assert (label.end - label.start) >= 40 * FPS
    # From the label's start on the owner is more than 40 px from the bag or out of the picture, and it
    # was not just before.
    for t in range(label.start, owner.end):
        x, y = owner.at(t)  # type: ignore[misc]
        assert np.hypot(x - bag.x, y - bag.y) > 40 or not _in_view(x)
    x, y = owner.at(label.start - 1)  # type: ignore[misc]
    assert np.hypot(x - bag.x, y - bag.y) <= 40
    assert owner.end < scene.frames  # the owner has left the scene, the bag has not
    # The bag is drawn: a dark 8x8 square where the plan puts it, before and long after the owner left.
    bx, by = round(bag.x), round(bag.y)
    there = {
        t: frame[by - 3 : by + 3, bx - 3 : bx + 3].mean() for t, frame in enumerate(behaviour_frames(scene))
    }
    assert all(there[t] < 60 for t in (bag.down, label.start, owner.end + 10, scene.frames - 1))
    assert there[bag.down - 20] > 100  # not there before


def test_normal_activity_has_only_brief_stops_single_turns_and_moderate_density() -> None:
    scene = plan_behaviour_scene(BehaviourSceneSpec(600, seed=11))
    assert scene.labels == () and scene.bags == ()
    stopped = turned = 0
    in_view = np.zeros(scene.frames)
    for figure in scene.figures:
        stops = [e - s for s, e in _stops(figure)]
        assert max(stops, default=0) <= 5 * FPS + 1  # 5 s, and the frame it lands on the spot
        assert sum(1 for s in stops if s >= FPS) <= 1  # (a pause at a turn is that one stop)
        assert len(_reversals(figure)) <= 1
        stopped += any(s >= FPS for s in stops)
        turned += len(_reversals(figure)) == 1
        assert np.all((figure.xy[:, 1] >= 240 / 3) & (figure.xy[:, 1] <= 2 * 240 / 3))  # on the walkway
        still, _ = _motion(figure)
        assert 1.0 <= np.median(np.abs(np.diff(figure.xy[:, 0]))[~still[1:]]) <= 2.0  # walking 1-2 px a frame
        s, e = max(0, figure.start), min(scene.frames, figure.end)
        if s < e:
            in_view[s:e] += (figure.xy[s - figure.start : e - figure.start, 0] > -5) & (
                figure.xy[s - figure.start : e - figure.start, 0] < W + 5
            )
    n = len(scene.figures)
    assert 0.2 * n <= stopped <= 0.5 * n and 0.05 * n <= turned <= 0.3 * n, (stopped, turned, n)
    assert 2.0 <= in_view.mean() <= 4.0
    assert in_view[: 10 * FPS].mean() > 1  # the clip opens on a scene already in progress


def test_normal_figures_rarely_overlap_for_long() -> None:
    scene = plan_behaviour_scene(BehaviourSceneSpec(300, seed=4, episodes=(Episode("loiter", 20.0),)))
    figures = scene.figures
    for a, b in itertools.combinations(figures, 2):
        s, e = max(a.start, b.start, 0), min(a.end, b.end, scene.frames)
        if s >= e:
            continue
        p, q = a.xy[s - a.start : e - a.start], b.xy[s - b.start : e - b.start]
        near = (
            (np.abs(p[:, 0] - q[:, 0]) < 10)
            & (np.abs(p[:, 1] - q[:, 1]) < 28)
            & (p[:, 0] > -5)
            & (p[:, 0] < W + 5)
        )
        assert near.sum() <= 15


def test_same_seed_same_frames_other_seed_other_activity_same_camera() -> None:
    def first(seed: int, camera_seed: int = 0) -> np.ndarray:
        spec = BehaviourSceneSpec(2, seed, camera_seed=camera_seed, episodes=(Episode("pacing", 1.0),))
        return np.stack(list(behaviour_frames(plan_behaviour_scene(spec))))

    a, b, c = first(5), first(5), first(6)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # The top of the picture is off the walkway: no figure there, so averaged over time (the sensor noise
    # averages out) the same camera shows the same, another camera something else.
    top = slice(0, 60)
    same = np.abs(a[:, top].mean(0) - c[:, top].mean(0)).mean()
    other = np.abs(a[:, top].mean(0) - first(5, camera_seed=1)[:, top].mean(0)).mean()
    assert same < 1.0 and other > 3.0
    for f, g in zip(
        plan_behaviour_scene(BehaviourSceneSpec(60, 5)).figures,
        plan_behaviour_scene(BehaviourSceneSpec(60, 5)).figures,
        strict=True,
    ):
        assert f.start == g.start and np.array_equal(f.xy, g.xy)


def test_figures_are_drawn_where_their_tracks_say() -> None:
    scene = plan_behaviour_scene(BehaviourSceneSpec(3, seed=2))
    frames = list(behaviour_frames(scene))
    checked = 0
    for t in (0, 15, 29):
        for figure in scene.figures:
            xy = figure.at(t)
            if xy is None or not 10 < xy[0] < W - 10:
                continue
            others = [g.at(t) for g in scene.figures if g is not figure and g.at(t) is not None]
            if any(abs(o[0] - xy[0]) < 12 and abs(o[1] - xy[1]) < 30 for o in others):
                continue  # another figure may be drawn over it
            x, y = round(xy[0]), round(xy[1] + 4)  # the body, below the head
            assert (
                np.abs(frames[t][y - 2 : y + 2, x - 2 : x + 2].reshape(-1, 3).mean(0) - figure.colour).max()
                < 5
            )
            checked += 1
    assert checked >= 3


def test_render_writes_the_planned_frames(tmp_path: Path) -> None:
    spec = BehaviourSceneSpec(3, seed=8)
    labels = render_behaviour_scene(tmp_path / "c.mp4", spec)
    decoded = video_frames(tmp_path / "c.mp4")
    planned = list(behaviour_frames(plan_behaviour_scene(spec)))
    assert labels == [] and len(decoded) == len(planned) == 30
    assert (
        np.mean(
            [np.abs(d.astype(float) - p.astype(float)).mean() for d, p in zip(decoded, planned, strict=True)]
        )
        < 4
    )


def test_make_behaviour_footage_writes_clips_labels_and_episodes(tmp_path: Path) -> None:
    made = make_behaviour_footage(
        tmp_path,
        seed=7,
        normal_clips=2,
        normal_seconds=2,
        episodes_per_kind=1,
        kinds=("stop_and_go",),
        episode_clip_seconds=(60.0, 60.0),
    )
    assert [p.name for p in made.normal] == ["normal_000.mp4", "normal_001.mp4"]
    assert [p.name for p in made.test] == ["stop_and_go_000.mp4"]
    labels = load_labels(tmp_path / "labels.json")
    assert labels["normal_000"].anomalous == [] and labels["normal_000"].frames == 20
    (r,) = made.ranges["stop_and_go_000"]
    assert (
        labels["stop_and_go_000"].anomalous == [(r.start, r.end)] and labels["stop_and_go_000"].frames == 600
    )
    assert r.start >= 10 * FPS and r.end <= 55 * FPS
    episodes = json.loads((tmp_path / "episodes.json").read_text())
    assert episodes == {"stop_and_go_000": [{"kind": "stop_and_go", "start": r.start, "end": r.end}]}
    assert len(video_frames(made.test[0])) == 600
    # The same scenes, planned again from the seeds alone (for a benchmark to know where each figure was).
    spec = footage_clip_spec(7, "stop_and_go", 0, episode_clip_seconds=(60.0, 60.0))
    assert plan_behaviour_scene(spec).labels == made.ranges["stop_and_go_000"]
    assert plan_behaviour_scene(footage_clip_spec(7, "normal", 1, normal_seconds=2)).frames == 20
    # Another seed: other activity (footage for training and for testing must not repeat each other).
    again = make_behaviour_footage(
        tmp_path / "b", seed=8, normal_clips=1, normal_seconds=2, episodes_per_kind=0
    )
    assert not np.array_equal(video_frames(again.normal[0])[5], video_frames(made.normal[0])[5])


def test_episode_clips_fit_their_episode() -> None:
    rng = np.random.default_rng(0)
    for kind in BEHAVIOURS:
        for seconds in (70.0, 90.0):
            ep = _fit_episode(kind, seconds, rng)
            scene = plan_behaviour_scene(BehaviourSceneSpec(seconds, 1, episodes=(ep,)))
            (label,) = scene.labels
            assert label.start >= 10 * FPS
            if kind == "left_object":
                assert label.end == scene.frames and label.end - label.start >= 40 * FPS
            else:
                assert label.end <= scene.frames - 4 * FPS


# The temporal benchmark's matching of events to labelled ranges.


@pytest.fixture(scope="module")
def bench():  # type: ignore[no-untyped-def]
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location("bench_temporal", folder / "temporal.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]  # (dataclasses look their module up)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def track_bench(bench):  # type: ignore[no-untyped-def]
    # After bench, which puts benchmarks/ on sys.path for the harness's "from temporal import".
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    spec = importlib.util.spec_from_file_location("bench_track_model", folder / "track_model.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_a_false_alarm_is_told_by_the_figure_under_its_box(track_bench) -> None:  # type: ignore[no-untyped-def]
    # The harness's --explain: an event's box on a planned figure names that figure and what it did; a box
    # around its head alone is a piece of it; one touching the border is at the edge.
    seed = 3
    scene = plan_behaviour_scene(footage_clip_spec(seed, "normal", 0))
    figure = max(scene.figures, key=lambda f: min(f.end, scene.frames) - max(f.start, 0))
    peak = max(figure.start, 0) + 120
    x, y = figure.at(peak)
    D = track_bench.Detection
    whole = track_bench.explain(
        D("normal_000", peak - 30, peak + 10, "time_pattern", peak, (x - 5, y - 15, x + 5, y + 15)), seed
    )
    assert "nearest figure (normal) 0 px away" in whole and "piece" not in whole and "edge" not in whole
    assert "s standing" in whole and "reversals" in whole
    head = track_bench.explain(
        D("normal_000", peak - 30, peak + 10, "time_pattern", peak, (x - 3, y - 17, x + 4, y - 10)), seed
    )
    assert "(a piece of a figure)" in head
    edge = track_bench.explain(
        D("normal_000", peak - 30, peak + 10, "time_pattern", peak, (0.0, 100.0, 11.0, 129.0)), seed
    )
    assert ", at the edge" in edge
    assert track_bench.explain(D("normal_000", 0, 10, "time_pattern"), seed) == "no box"


def test_event_overlapping_a_range_is_a_hit_and_one_overlapping_none_a_false_alarm(bench) -> None:  # type: ignore[no-untyped-def]
    D = bench.Detection
    ranges = {
        "loiter_000": [LabelledRange("loiter", 100, 500)],
        "pacing_000": [LabelledRange("pacing", 200, 400)],
        "normal_000": [],
    }
    frames = {"loiter_000": 800, "pacing_000": 800, "normal_000": 600}
    events = [
        D("loiter_000", 480, 520, "time_pattern"),  # overlaps the loiter's end
        D("loiter_000", 490, 495, "speed"),  # a second hit on the same episode: one detection
        D("loiter_000", 500, 510, "speed"),  # starts where the range ends ([start, end)): a false alarm
        D("pacing_000", 50, 100, "appearance"),  # before the pacing: a false alarm
        D("normal_000", 10, 20, "speed"),  # on held-out normal footage: a false alarm
    ]
    s = bench.score(events, ranges, frames)
    assert (s.kinds["loiter"].episodes, s.kinds["loiter"].detected) == (1, 1)
    assert s.kinds["loiter"].reasons == {"time_pattern": 1, "speed": 1}
    assert (s.kinds["pacing"].episodes, s.kinds["pacing"].detected) == (1, 0)
    assert (s.kinds["stop_and_go"].episodes, s.kinds["left_object"].episodes) == (0, 0)
    assert len(s.false_alarms) == 3 and s.heldout_false_alarms == 1 and s.heldout_frames == 600
    assert s.normal_frames == 2200 - 400 - 200
    # Inside events and outside labels: loiter_000 500-520, pacing_000 50-100, normal_000 10-20.
    assert s.normal_flagged == 20 + 50 + 10
    assert s.per_hour(3, 36000) == 3.0  # 36,000 frames at 10 frames/s: one hour
    with pytest.raises(ValueError, match="not analysed"):
        bench.score([D("elsewhere", 0, 1, "speed")], ranges, frames)


def test_events_file_is_read_from_analyze_records(bench, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from vidgru.events import Event

    event = Event(
        "id", "pacing_003", 10, 19, 1.0, 1.9, 15, 2.5, 3, 1.0, "m", extra={"reason": "time_pattern"}
    )
    records = [
        event.to_record("end"),
        {"type": "camera_tampering", "camera": "pacing_003", "kind": "freeze", "start_frame": 5},
        {"type": "camera_tampering_end", "camera": "pacing_003", "kind": "freeze", "start_frame": 5},
    ]
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    detections, tampering = bench.read_events(path)
    assert detections == [bench.Detection("pacing_003", 10, 20, "time_pattern", 15)] and tampering == 1
    assert bench.frames_per_s("analysed 100 frames of 2 clip(s) in 2.0s (50.0 frames/s): 1 event(s)") == 50.0


def test_a_false_alarm_is_told_on_the_episodes_figure_or_on_someone_else(bench) -> None:  # type: ignore[no-untyped-def]
    scene = plan_behaviour_scene(footage_clip_spec(3, "pacing", 0))
    (label,) = scene.labels
    pacer = scene.figures[0]
    assert pacer.role == "pacing"
    after = label.end + 10  # the pacer walking off after its last turn
    others = [f for f in scene.figures[1:] if f.at(after) is not None]
    assert others and pacer.at(after) is not None

    def event_at(xy: np.ndarray) -> object:
        box = (xy[0] - 5, xy[1] - 12, xy[0] + 5, xy[1] + 12)
        return bench.Detection("pacing_000", after - 20, after + 20, "time_pattern", after, box)

    assert bench.on_episode_figure(event_at(pacer.at(after)), scene)
    far = max(others, key=lambda f: np.hypot(*(f.at(after) - pacer.at(after))))
    assert not bench.on_episode_figure(event_at(far.at(after)), scene)
    assert not bench.on_episode_figure(bench.Detection("pacing_000", 1, 2, "speed"), scene)  # no box
