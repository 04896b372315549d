from pathlib import Path

import cv2
import numpy as np
import pytest

from vidgru.decode import FrameReader, read_frames
from vidgru.errors import EmptyFolderError, InputError, SourceNotFoundError, VideoOpenError
from vidgru.sources import discover_clips
from vidgru.synthetic import SceneSpec, render_scene


def test_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        discover_clips([tmp_path / "nope.mp4"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(EmptyFolderError, match="no videos"):
        discover_clips([tmp_path / "empty"])


def test_not_a_video(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"this is not a video" * 100)
    (clip,) = discover_clips([bogus])
    with pytest.raises(VideoOpenError, match=r"bogus\.mp4"):
        list(FrameReader(clip))


def test_folder_of_videos_and_frames(tmp_path: Path) -> None:
    render_scene(tmp_path / "vids" / "a.mp4", SceneSpec(seconds=1, seed=1))
    render_scene(tmp_path / "vids" / "sub" / "b.avi", SceneSpec(seconds=1, seed=2))
    clips = discover_clips([tmp_path / "vids"])
    assert [c.name for c in clips] == ["a", "b"]
    frames = tmp_path / "cam_frames"
    frames.mkdir()
    for i in range(5):
        cv2.imwrite(str(frames / f"{i:03d}.png"), np.full((48, 64, 3), i * 40, np.uint8))
    (clip,) = discover_clips([frames])
    assert clip.kind == "frames"
    got = list(FrameReader(clip))
    assert [i for i, _ in got] == [0, 1, 2, 3, 4]
    assert got[3][1][0, 0, 0] == 120
    assert read_frames(clip, [4])[4][0, 0, 0] == 160


def test_duplicate_names_rejected(tmp_path: Path) -> None:
    render_scene(tmp_path / "x" / "cam.mp4", SceneSpec(seconds=1, seed=1))
    render_scene(tmp_path / "y" / "cam.mp4", SceneSpec(seconds=1, seed=1))
    with pytest.raises(InputError, match="both named 'cam'"):
        discover_clips([tmp_path / "x", tmp_path / "y"])


def test_truncated_video_reports_where_it_broke(tmp_path: Path) -> None:
    full = tmp_path / "full.avi"
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(40):
        writer.write(np.full((48, 64, 3), i * 5, np.uint8))
    writer.release()
    data = full.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    (clip,) = discover_clips([cut])
    reader = FrameReader(clip)
    frames = [i for i, _ in reader]
    assert 0 < len(frames) < 40
    assert reader.report.problem is not None
    assert f"stopped at frame {len(frames)} of 40" in reader.report.problem


def test_broken_image_in_frames_folder(tmp_path: Path) -> None:
    for i in range(4):
        cv2.imwrite(str(tmp_path / f"{i:03d}.jpg"), np.zeros((32, 32, 3), np.uint8))
    (tmp_path / "002.jpg").write_bytes(b"garbage")
    (clip,) = discover_clips([tmp_path])
    reader = FrameReader(clip)
    assert len(list(reader)) == 2
    assert "002.jpg cannot be read" in (reader.report.problem or "")
