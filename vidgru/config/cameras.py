"""The cameras config of ``vidgru watch``: which streams to watch, with which model, and how to treat faults.

Settings at the top level are defaults; a camera's own ``model``, ``analysis_fps`` and ``events`` keys
override them (Frigate's global-then-camera merge). ``configs/cameras.example.yaml`` documents every key.

Example::

    from vidgru.config.cameras import load_cameras_config
    cfg = load_cameras_config("cameras.yaml")
    for camera in cfg.cameras:
        cfg.model_dir(camera), camera.source_kind, cfg.events_for(camera, base_events)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from vidgru.config.base import StrictModel
from vidgru.config.models import EventsConfig, RayConfig
from vidgru.config.sinks import DeliveryConfig
from vidgru.errors import ConfigError

EXAMPLE = "configs/cameras.example.yaml"
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")

Point = Annotated[list[Annotated[float, Field(ge=0, le=1)]], Field(min_length=2, max_length=2)]
Polygon = Annotated[list[Point], Field(min_length=3)]


class EventsOverride(StrictModel):
    """Event settings that replace the model's for one camera (or for all, at the top level)."""

    threshold: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="Calibrated score that opens an event."
    )
    hysteresis: float | None = Field(
        None,
        gt=0,
        le=1,
        description="An open event stays open while the score is above threshold * hysteresis.",
    )
    min_duration_s: float | None = Field(
        None, ge=0, description="Shorter runs above threshold are not reported."
    )
    merge_gap_s: float | None = Field(
        None, ge=0, description="An event ends after this long below threshold * hysteresis."
    )
    thumbnails: bool | None = Field(None, description="Save a JPEG of each event's peak frame.")


class StreamSettings(StrictModel):
    """How streams are opened, watched for stalls and reopened."""

    open_timeout_s: float = Field(10.0, gt=0, description="Give up opening a stream after this long.")
    stall_timeout_s: float = Field(
        5.0,
        gt=0,
        description="A stream that delivers no frame for this long is declared offline and reopened.",
    )
    backoff_initial_s: float = Field(1.0, gt=0, description="Wait before the first reopen attempt.")
    backoff_max_s: float = Field(
        30.0, gt=0, description="The wait doubles after each failed attempt up to this; attempts never stop."
    )
    buffer_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Seconds of frames a camera may hold waiting for analysis; when analysis falls behind the "
        "oldest are dropped (and counted), so no frame is analysed later than this after capture.",
    )
    rtsp_transport: Literal["tcp", "udp"] = Field(
        "tcp", description="RTSP transport; tcp survives lossy networks without broken frames."
    )


class CameraConfig(StrictModel):
    """One camera: where its stream is and how to analyse it."""

    id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        max_length=64,
        description="Name of the camera in events and logs (letters, digits, '_', '.', '-').",
    )
    url: str | int = Field(
        description="rtsp://, rtsps://, http(s):// (MJPEG or HLS) or another FFmpeg URL; a device index such "
        "as 0 for a local webcam; or a video file, replayed in real time (relative paths are relative to "
        "this config file)."
    )
    model: Path | None = Field(
        None, description="Model directory from 'vidgru train' (default: the top level's)."
    )
    analysis_fps: float | None = Field(
        None,
        gt=0,
        le=60,
        description="Frames per second sampled for analysis (default: the top level's, else the rate the "
        "model was trained at, else 10). Flow statistics depend on the frame interval.",
    )
    roi: list[Polygon] | None = Field(
        None,
        description="Regions of interest: polygons of [x, y] points as fractions of the frame's width and "
        "height (0..1). Only grid cells at least half inside one count towards the score. Null: everywhere.",
    )
    events: EventsOverride = Field(default_factory=EventsOverride, description="Overrides of event settings.")

    @field_validator("url")
    @classmethod
    def _not_blank(cls, url: str | int) -> str | int:
        if isinstance(url, str) and not url.strip():
            raise ValueError("must not be empty")
        if isinstance(url, int) and url < 0:
            raise ValueError("a device index is 0 or more")
        return url

    @property
    def source_kind(self) -> Literal["stream", "device", "file"]:
        if isinstance(self.url, int) or self.url.strip().isdigit():
            return "device"
        return "stream" if self.url.lower().startswith(STREAM_SCHEMES) else "file"

    @property
    def open_target(self) -> str | int:
        """What OpenCV opens: the URL, the device index, or the file path."""
        return int(self.url) if self.source_kind == "device" else str(self.url)


