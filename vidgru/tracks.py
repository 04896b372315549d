"""Moving things, followed: blobs that differ from the empty scene, tracked with DeepSORT.

The behaviour of one person (staying, walking up and down, stopping again and again) is a property of
that person's path, which a grid of regions only sees in pieces: a region on a walkway is busy all day
with different people. So each frame's foreground (the pixels that differ from the fitted empty scene,
:mod:`vidgru.occupancy`) is cut into blobs, each blob gets a small colour histogram as its appearance,
and DeepSORT (the ``deep-sort-realtime`` package: a Kalman filter per track, matched on appearance and
box overlap) keeps one id per thing for as long as it is in view, standing still included. Blobs are made
and matched on every other frame (the background's ``detect_every``); between looks the tracks move on
their Kalman prediction.

Every ``stride`` frames, each track seen in those frames makes one step: how fast and which way its
box's centre moved since its previous step, the box's size (as fractions of the picture), and in what
share of the step's looks it was seen; the box itself goes with the step, for the event's box. Nothing
here counts time or reversals: that is the GRU's job (:mod:`vidgru.track_model`), which is what the ``memory``
ablation measures.

Example::

    detections = detect(frame_bgr, background)           # (n, 4 + N_EMBED): boxes and appearance
    stepper = TrackStepper(stride=5, fps=10.0)
    for dets in detections_per_frame:
        for step in stepper.push(dets):                   # at the end of every stride frames
            step.track, step.features, step.box
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from vidgru.occupancy import SceneBackground

log = logging.getLogger(__name__)
# deep-sort-realtime logs nine INFO lines per tracker made (each video, each reconnect): noise in --verbose.
logging.getLogger("deep_sort_realtime").setLevel(logging.WARNING)

# Where in the picture is left out: behaviour here is what the path looks like, not where it is, and
# without it, normal tracks chained one after another are normal tracks of any length (training).
TRACK_FEATURES = ("vx", "vy", "speed", "width", "height", "seen")
N_TRACK = len(TRACK_FEATURES)
HIST_BINS = 4  # per colour channel: 64 appearance dimensions
N_EMBED = HIST_BINS**3
_BIN_SHIFT = 8 - (HIST_BINS - 1).bit_length()  # a colour level's bin: level >> shift, as calcHist's even bins
MIN_AREA = 8  # background pixels (at the background's size): a bag is about 16, a person about 60
MAX_AGE = 50  # frames a track survives unseen (occluded by a passer-by) before it is dropped
N_INIT = 3  # looks at which a blob must be seen before its track counts: noise does not last that long
NN_BUDGET = 20  # appearance samples kept per track: matching cost stays flat however long it lives
# How far a track's velocity may change per frame, in box heights: DeepSORT's 1/160 lets a figure that turns
# or stops leave its track's gate, and a pacer became a new track at each turn (BENCHMARKS.md, 2026-11-30
# ninth session and 2026-12-01 thirteenth).
VELOCITY_NOISE = 1 / 40
# A track lost and then dropped hands its object on to a track seen where it would have been (over this share
# of the smaller box), within HANDOVER_STEPS steps of its loss (SameObjects).
SAME_COVER = 0.5
HANDOVER_STEPS = 3
# A matched blob over this many times its track's predicted box area holds more than that thing (people
# crossing), and is kept out of the track's appearance samples (merged_blobs).
MERGED_AREA = 1.5
TRACKER = {
    "max_age": MAX_AGE,
    "n_init": N_INIT,
    "max_cosine_distance": 0.3,
    "nn_budget": NN_BUDGET,
}
_KERNEL = np.ones((3, 3), np.uint8)
_DIAG8, _DIAG4 = np.diag_indices(8), np.diag_indices(4)


def import_tracker_early() -> None:
    """Import DeepSORT, and scipy under it, in a daemon thread: about 0.3 s of CPU that ``analyze`` and
    ``watch`` then spend while Ray starts, not beside the CNN actors when the first clip is tracked."""

    def load() -> None:
        from deep_sort_realtime.deepsort_tracker import DeepSort  # noqa: F401

        quick_kalman()
        quick_tracker()

    threading.Thread(target=load, name="import-deepsort", daemon=True).start()


@functools.cache
def quick_kalman() -> type:
    """deep-sort-realtime's Kalman filter with its small matrix products written out.

    The tracker calls these per track and frame on 8x8 matrices, where ``np.r_``, ``multi_dot`` and
    scipy's checked wrappers cost more than the arithmetic: on UCSD Ped2's crowds (9.4 blobs a frame)
    DeepSORT took 2.7 ms a frame with the stock filter and 1.0 ms with this one, and made the same tracks
    (at the same noise weights).
    The model is DeepSORT's: constant velocity in (x, y, aspect, height), with its position noise and
    :data:`VELOCITY_NOISE` for the velocity's. Imported when first asked for, as :class:`TrackStepper`
    imports DeepSORT."""
    from deep_sort_realtime.deep_sort.kalman_filter import KalmanFilter

    class QuickKalman(KalmanFilter):
        def __init__(self) -> None:
            super().__init__()
            self._std_weight_velocity = VELOCITY_NOISE

        def predict(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            pos, vel = self._std_weight_position * mean[3], self._std_weight_velocity * mean[3]
            motion = self._motion_mat
            covariance = motion @ covariance @ motion.T
            covariance[_DIAG8] += np.array([pos, pos, 1e-2, pos, vel, vel, 1e-5, vel]) ** 2
            return motion @ mean, covariance

        def predict_many(self, means: np.ndarray, covariances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """:meth:`predict` for a stack of tracks ``(T, 8)``, ``(T, 8, 8)``."""
            pos, vel = self._std_weight_position * means[:, 3], self._std_weight_velocity * means[:, 3]
            motion = self._motion_mat
            covariances = motion @ covariances @ motion.T
            fixed = np.ones_like(pos)
            noise = np.array([pos, pos, 1e-2 * fixed, pos, vel, vel, 1e-5 * fixed, vel]).T ** 2
            covariances[:, _DIAG8[0], _DIAG8[1]] += noise
            return means @ motion.T, covariances

        def update_many(
            self, means: np.ndarray, covariances: np.ndarray, measurements: np.ndarray
        ) -> tuple[np.ndarray, np.ndarray]:
            """:meth:`update` for a stack of tracks ``(T, 8)``, ``(T, 8, 8)`` and their measurements."""
            projected = self._projected_many(means, covariances)
            gains = np.linalg.solve(projected, covariances[:, :, :4].transpose(0, 2, 1)).transpose(0, 2, 1)
            innovations = measurements - means[:, :4]
            moved = means + (innovations[:, None, :] @ gains.transpose(0, 2, 1))[:, 0]
            return moved, covariances - gains @ projected @ gains.transpose(0, 2, 1)

        def project(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            # The observation matrix picks the first four state entries: a slice, not a product.
            pos = self._std_weight_position * mean[3]
            projected = covariance[:4, :4].copy()
            projected[_DIAG4] += np.array([pos, pos, 1e-1, pos]) ** 2
            return mean[:4].copy(), projected

        def update(
            self, mean: np.ndarray, covariance: np.ndarray, measurement: np.ndarray
        ) -> tuple[np.ndarray, np.ndarray]:
            projected_mean, projected_cov = self.project(mean, covariance)
            gain = np.linalg.solve(projected_cov, covariance[:, :4].T).T
            innovation = measurement - projected_mean
            return mean + innovation @ gain.T, covariance - gain @ projected_cov @ gain.T

        def gating_distance(
            self,
            mean: np.ndarray,
            covariance: np.ndarray,
            measurements: np.ndarray,
            only_position: bool = False,
        ) -> np.ndarray:
            """Squared Mahalanobis distance of each measurement from the track's projected state."""
            mean, covariance = self.project(mean, covariance)
            if only_position:
                mean, covariance, measurements = mean[:2], covariance[:2, :2], measurements[:, :2]
            d = measurements - mean
            return np.einsum("ij,ij->i", d, np.linalg.solve(covariance, d.T).T)

        def gating_distances(
            self, means: np.ndarray, covariances: np.ndarray, measurements: np.ndarray
        ) -> np.ndarray:
            """:meth:`gating_distance` for a stack of tracks ``(T, 8)``, ``(T, 8, 8)``: ``(T, D)``."""
            d = measurements[None, :, :] - means[:, None, :4]
            solved = np.linalg.solve(self._projected_many(means, covariances), d.transpose(0, 2, 1))
            return np.einsum("tdi,tid->td", d, solved)  # solved: (T, 4, D)

        def _projected_many(self, means: np.ndarray, covariances: np.ndarray) -> np.ndarray:
            """:meth:`project`'s covariance for a stack of tracks: ``(T, 4, 4)``."""
            pos = self._std_weight_position * means[:, 3]
            projected = covariances[:, :4, :4].copy()
            fixed = np.ones_like(pos)
            projected[:, _DIAG4[0], _DIAG4[1]] += np.array([pos, pos, 1e-1 * fixed, pos]).T ** 2
            return projected

    return QuickKalman


