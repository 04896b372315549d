"""Per-frame scores as CSV, and event thumbnails as JPEG; checks that an output path can be written."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import cv2
import numpy as np

from vidgru.errors import InputError

SCORES_HEADER = ("video", "frame", "time", "score")


def check_output_parent(path: Path, option: str, folder: Path | None = None) -> None:
    """The folder that will hold ``path`` (``folder``, by default its parent) exists or can be made, and can
    be written in; else one line naming ``option``."""
    folder = path.parent if folder is None else folder
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{option} {path}: {existing} is a file, not a folder; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(
            f"{option} {path}: cannot write in {existing} (permission denied); choose another path"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(
            f"{option} {path}: cannot create {folder} ({err.strerror}); choose another path"
        ) from err


def check_output_file(path: Path, option: str) -> None:
    """Before any work: ``path`` can be written as a file (its folder is made if missing), so that a long run
    does not end in an error after its work is done. ``option`` names the flag in the message."""
    if path.is_dir():
        raise InputError(f"{option} {path} is a folder; give a file path")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{option} {path}: cannot write the file (permission denied); choose another path")
    check_output_parent(path, option)


def check_output_folder(path: Path, option: str) -> None:
    """Before any work: ``path`` is a folder, or can be made one, and can be written in."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path} is a file; give a folder path")
    check_output_parent(path, option, folder=path)


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
