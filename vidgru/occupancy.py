"""What stands in each cell: the share of its pixels that differ from the camera's empty scene.

Optical flow sees only what moves. A person who stands still, or a bag put down, has no flow, yet that is
exactly what loitering and left objects are made of. So each frame is also compared with a background
picture fitted on the camera's normal footage (the per-pixel median of frames sampled across it, where
passers-by do not stay long enough to show), and each cell gets the fraction of its pixels that differ.
A pixel differs where its grey level does, or, in colour footage, its colour (Cr or Cb): a body of the
walkway's grey in another colour would otherwise show only as a head, a small blob that stands.

The background is fixed once trained, so a frame's occupancy depends on that frame alone: segments of a
video decoded apart, and a live stream after a reconnect, measure exactly what one pass would.

Example::

    background = fit_background(frames_of_normal_clips, size=(120, 180))
    occupancy = background.occupancy(frame_bgr, grid=(8, 12))    # (96,) in [0, 1]
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidgru.errors import ModelError

BACKGROUND_JSON = "background.json"
BACKGROUND_PNG = "background.png"
BACKGROUND_COLOUR_PNG = "background_colour.png"
# The kernel that closes the foreground into blobs (vidgru.tracks.detect), rows x columns at the
# background's size: tall and narrow, so that the parts of one upright figure (a head and legs, with a torso
# at the walkway's grey level between them) join while figures side by side stay apart (BENCHMARKS.md,
# 2026-12-07). A background saved before it was kept with it closed 3 x 3, and keeps that: its model learnt
# from such blobs.
BLOB_CLOSING = (7, 3)
_CLOSING_BEFORE = (3, 3)
# Blobs are made, and the tracker matches them, on every DETECT_EVERY-th frame of a video (from its first);
# tracks coast on their Kalman prediction between. Half the frames halve what tracking costs, and at 10
# frames/s a walker moves a few pixels between looks (BENCHMARKS.md, 2026-12-07 twenty-second session). A
# background saved before it was kept with it made blobs on every frame, and keeps that. 1 or 2 only: a
# step's velocity is the move of its boxes' mean, which is a step's time only when every step's looks sit
# alike in it (with every third frame, steps of 5 frames hold one look or two, at shifting times).
DETECT_EVERY = 2
_DETECT_EVERY_BEFORE = 1
MAX_SAMPLES = 400  # frames the median is taken over
_MIN_THRESHOLD = 12.0  # grey levels; below this, sensor and codec noise pass for objects
_MIN_CHROMA_THRESHOLD = 12.0  # Cr or Cb levels, for the same reason
# Footage whose sampled pixels all have Cr and Cb within this of neutral (128) is grey footage in a colour
# file (UCSD Ped2's MP4s are exactly 128): reading its chroma would cost time and find nothing.
_GREY_CHROMA = 2


def _grey(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    height, width = size
    grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if grey.shape[:2] != (height, width):
        grey = cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA)
    # A light blur so that single noisy pixels do not count as something standing there.
    return cv2.GaussianBlur(grey, (3, 3), 0)


def _colour(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
    """The frame at ``size`` in BGR, blurred as :func:`_grey` is; None for a grey frame."""
    if frame.ndim == 2:
        return None
    height, width = size
    if frame.shape[:2] != (height, width):
        frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(frame, (3, 3), 0)


def _chroma_difference(colour: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``(height, width)`` uint8: the larger of the Cr and Cb differences of a BGR picture from a YCrCb one."""
    _, cr, cb = cv2.split(cv2.absdiff(cv2.cvtColor(colour, cv2.COLOR_BGR2YCrCb), reference))
    return cv2.max(cr, cb)


