"""Evaluation report: a PNG per clip (score over time, threshold, labelled ranges shaded) and summary.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vidgru.metrics import ClipLabels, EvaluationReport


def write_report(
    folder: str | Path,
    report: EvaluationReport,
    scores: dict[str, tuple[float, np.ndarray]],
    labels: dict[str, ClipLabels],
    threshold: float,
    extra: dict[str, object] | None = None,
) -> list[Path]:
    """``scores`` maps clip name to ``(fps, calibrated scores)``. Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (fps, s) in scores.items():
        t = np.arange(len(s)) / fps
        fig, ax = plt.subplots(figsize=(9, 2.8), dpi=100)
        for lo, hi in labels[name].anomalous:
            ax.axvspan(lo / fps, hi / fps, color="tab:red", alpha=0.15, lw=0)
        ax.plot(t, s, color="tab:blue", lw=1.2, label="score")
        ax.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"threshold {threshold:g}")
        auc = next(c.auc for c in report.clips if c.clip == name)
        ax.set_title(f"{name}" + (f"  (AUC {auc:.3f})" if auc is not None else ""), fontsize=10)
        ax.set_xlabel("seconds")
        ax.set_ylabel("calibrated score")
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        path = folder / f"{name}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    summary = folder / "summary.json"
    summary.write_text(
        json.dumps({**report.to_dict(), "threshold": threshold, **(extra or {})}, indent=2) + "\n"
    )
    written.append(summary)
    return written
