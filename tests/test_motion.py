import cv2
import numpy as np
import pytest

from vidgru.config import MotionConfig
from vidgru.motion import MOTION_FEATURES, N_MOTION, MotionAnalyzer, cell_statistics, dis_flow, speed_up

SPEED = MOTION_FEATURES.index("object_speed")
MOVING = MOTION_FEATURES.index("moving_fraction")


def test_cell_statistics_locates_motion() -> None:
    flow = np.zeros((120, 180, 2), np.float32)
    flow[30:45, 60:75, 0] = 3.0  # cell (2, 4) moves right at 3 px/frame
    stats = cell_statistics(flow, (8, 12), 0.3)
    assert stats.shape == (96, N_MOTION)
    cell = 2 * 12 + 4
    assert stats[:, 0].argmax() == cell
    assert np.isclose(stats[cell, 0], 3.0)
    assert np.isclose(stats[cell, SPEED], 3.0)
    assert np.isclose(stats[cell, MOVING], 1.0)
    assert stats[cell, 3] > 0 and stats[cell, 3 + 4] == 0  # orientation bin 0 (rightwards), not bin 4
    assert stats[0, 0] == 0


def _moving_square(t: int) -> np.ndarray:
    img = np.full((240, 360, 3), 90, np.uint8)
    rng = np.random.default_rng(0)
    img[:] += rng.integers(0, 40, (240, 360, 1), dtype=np.uint8)  # texture, same every frame
    x = 40 + 4 * t
    img[100:140, x : x + 30] = 230
    return img


def test_speedups_scale_the_motion() -> None:
    motion = MotionAnalyzer(MotionConfig(size=(120, 180)))
    stats = [motion.push(_moving_square(t)) for t in range(8)][-1]
    fast = np.stack([speed_up(stats, 2.0), speed_up(stats, 1.5)])
    assert fast.shape == (2, 96, N_MOTION)
    real = stats[:, SPEED].max()
    assert 1.2 < real < 2.8  # 4 px/frame at full size is 2 at the half-size flow
    assert np.isclose(fast[0, :, SPEED].max(), 2.0 * real, rtol=1e-4)
    assert np.isclose(fast[1, :, 0].max(), 1.5 * stats[:, 0].max(), rtol=1e-4)
    np.testing.assert_array_equal(fast[:, :, MOVING], np.stack([stats[:, MOVING]] * 2))


def _small_walker(t: int, noise: np.random.Generator) -> np.ndarray:
    """A 10x22 ellipse moving 1.5 px/frame over a textured background with sensor noise."""
    base = np.full((240, 360), 120, np.float32)
    base[:, ::40] -= 15
    img = cv2.cvtColor(np.clip(base, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    cv2.ellipse(img, (int(60 + 1.5 * t), 120), (5, 11), 0, 0, 360, (60, 160, 200), -1)
    noisy = img.astype(np.float32) + noise.normal(0, 2.0, img.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def test_changed_region_flow_sees_a_small_slow_walker_and_matches_whole_frame_flow() -> None:
    noise = np.random.default_rng(1)
    frames = [_small_walker(t, noise) for t in range(6)]
    regions = MotionAnalyzer(MotionConfig(method="farneback"))
    whole = MotionAnalyzer(MotionConfig(method="farneback", change_threshold=0))
    for frame in frames:
        a, b = regions.push(frame), whole.push(frame)
    walker_cells = {3 * 12 + 2, 4 * 12 + 2}  # x 62-72, y 109-131: column 2, rows 3 and 4
    assert {int(a[:, SPEED].argmax()), int(b[:, SPEED].argmax())} <= walker_cells
    assert 0.8 < a[:, SPEED].max() < 2.5
    assert abs(a[:, SPEED].max() - b[:, SPEED].max()) < 0.3
    # Still places get no flow at all, where whole-frame flow reads noise.
    assert (a[:, 2] > 0).sum() < 12


def test_dis_sees_a_small_slow_walker_only_where_it_walks() -> None:
    noise = np.random.default_rng(1)
    motion = MotionAnalyzer(MotionConfig(method="dis"))
    stats = [motion.push(_small_walker(t, noise)) for t in range(6)][-1]
    # DIS matches patches at half resolution, so its flow reaches a few pixels past the walker's back edge:
    # the fastest cell is the walker's or the one it just left.
    assert int(stats[:, SPEED].argmax()) in {3 * 12 + 1, 3 * 12 + 2, 4 * 12 + 1, 4 * 12 + 2}
    assert 0.8 < stats[:, SPEED].max() < 2.5
    assert (stats[:, 2] > 0).sum() < 12


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_flow_measures_an_object_speed_and_direction(method: str) -> None:
    motion = MotionAnalyzer(MotionConfig(method=method))
    stats = [motion.push(_moving_square(t)) for t in range(4)][-1]
    moving = int(stats[:, SPEED].argmax())
    # A uniform 30x40 square moving 4 px/frame: only its edges show the motion, so estimates fall short.
    assert 2.5 < stats[moving, SPEED] < 5.0
    assert stats[moving, 3] > stats[moving, 3 + 4]  # rightwards, not leftwards


def test_dis_gives_no_flow_for_a_picture_too_small_to_match() -> None:
    tiny = np.zeros((8, 10), np.uint8)
    assert not dis_flow(0)(tiny, tiny).any()


def test_dis_refinement_is_what_the_config_asks_for() -> None:
    noise = np.random.default_rng(1)
    frames = [_small_walker(t, noise) for t in range(6)]
    plain = MotionAnalyzer(MotionConfig(method="dis"))
    refined = MotionAnalyzer(MotionConfig(method="dis", dis_refinement=2))
    a = [plain.push(f) for f in frames][-1]
    b = [refined.push(f) for f in frames][-1]
    # Both see the walker at its speed; refinement changes the flow field, so the statistics differ.
    assert 0.8 < a[:, SPEED].max() < 2.5 and 0.8 < b[:, SPEED].max() < 2.5
    assert not np.allclose(a, b)