def merged_blobs(predicted: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """``(M,)`` bool: which matched blobs are far larger than their track's predicted box (Kalman states
    ``(M, 8)`` and blobs ``(M, 4)``, both as centre, aspect, height): the thing merged with another.

    Such a blob's colours are two things'. DeepSORT adds them to the track's appearance samples, after
    which the track's appearance matches the other thing too, and a swap when the two part is likelier.
    The blob still moves the track; it only adds no appearance sample. On generated scenes this halved
    the false alarms at the same recall (BENCHMARKS.md, 2026-12-02); that it does so by preventing swaps
    is the reason for the rule, not something measured."""
    area = predicted[:, 2] * predicted[:, 3] ** 2  # aspect = width / height
    return measured[:, 2] * measured[:, 3] ** 2 > MERGED_AREA * area


@functools.cache
def quick_tracker() -> type:
    """deep-sort-realtime's tracker with its per-track work done for all tracks at once.

    Per frame, DeepSORT's matching cascade asks for a cost matrix once per track age (up to ``max_age``
    levels), working out each track's appearance distance and Kalman gate in Python every time; then it
    predicts and updates each track's filter alone. This computes the appearance distances of all confirmed
    tracks to all detections in one product and their gates in one batched solve, runs the cascade on
    slices of that matrix with the same scipy assignment, computes the second stage's box overlaps in one
    go, and predicts and updates the filters as one stack. The same costs, the same assignments, the same
    tracks: on UCSD Ped2's test clips and 131,000 frames of generated scenes, identical to the stock
    tracker's, in 0.43 ms a frame on Ped2 instead of 0.92. Needs :func:`quick_kalman`'s filter.

    Two rules the package lacks: a blob matched to a track it is far larger than (:func:`merged_blobs`)
    adds no appearance sample to that track; and frames can go by without a look (``predict`` without
    ``update``, :meth:`TrackStepper.push`), after which the package's tests for "seen in the last frame" mean
    "seen at the last look". Looking at every frame, that is the package's own test."""
    from deep_sort_realtime.deep_sort import linear_assignment
    from deep_sort_realtime.deep_sort.kalman_filter import chi2inv95
    from deep_sort_realtime.deep_sort.tracker import Tracker
    from scipy.optimize import linear_sum_assignment

    def _iou_costs(
        tracks: list, detections: list, track_indices: list, detection_indices: list, last_look: int
    ) -> np.ndarray:
        """deep-sort-realtime's ``iou_cost`` for all tracks at once: the same arithmetic on each pair.
        ``last_look``: frames since the tracker last looked (the package's 1); tracks not seen then cost
        ``INFTY_COST``, as the package's unseen for more than a frame do."""
        costs = np.full((len(track_indices), len(detection_indices)), linear_assignment.INFTY_COST)
        near = [r for r, k in enumerate(track_indices) if tracks[k].time_since_update <= last_look]
        if not near:
            return costs
        boxes = np.array([tracks[track_indices[r]].to_ltwh() for r in near])[:, None, :]
        candidates = np.asarray([detections[i].ltwh for i in detection_indices])[None]
        corners = np.minimum(boxes[..., :2] + boxes[..., 2:], candidates[..., :2] + candidates[..., 2:])
        overlap = np.maximum(0.0, corners - np.maximum(boxes[..., :2], candidates[..., :2])).prod(axis=2)
        union = boxes[..., 2:].prod(axis=2) + candidates[..., 2:].prod(axis=2) - overlap
        costs[near] = 1.0 - overlap / union
        return costs

    @functools.cache
    def unreachable(rows: int, cols: int, cost: float) -> tuple[tuple[int, ...], frozenset[int]]:
        """The columns scipy assigns in a ``rows`` x ``cols`` matrix of ``cost``, in row order."""
        picked = tuple(linear_sum_assignment(np.full((rows, cols), cost))[1].tolist())
        return picked, frozenset(picked)

    class Given:
        """Stands in for the filter in one track's ``predict`` or ``update``: the package's own method then
        does the rest (age, hits, time unseen, state, appearance) with the state computed for all at once."""

        def __init__(self, mean: np.ndarray, covariance: np.ndarray) -> None:
            self.mean, self.covariance = mean, covariance

        def predict(self, *_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return self.mean, self.covariance

        update = predict

    class QuickTracker(Tracker):
        # Frames predicted since the last update: 1 when every frame is looked at, as the package assumes.
        # A track seen at the last look has been unseen this long, not one frame (TrackStepper.push).
        since_look = 0

        def update(self, detections: list, today: object = None) -> None:
            """deep-sort-realtime's ``Tracker.update`` with the matched tracks' Kalman updates done at once."""
            # Each detection's to_xyah(), for all at once: the same float32 steps.
            measured = np.asarray([d.ltwh for d in detections], np.float32).reshape(-1, 4)
            measured[:, :2] += measured[:, 2:] / 2
            measured[:, 2] /= measured[:, 3]
            self._measured = measured
            if self.today:
                return super().update(detections, today)
            matches, unmatched_tracks, unmatched_detections = self._match(detections)
            if matches:
                tracks, dets = [t for t, _ in matches], [d for _, d in matches]
                predicted, measured = self._means[tracks], self._measured[dets]
                means, covariances = self.kf.update_many(predicted, self._covariances[tracks], measured)
                merged = merged_blobs(predicted, measured)
                for (t, d), mean, covariance, both in zip(matches, means, covariances, merged, strict=True):
                    track = self.tracks[t]
                    track.update(Given(mean, covariance), detections[d])
                    if both:
                        track.features.pop()
            # From here on as the package's own.
            for t in unmatched_tracks:
                self.tracks[t].mark_missed()
            for d in unmatched_detections:
                self._initiate_track(detections[d])
            self.del_tracks_ids = [t.track_id for t in self.tracks if t.is_deleted()]
            self.tracks = [t for t in self.tracks if not t.is_deleted()]
            active_targets = [t.track_id for t in self.tracks if t.is_confirmed()]
            features, targets = [], []
            for track in self.tracks:
                if not track.is_confirmed():
                    continue
                features += track.features
                targets += [track.track_id for _ in track.features]
                track.features = [track.features[-1]]
            self.metric.partial_fit(np.asarray(features), np.asarray(targets), active_targets)
            self.since_look = 0
            return None

        def predict(self) -> None:
            self.since_look += 1
            if not self.tracks:
                self._means, self._covariances = np.zeros((0, 8)), np.zeros((0, 8, 8))
                return
            # Kept for this frame's matching and updates, which see the tracks in the same order.
            self._means, self._covariances = self.kf.predict_many(
                np.array([t.mean for t in self.tracks]), np.array([t.covariance for t in self.tracks])
            )
            for track, mean, covariance in zip(self.tracks, self._means, self._covariances, strict=True):
                track.predict(Given(mean, covariance))

        def _match(self, detections: list) -> tuple[list, list, list]:
            if self.gating_only_position:
                return super()._match(detections)
            confirmed: list[int] = []
            unconfirmed: list[int] = []
            for i, t in enumerate(self.tracks):
                (confirmed if t.is_confirmed() else unconfirmed).append(i)
            matches_a, unmatched_detections = self._cascade(
                self._gated_costs(detections, confirmed), confirmed, len(detections)
            )
            unmatched_a = list(set(confirmed) - {k for k, _ in matches_a})
            # From here on as deep-sort-realtime's Tracker._match: box overlap for what is left.
            # The package's "seen a frame ago" is "seen at the last look" (since_look).
            look = self.since_look
            iou_candidates = unconfirmed + [
                k for k in unmatched_a if self.tracks[k].time_since_update == look
            ]
            unmatched_a = [k for k in unmatched_a if self.tracks[k].time_since_update != look]
            matches_b, unmatched_b, unmatched_detections = linear_assignment.min_cost_matching(
                functools.partial(_iou_costs, last_look=look),
                self.max_iou_distance,
                self.tracks,
                detections,
                iou_candidates,
                unmatched_detections,
            )
            return matches_a + matches_b, list(set(unmatched_a + unmatched_b)), unmatched_detections

        def _cascade(
            self, costs: np.ndarray, confirmed: list[int], n_detections: int
        ) -> tuple[list[tuple[int, int]], list[int]]:
            """deep-sort-realtime's ``matching_cascade`` with its ``min_cost_matching`` written out: the
            tracks seen most recently choose first, each age's assignment solved by the same scipy call on
            the same matrix, and the detections left over kept in the order the package leaves them."""
            by_age: dict[int, list[int]] = {}
            for r, k in enumerate(confirmed):
                age = self.tracks[k].time_since_update
                if 1 <= age <= self.max_age:
                    by_age.setdefault(age, []).append(r)
            bar = self.metric.matching_threshold
            reachable = (costs <= bar).any(axis=1).tolist()
            unmatched = list(range(n_detections))
            matches: list[tuple[int, int]] = []
            for age in sorted(by_age):
                if not unmatched:
                    break
                rows = by_age[age]
                if not any(reachable[r] for r in rows):
                    # Usually so (tracks lost a while): the package would solve a matrix of one value,
                    # whose assignment depends on its shape alone (scipy's answer for it is kept), match
                    # nothing and move the columns it assigned to the end.
                    cols, taken = unreachable(len(rows), len(unmatched), bar + 1e-5)
                    unmatched = [d for j, d in enumerate(unmatched) if j not in taken] + [
                        unmatched[c] for c in cols
                    ]
                    continue
                sub = costs[rows][:, unmatched]
                sub[sub > bar] = bar + 1e-5
                picked_rows, picked_cols = linear_sum_assignment(sub)
                picked = set(picked_cols.tolist())
                left = [d for j, d in enumerate(unmatched) if j not in picked]
                for r, c in zip(picked_rows.tolist(), picked_cols.tolist(), strict=True):
                    if sub[r, c] > bar:
                        left.append(unmatched[c])
                    else:
                        matches.append((confirmed[rows[r]], unmatched[c]))
                unmatched = left
            return matches, unmatched

        def _gated_costs(self, detections: list, confirmed: list[int]) -> np.ndarray:
            """``(confirmed, detections)``: each track's nearest appearance sample's cosine distance to
            each detection, ``INFTY_COST`` outside the track's Kalman gate."""
            if not confirmed or not detections:
                return np.zeros((len(confirmed), len(detections)))
            features = np.asarray([d.feature for d in detections])
            features = features / np.linalg.norm(features, axis=1, keepdims=True)
            samples = [self.metric.samples[self.tracks[k].track_id] for k in confirmed]
            starts = np.cumsum([0] + [len(x) for x in samples[:-1]])
            stacked = np.array([x for track in samples for x in track])
            stacked = stacked / np.linalg.norm(stacked, axis=1, keepdims=True)
            costs = np.minimum.reduceat(1.0 - stacked @ features.T, starts, axis=0).astype(np.float64)
            gate = self.kf.gating_distances(
                self._means[confirmed], self._covariances[confirmed], self._measured
            )
            costs[gate > chi2inv95[4]] = linear_assignment.INFTY_COST
            return costs

    return QuickTracker


@functools.cache
def _closing_kernel(shape: tuple[int, int]) -> np.ndarray:
    return np.ones(shape, np.uint8)


def detect(
    frame: np.ndarray, background: SceneBackground, foreground: np.ndarray | None = None
) -> np.ndarray:
    """``(n, 4 + N_EMBED)`` float32: each blob of pixels that differ from the empty scene, as a box
    ``[x1, y1, x2, y2]`` in fractions of the picture and a colour histogram of its pixels (L2-normed).
    ``foreground``: the frame's ``background.foreground``, when the caller has it already."""
    height, width = background.size
    differs = background.foreground(frame) if foreground is None else foreground
    # Closing joins a figure's parts (the background's kernel, which its model learnt with); opening drops
    # specks of noise.
    closed = cv2.morphologyEx(differs, cv2.MORPH_CLOSE, _closing_kernel(background.closing))
    mask = cv2.morphologyEx(closed, cv2.MORPH_OPEN, _KERNEL)
    # BBDT: on one thread, a third of the time of OpenCV's default (Spaghetti) on these masks, same labels.
    n, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(mask, 8, cv2.CV_32S, cv2.CCL_BBDT)
    keep = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= MIN_AREA) + 1
    out = np.zeros((len(keep), 4 + N_EMBED), np.float32)
    if not len(keep):
        return out
    colour = frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if colour.shape[:2] != (height, width):
        colour = cv2.resize(colour, (width, height), interpolation=cv2.INTER_AREA)
    x, y, w, h = stats[keep, :4].T
    out[:, :4] = np.stack([x / width, y / height, (x + w) / width, (y + h) / height], axis=1)
    # All blobs' histograms in one count: each kept pixel's bin, offset by its blob's row.
    row_of = np.zeros(n, np.int64)
    row_of[keep] = np.arange(1, len(keep) + 1)
    pixels = np.flatnonzero(labels)
    rows = row_of[labels.ravel()[pixels]]
    kept = rows > 0
    pixels, rows = pixels[kept], rows[kept] - 1
    q = colour.reshape(-1, 3)[pixels] >> _BIN_SHIFT
    bins = (q[:, 0].astype(np.int64) * HIST_BINS + q[:, 1]) * HIST_BINS + q[:, 2]
    counts = np.bincount(rows * N_EMBED + bins, minlength=len(keep) * N_EMBED).reshape(len(keep), N_EMBED)
    # The norm from exact integer sums: what float32 gives one blob at a time, below 2**24.
    norm = np.sqrt((counts * counts).sum(axis=1).astype(np.float32))
    out[:, 4:] = counts.astype(np.float32) / np.maximum(norm, np.float32(1e-6))[:, None]
    return out


@dataclass
class TrackStep:
    track: int
    features: np.ndarray  # (N_TRACK,)
    box: np.ndarray  # (4,) [x1, y1, x2, y2], fractions of the picture: the last box seen in the step


@dataclass
class _Seen:
    boxes: list[np.ndarray] = field(default_factory=list)
    last_centre: np.ndarray | None = None  # at the track's previous step


class TrackStepper:
    """Tracks detections frame by frame and turns every ``stride`` frames into one step per track seen.

    A fresh stepper is a fresh tracker: a video's start or a camera's reconnect."""

    def __init__(self, stride: int, fps: float) -> None:
        # Imported here: deep-sort-realtime pulls in scipy (about 0.3 s of CPU), which every decode worker
        # and CNN actor would pay at start-up while most models track nothing.
        from deep_sort_realtime.deep_sort.detection import Detection
        from deep_sort_realtime.deepsort_tracker import DeepSort

        self.stride, self.fps = stride, fps
        self.tracker = DeepSort(embedder=None, **TRACKER)
        self.tracker.tracker.kf = quick_kalman()()
        # The same tracker with its matching costs computed at once: DeepSort takes no tracker class.
        self.tracker.tracker.__class__ = quick_tracker()
        self._detection = Detection
        self.frames = 0
        self.looks = 0  # frames looked at in the step under way
        self.tracks: dict[int, _Seen] = {}

    def push(self, detections: np.ndarray | None) -> list[TrackStep]:
        """One frame's detections (from :func:`detect`), or None for a frame nobody looked at (see
        :attr:`SceneBackground.detect_every`): the tracks then move on their Kalman prediction alone, as over
        a frame in which they were hidden, but none is missed for it. The steps that end with this frame
        (else [])."""
        tracker = self.tracker.tracker
        tracker.predict()
        if detections is not None:
            self._look(detections)
        self.frames += 1
        if self.frames % self.stride:
            return []
        steps = []
        alive = {int(t.track_id) for t in self.tracker.tracker.tracks}
        # A track's steps stay one sequence for as long as the tracker keeps it, unseen steps included.
        for track_id, seen in list(self.tracks.items()):
            if seen.boxes:
                steps.append(self._step(track_id, seen))
                seen.boxes = []
            elif track_id not in alive:
                del self.tracks[track_id]
        self.looks = 0
        return steps

    def _look(self, detections: np.ndarray) -> None:
        # As DeepSort.update_tracks does, without its checks and its unused suppression's arrays.
        boxes = np.column_stack([detections[:, :2], detections[:, 2:4] - detections[:, :2]])
        sized = (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
        tracker = self.tracker.tracker
        tracker.update(
            [
                self._detection(box, 1.0, feature, class_name="blob")
                for box, feature in zip(boxes[sized], detections[sized, 4:], strict=True)
            ]
        )
        self.looks += 1
        for track in tracker.tracks:
            if not track.is_confirmed() or track.time_since_update > 0:
                continue
            box = track.to_ltrb(orig=True, orig_strict=True)
            if box is not None:
                self.tracks.setdefault(int(track.track_id), _Seen()).boxes.append(np.asarray(box, np.float32))

    @property
    def alive(self) -> set[int]:
        """The tracks that may still make steps."""
        return set(self.tracks)

    def _step(self, track_id: int, seen: _Seen) -> TrackStep:
        boxes = np.array(seen.boxes)
        mean = boxes.mean(0)
        centre = np.array([(mean[0] + mean[2]) / 2, (mean[1] + mean[3]) / 2], np.float32)
        seconds = self.stride / self.fps
        velocity = (
            np.zeros(2, np.float32) if seen.last_centre is None else (centre - seen.last_centre) / seconds
        )
        seen.last_centre = centre
        features = np.array(
            [
                velocity[0],
                velocity[1],
                float(np.hypot(*velocity)),
                mean[2] - mean[0],
                mean[3] - mean[1],
                len(boxes) / self.looks,  # of the frames looked at (a step is made at one of them, at least)
            ],
            np.float32,
        )
        return TrackStep(track_id, features, boxes[-1])


class SameObjects:
    """Tracks that follow one object, as far as the boxes show it.

    DeepSORT can lose an object and go on with it under another id: where figures cross, one track may carry
    on with the other figure while that figure's own track is lost, and a figure hidden for a while may come
    back as a new track. The new id would start its GRU's memory afresh (a pacer then needs three more turns
    to be found), and once the first track's event has ended it can raise a second alert on a behaviour
    already reported (a pacer, just after the pacing: BENCHMARKS.md, 2026-12-07 twenty-fifth and
    twenty-sixth sessions). So a track that was lost (not seen) and then dropped by the tracker
    hands its object on to the track seen where it would have been within ``HANDOVER_STEPS`` steps of its
    loss: over its last box moved on at its last velocity (the intersection over ``SAME_COVER`` of the
    smaller box). From then on that track follows the dropped track's object, whose id is the object's
    oldest track's, and takes over its memory (:meth:`vidgru.track_model.TrackModel.step`). An object hidden
    for a moment and seen again is not dropped, and keeps its own.

    Feed it each step's boxes and the tracks the tracker holds, in order, live or over a whole clip: both
    say the same."""

    def __init__(self) -> None:
        self._parent: dict[int, int] = {}
        self._step = 0
        self._last: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}  # track -> step, box, velocity
        self._successor: dict[int, int] = {}  # a lost track -> the track seen where it would be
        self._alive: set[int] = set()
        # By the last push: (track, the object it now follows, the dropped track it takes over from)
        self.joined: list[tuple[int, int, int]] = []

    def push(self, boxes: dict[int, np.ndarray], alive: set[int]) -> None:
        """One step: the boxes ``[x1, y1, x2, y2]`` of the tracks seen in it, by id, and the tracks the
        tracker holds at its end (seen or not)."""
        self.joined = []
        self._handovers(boxes, alive)
        self._step += 1

    def _handovers(self, boxes: dict[int, np.ndarray], alive: set[int]) -> None:
        now = self._step
        for track, box in boxes.items():
            seen = self._last.get(track)
            velocity = np.zeros(4, np.float32)
            if seen is not None:
                velocity = (box - seen[1]) / (now - seen[0])
            self._last[track] = (now, box, velocity)
            self._successor.pop(track, None)  # seen again: not lost
        ids = sorted(boxes)
        if ids and HANDOVER_STEPS:
            lost = [
                (track, step, box, velocity)
                for track, (step, box, velocity) in self._last.items()
                if track not in boxes and track not in self._successor and now - step <= HANDOVER_STEPS
            ]
            if lost:
                here = np.stack([boxes[k] for k in ids])
                where = np.stack([box + velocity * (now - step) for _, step, box, velocity in lost])
                cover = _covers(where, here)
                for (track, *_), row in zip(lost, cover, strict=True):
                    best = int(np.argmax(row))
                    if row[best] > SAME_COVER:
                        self._successor[track] = ids[best]
        gone = self._alive - alive
        for dropped in sorted(gone):  # in one order live and in batch: two may hand on to one track
            successor = self._successor.pop(dropped, None)
            if successor is not None and successor in alive:
                self._join(successor, dropped)
            self._last.pop(dropped, None)
        if gone & self._parent.keys():
            # Only tracks still held are asked about: point each at its object, and forget the others, so
            # that a stream that runs for days keeps only what its tracks in view need.
            self._parent = {k: self.object(k) for k in self._parent if k in alive}
        self._alive = set(alive)

    def _join(self, track: int, other: int) -> None:
        """``track`` follows ``other``'s object from now on (unless it follows one already)."""
        if track not in self._parent and self.object(other) != self.object(track):
            self._parent[track] = self.object(other)
            self.joined.append((track, self._parent[track], other))

    def object(self, track: int) -> int:
        """The first track known to follow the same object as ``track`` (``track`` itself if none)."""
        return object_in(self._parent, track)


def object_in(parents: Mapping[int, int], track: int) -> int:
    """The object ``track`` follows, from each joined track's parent (:class:`SameObjects`)."""
    while track in parents:
        track = parents[track]
    return track


def _covers(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(n, 4)`` and ``(m, 4)`` boxes -> ``(n, m)``: each pair's intersection over the smaller box's area."""
    x1, y1 = np.maximum(a[:, None, 0], b[None, :, 0]), np.maximum(a[:, None, 1], b[None, :, 1])
    x2, y2 = np.minimum(a[:, None, 2], b[None, :, 2]), np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(np.minimum(area_a[:, None], area_b[None, :]), 1e-12)


@dataclass
class TrackSequence:
    track: int
    steps: np.ndarray  # (S_track,) the clip's step index of each of the track's steps
    features: np.ndarray  # (S_track, N_TRACK)
    boxes: np.ndarray  # (S_track, 4)
    # The last step at whose end the tracker still held the track (seen, or hidden for up to MAX_AGE
    # frames); -1: not known
    last_alive: int = -1


def clip_tracks(detections: Sequence[np.ndarray | None], stride: int, fps: float) -> list[TrackSequence]:
    """A whole clip's tracks, each with its steps in order, as a :class:`TrackStepper` gives them live."""
    stepper = TrackStepper(stride, fps)
    per: dict[int, list[tuple[int, TrackStep]]] = {}
    last_alive: dict[int, int] = {}
    for frame, dets in enumerate(detections):
        for step in stepper.push(dets):
            per.setdefault(step.track, []).append(((frame + 1) // stride - 1, step))
        if (frame + 1) % stride == 0:
            for track in stepper.alive:
                last_alive[track] = (frame + 1) // stride - 1
    return [
        TrackSequence(
            track,
            np.array([k for k, _ in items], np.int64),
            np.stack([s.features for _, s in items]),
            np.stack([s.box for _, s in items]),
            last_alive.get(track, -1),
        )
        for track, items in per.items()
    ]


def box_cells(boxes: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """``(T, 4)`` boxes in fractions of the picture -> the motion-grid cell of each box's centre (0 where
    there is no box)."""
    rows, cols = grid
    centre = np.nan_to_num((boxes[:, :2] + boxes[:, 2:]) / 2)
    r = np.clip((centre[:, 1] * rows).astype(np.int64), 0, rows - 1)
    c = np.clip((centre[:, 0] * cols).astype(np.int64), 0, cols - 1)
    return r * cols + c
