"""The completion manifest (vidgru/resume.py) on real files: what a run that died mid-clip left behind is
cut back to the last committed clip, so the clip is written again exactly once."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from vidgru.errors import ResumeError
from vidgru.outputs import ScoresCsv
from vidgru.resume import RunManifest, manifest_path, run_identity
from vidgru.sinks.jsonl import JsonlSink
from vidgru.sources import Clip

RUN = run_identity("m@1", {"events": {"threshold": 1.5}}, None)


@pytest.fixture
def two_clips(clips: dict[str, Path], tmp_path: Path) -> list[Clip]:
    out = []
    for name in ("a", "b"):
        path = tmp_path / "in" / f"{name}.mp4"
        path.parent.mkdir(exist_ok=True)
        shutil.copy(clips["intruder"], path)
        out.append(Clip(name, path, "video"))
    return out


def _write_clip(events: JsonlSink, scores: ScoresCsv, clip: Clip) -> None:
    events.emit({"id": f"{clip.name}-1", "type": "end", "source": clip.name})
    scores.write_clip(clip.name, 10.0, np.arange(5, dtype=np.float32))


def test_resume_cuts_back_to_the_last_commit(two_clips: list[Clip], tmp_path: Path) -> None:
    a, b = two_clips
    events_path, scores_path = tmp_path / "out" / "events.jsonl", tmp_path / "out" / "scores.csv"
    run = run_identity("m@1", {"events": {"threshold": 1.5}}, scores_path)

    manifest = RunManifest.open(events_path, scores_path, run)
    assert not manifest.resuming and manifest.remaining(two_clips) == two_clips
    events, scores = JsonlSink(events_path), ScoresCsv(scores_path)
    manifest.begin()
    _write_clip(events, scores, a)
    manifest.commit(a, frames=5, events=1)
    committed = (events_path.read_bytes(), scores_path.read_bytes())
    # the run dies after writing b's results, and while writing b's manifest line
    _write_clip(events, scores, b)
    events.close()
    scores.close()
    with manifest_path(events_path).open("a") as fh:
        fh.write('{"clip":"b","path":')

    again = RunManifest.open(events_path, scores_path, run)
    assert again.resuming and again.remaining(two_clips) == [b]
    again.start()
    assert (events_path.read_bytes(), scores_path.read_bytes()) == committed
    events, scores = JsonlSink(events_path, append=True), ScoresCsv(scores_path, append=True)
    _write_clip(events, scores, b)
    events.close()
    scores.close()
    again.commit(b, frames=5, events=1)

    final = RunManifest.open(events_path, scores_path, run)
    assert final.remaining(two_clips) == []
    lines = events_path.read_text().splitlines()
    assert len(lines) == 2 and len(set(lines)) == 2
    rows = scores_path.read_text().splitlines()
    assert rows[0] == "video,frame,time,score" and len(rows) == 1 + 10 and len(set(rows)) == 11
    assert manifest_path(events_path).read_text().count('"clip":"b"') == 1


def test_resume_refuses_other_model_settings_or_changed_clip(two_clips: list[Clip], tmp_path: Path) -> None:
    a, _ = two_clips
    events_path = tmp_path / "events.jsonl"
    manifest = RunManifest.open(events_path, None, RUN)
    events = JsonlSink(events_path)
    manifest.begin()
    events.emit({"id": "x", "type": "end"})
    events.close()
    manifest.commit(a, frames=1, events=1)

    for other in (
        run_identity("m@2", {"events": {"threshold": 1.5}}, None),
        run_identity("m@1", {"events": {"threshold": 2.0}}, None),
        run_identity("m@1", {"events": {"threshold": 1.5}}, tmp_path / "scores.csv"),
    ):
        with pytest.raises(ResumeError, match="--fresh"):
            RunManifest.open(events_path, None, other)
    with a.path.open("ab") as fh:  # the recording was replaced after it was analysed
        fh.write(b"\0")
    with pytest.raises(ResumeError, match=r"a\.mp4"):
        RunManifest.open(events_path, None, RUN).remaining([a])

    # --fresh: the old manifest goes before the outputs are started again, so it cannot outlive them
    fresh = RunManifest.open(events_path, None, RUN, fresh=True)
    assert not fresh.resuming and fresh.remaining([a]) == [a]
    fresh.start()
    assert not manifest_path(events_path).exists()