class CamerasConfig(StrictModel):
    """The whole file: defaults, stream settings, Ray settings, and the cameras."""

    model: Path | None = Field(None, description="Model directory for cameras that name none.")
    analysis_fps: float | None = Field(
        None, gt=0, le=60, description="Default analysis rate (frames/s) for cameras that set none."
    )
    events: EventsOverride = Field(
        default_factory=EventsOverride, description="Event settings for every camera (a camera's own win)."
    )
    stream: StreamSettings = Field(default_factory=StreamSettings, description="Stream handling.")
    ray: RayConfig = Field(default_factory=RayConfig, description="Where the analysis runs.")
    delivery: DeliveryConfig = Field(
        default_factory=DeliveryConfig,
        description="Sinks beyond the --events JSONL file (webhook, Redis, MQTT, Kafka), with the outbox "
        "that delivers every record at least once; see configs/sinks.example.yaml.",
    )
    cameras: list[CameraConfig] = Field(min_length=1, description="The cameras to watch.")

    @model_validator(mode="after")
    def _consistent(self) -> CamerasConfig:
        seen: set[str] = set()
        for i, cam in enumerate(self.cameras):
            if cam.id in seen:
                raise ValueError(f"cameras[{i}].id: '{cam.id}' is used by two cameras; ids must be unique")
            seen.add(cam.id)
            if cam.model is None and self.model is None:
                raise ValueError(
                    f"cameras[{i}].model: camera '{cam.id}' has no model and there is no top-level model"
                )
        if self.stream.backoff_max_s < self.stream.backoff_initial_s:
            raise ValueError("stream.backoff_max_s must be at least stream.backoff_initial_s")
        return self

    def model_dir(self, camera: CameraConfig) -> Path:
        model = camera.model or self.model
        assert model is not None  # checked on load
        return model

    def analysis_fps_for(self, camera: CameraConfig, trained_fps: float | None) -> float:
        return camera.analysis_fps or self.analysis_fps or trained_fps or 10.0

    def events_for(self, camera: CameraConfig, base: EventsConfig) -> EventsConfig:
        """The model's event settings, then the top level's overrides, then the camera's."""
        merged = base.model_dump()
        merged.update(self.events.model_dump(exclude_none=True))
        merged.update(camera.events.model_dump(exclude_none=True))
        return EventsConfig.model_validate(merged)


def _key(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _describe(err: ValidationError, source: str) -> str:
    # A misspelt key also leaves the real one missing; the misspelling is the error to name.
    first = min(err.errors(), key=lambda e: e["type"] != "extra_forbidden")
    # A union (url: str | int) reports one error per branch with the branch in loc; name the key only.
    loc = tuple(p for p in first["loc"] if p not in ("str", "int", "list[list[list[float]]]"))
    key = _key(loc)
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{key}'; see {EXAMPLE} for the keys that exist"
    if first["type"] == "missing":
        return f"{source}: {key} is required; see {EXAMPLE}"
    msg = first["msg"].removeprefix("Value error, ")
    if key == "(top level)" and ": " in msg:
        return f"{source}: {msg}; see {EXAMPLE}"
    value = first.get("input")
    shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
    return f"{source}: {key}: {msg}{shown}; see {EXAMPLE}"


def cameras_from_dict(
    data: dict[str, Any], source: str = "cameras config", base_dir: Path | None = None
) -> CamerasConfig:
    try:
        cfg = CamerasConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err, source)) from err
    base_dir = base_dir or Path.cwd()
    if cfg.model is not None:
        cfg.model = base_dir / cfg.model
    for i, cam in enumerate(cfg.cameras):
        if cam.model is not None:
            cam.model = base_dir / cam.model
        if cam.source_kind == "file":
            path = base_dir / Path(str(cam.url)).expanduser()
            if not path.is_file():
                raise ConfigError(
                    f"{source}: cameras[{i}].url: '{cam.url}' is not a stream URL (rtsp://, http://, ...), a "
                    f"device index, or an existing video file; fix the URL or the path"
                )
            cam.url = str(path)
    return cfg


def load_cameras_config(path: str | Path) -> CamerasConfig:
    """Load and validate a cameras YAML file; relative paths in it are relative to the file."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"cameras config {path} is a folder; pass a YAML file like {EXAMPLE}")
    if not path.is_file():
        raise ConfigError(f"cameras config {path} does not exist; write one like {EXAMPLE}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}; check indentation and quoting") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with a 'cameras' list; see {EXAMPLE}")
    return cameras_from_dict(data, str(path), path.resolve().parent)