@dataclass
class SceneBackground:
    picture: np.ndarray  # uint8 grey, at size
    threshold: float  # grey-level difference that marks a pixel as not background
    closing: tuple[int, int] = BLOB_CLOSING  # the kernel the foreground is closed with into blobs
    detect_every: int = DETECT_EVERY  # blobs are made on frames whose index is a multiple of this
    # The empty scene in colour (BGR, at size), and the Cr or Cb difference that marks a pixel as not
    # background. A figure whose body has the walkway's grey level but not its colour would otherwise show
    # only its head and legs. None: grey only (grey footage, or a background saved before colour was read).
    colour: np.ndarray | None = None
    chroma_threshold: float = _MIN_CHROMA_THRESHOLD

    def looks_at(self, index: int) -> bool:
        """Whether blobs are made on frame ``index`` of a video (or of a stream since it (re)started)."""
        return index % self.detect_every == 0

    @property
    def size(self) -> tuple[int, int]:
        return int(self.picture.shape[0]), int(self.picture.shape[1])

    def foreground(self, frame: np.ndarray) -> np.ndarray:
        """``(height, width)`` uint8 at the background's size: 1 where the frame differs from it."""
        differs = cv2.absdiff(_grey(frame, self.size), self.picture) > self.threshold
        colour = None if self.colour is None else _colour(frame, self.size)
        if colour is not None:
            # The empty scene's YCrCb is remade per frame (15 us at 180 x 120), so that it always follows
            # ``colour``.
            reference = cv2.cvtColor(self.colour, cv2.COLOR_BGR2YCrCb)
            differs |= _chroma_difference(colour, reference) > self.chroma_threshold
        return differs.astype(np.uint8)

    def occupancy(
        self, frame: np.ndarray, grid: tuple[int, int], foreground: np.ndarray | None = None
    ) -> np.ndarray:
        """``(rows * cols,)`` float32: per cell, the share of pixels that differ from the background.
        ``foreground``: the frame's :meth:`foreground`, when the caller has it already."""
        rows, cols = grid
        differs = (self.foreground(frame) if foreground is None else foreground).astype(np.float32)
        return cv2.resize(differs, (cols, rows), interpolation=cv2.INTER_AREA).ravel()

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        cv2.imwrite(str(directory / BACKGROUND_PNG), self.picture)
        meta = {
            "size": list(self.size),
            "threshold": self.threshold,
            "closing": list(self.closing),
            "detect_every": self.detect_every,
        }
        if self.colour is not None:
            if not cv2.imwrite(str(directory / BACKGROUND_COLOUR_PNG), self.colour):
                raise ModelError(
                    f"cannot write {directory / BACKGROUND_COLOUR_PNG}; check the folder is writable"
                )
            meta["chroma_threshold"] = self.chroma_threshold
        (directory / BACKGROUND_JSON).write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> SceneBackground:
        directory = Path(directory)
        picture = cv2.imread(str(directory / BACKGROUND_PNG), cv2.IMREAD_GRAYSCALE)
        try:
            meta = json.loads((directory / BACKGROUND_JSON).read_text())
            threshold = float(meta["threshold"])
            rows, cols = (int(v) for v in meta.get("closing", _CLOSING_BEFORE))
            if not (1 <= rows <= 31 and 1 <= cols <= 31):
                raise ValueError(f"closing {rows} x {cols} is not between 1 and 31 each way")
            every = int(meta.get("detect_every", _DETECT_EVERY_BEFORE))
            if every not in (1, 2):
                raise ValueError(f"detect_every {every} is not 1 or 2")
            saved_chroma = meta.get("chroma_threshold")  # absent: saved before colour was read
            chroma_threshold = None if saved_chroma is None else float(saved_chroma)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ModelError(
                f"{directory / BACKGROUND_JSON} is unreadable ({err}); retrain the model"
            ) from err
        if picture is None:
            raise ModelError(f"{directory / BACKGROUND_PNG} is missing or unreadable; retrain the model")
        colour = None
        if chroma_threshold is not None:
            colour_png = directory / BACKGROUND_COLOUR_PNG
            colour = cv2.imread(str(colour_png), cv2.IMREAD_COLOR) if colour_png.is_file() else None
            if colour is None or colour.shape[:2] != picture.shape[:2]:
                raise ModelError(f"{colour_png} is missing or unreadable; retrain the model")
            return cls(picture, threshold, (rows, cols), every, colour, chroma_threshold)
        return cls(picture, threshold, (rows, cols), every)


def fit_background(
    clips: Iterable[Iterable[np.ndarray]], size: tuple[int, int], seed: int = 0
) -> SceneBackground:
    """Fit from normal clips (each an iterable of BGR or grey frames).

    The threshold is set from the footage itself: four times the median absolute difference of the
    sampled frames from the background, which is mostly noise since most pixels are empty most of the time.
    Colour footage also gets a colour empty scene (the per-channel median) and a chroma threshold set the
    same way. Grey footage, colour files whose pictures are grey, or any grey frame among the sampled
    ones leave the background grey only.
    """
    rng = np.random.default_rng(seed)
    samples: list[tuple[np.ndarray, np.ndarray | None]] = []
    seen = 0
    for clip in clips:
        for frame in clip:
            small = (_grey(frame, size), _colour(frame, size))
            seen += 1
            # Reservoir sample: a fair, bounded sample of any amount of footage.
            if len(samples) < MAX_SAMPLES:
                samples.append(small)
            else:
                slot = int(rng.integers(seen))
                if slot < MAX_SAMPLES:
                    samples[slot] = small
    if not samples:
        raise ValueError("no frames to fit a background on")
    stack = np.stack([grey for grey, _ in samples])
    picture = np.median(stack, axis=0).astype(np.uint8)
    noise = float(np.median(np.abs(stack.astype(np.int16) - picture.astype(np.int16))))
    threshold = max(_MIN_THRESHOLD, 4.0 * noise)
    colours = [colour for _, colour in samples if colour is not None]
    neutral = np.full((*size, 3), 128, np.uint8)
    if len(colours) < len(samples) or all(
        _chroma_difference(c, neutral).max() <= _GREY_CHROMA for c in colours
    ):
        return SceneBackground(picture, threshold)
    colour = np.median(np.stack(colours), axis=0).astype(np.uint8)
    reference = cv2.cvtColor(colour, cv2.COLOR_BGR2YCrCb)
    chroma_noise = float(np.median([_chroma_difference(c, reference) for c in colours]))
    return SceneBackground(
        picture,
        threshold,
        colour=colour,
        chroma_threshold=max(_MIN_CHROMA_THRESHOLD, 4.0 * chroma_noise),
    )
