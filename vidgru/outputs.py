"""Per-frame scores as CSV, and event thumbnails as JPEG."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

SCORES_HEADER = ("video", "frame", "time", "score")


class ScoresCsv:
    """``append``: continue a file an interrupted run wrote (see :mod:`vidgru.resume`), header and all."""

    def __init__(self, path: str | Path, append: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        append = append and self.path.is_file()
        self._fh = self.path.open("a" if append else "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._fh)
        if not append:
            self._writer.writerow(SCORES_HEADER)
            self._fh.flush()

    def write_clip(self, video: str, fps: float, scores: np.ndarray) -> None:
        self._writer.writerows(
            (video, i, f"{i / fps:.3f}", f"{s:.5f}") for i, s in enumerate(scores.tolist())
        )
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def track_box(box: np.ndarray, frame_shape: tuple[int, ...]) -> list[int]:
    """Pixel box ``[x1, y1, x2, y2]`` of a box given in fractions of the picture (a track's)."""
    height, width = frame_shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    return [round(x1 * width), round(y1 * height), round(x2 * width), round(y2 * height)]


def cell_box(cell: int, grid: tuple[int, int], frame_shape: tuple[int, ...]) -> list[int]:
    """Pixel box ``[x1, y1, x2, y2]`` of a grid cell in a frame of ``frame_shape``."""
    rows, cols = grid
    height, width = frame_shape[:2]
    r, c = divmod(cell, cols)
    return [
        round(c * width / cols),
        round(r * height / rows),
        round((c + 1) * width / cols),
        round((r + 1) * height / rows),
    ]


def save_thumbnail(frame: np.ndarray, box: list[int] | None, path: str | Path) -> str:
    """Write ``frame`` as JPEG with ``box`` drawn on it; returns the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = frame.copy()
    if box is not None:
        x1, y1, x2, y2 = box
        cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), (0, 0, 255), 2)
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return str(path)
