from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tests.conftest import run_cli
from tests.test_cli import assert_one_line_error
from vidgru.metrics import LabelsError, evaluate_clips, load_labels, minmax


def _labels(tmp_path: Path, videos: object) -> Path:
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"videos": videos}))
    return path


def test_auc_matches_sklearn_on_the_same_numbers(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=40) + 3
    a[20:30] += 2
    labels = load_labels(
        _labels(tmp_path, {"a": {"frames": 50, "anomalous": [[20, 30]]}, "b": {"anomalous": [[0, 40]]}})
    )
    report = evaluate_clips({"a": a, "b": b}, labels, {"a": [(21, 25), (40, 41)], "b": [(3, 9)]})
    y = np.r_[np.isin(np.arange(50), np.arange(20, 30)), np.ones(40, bool)]
    assert report.micro_auc == pytest.approx(roc_auc_score(y, np.r_[a, b]))
    assert report.micro_auc_normalised == pytest.approx(roc_auc_score(y, np.r_[minmax(a), minmax(b)]))
    assert report.macro_auc == pytest.approx(roc_auc_score(y[:50], a))  # b holds one class only
    assert report.event_precision == pytest.approx(2 / 3) and report.event_recall == 1.0


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"clips": {}}), "no 'videos' mapping"),
        (json.dumps({"videos": {"a": {"anomalous": [[5, 2]]}}}), "bad range [5, 2]"),
        (json.dumps({"videos": {"a": {"frames": 10, "anomalous": [[5, 20]]}}}), "bad range [5, 20]"),
        (json.dumps({"videos": {"a": {"frames": 10}}}), "videos.a has no 'anomalous'"),
    ],
)
def test_bad_labels_are_named(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "l.json"
    path.write_text(content)
    with pytest.raises(LabelsError) as err:
        load_labels(path)
    assert needle in str(err.value)


def test_labels_must_cover_and_match_the_clips(tmp_path: Path) -> None:
    labels = load_labels(_labels(tmp_path, {"a": {"frames": 10, "anomalous": [[2, 4]]}}))
    with pytest.raises(LabelsError, match="no labels for b"):
        evaluate_clips({"a": np.zeros(10), "b": np.zeros(5)}, labels)
    with pytest.raises(LabelsError, match="labels say 10 frames but 9 were decoded"):
        evaluate_clips({"a": np.zeros(9)}, labels)


def test_evaluate_cli_on_a_generated_labelled_clip(clips: dict, model_dir: Path, tmp_path: Path) -> None:
    ((lo, hi),) = clips["labels"]
    labels = _labels(tmp_path, {"intruder": {"frames": 150, "anomalous": [[lo, hi]]}})
    scores = tmp_path / "s.csv"
    result = run_cli(
        "evaluate",
        str(clips["intruder"]),
        "--model",
        str(model_dir),
        "--labels",
        str(labels),
        "--scores",
        str(scores),
        "--report",
        str(tmp_path / "rep"),
        "--events",
        str(tmp_path / "e.jsonl"),
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    rows = np.loadtxt(scores, delimiter=",", skiprows=1, usecols=3)
    y = np.zeros(150, bool)
    y[lo:hi] = True
    assert summary["micro_auc"] == pytest.approx(roc_auc_score(y, rows), abs=1e-4)
    assert f"frame AUC micro (raw calibrated): {summary['micro_auc']:.4f}" in result.stdout
    assert summary["micro_auc"] > 0.8
    assert (tmp_path / "rep" / "intruder.png").stat().st_size > 5000

    bad = tmp_path / "bad.json"
    bad.write_text('{"videos": {"intruder": {"anomalous": [[9, 3]]}}}')
    result = run_cli("evaluate", str(clips["intruder"]), "--model", str(model_dir), "--labels", str(bad))
    assert_one_line_error(result, 3, "bad range [9, 3]")
