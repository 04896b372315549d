"""Typed configuration. ``configs/default.yaml`` documents every key; a test keeps the two in step.

Example::

    from vidgru.config import load_config
    cfg = load_config("configs/default.yaml")
    cfg.events.threshold
"""

from vidgru.config.cameras import CameraConfig, CamerasConfig, StreamSettings, load_cameras_config
from vidgru.config.loader import dump_config, load_config
from vidgru.config.models import (
    BackboneConfig,
    BehaviourConfig,
    EventsConfig,
    MotionConfig,
    RayConfig,
    TamperingConfig,
    TemporalConfig,
    VidgruConfig,
)
from vidgru.config.sinks import (
    DeliveryConfig,
    JsonlSinkConfig,
    KafkaSinkConfig,
    MqttSinkConfig,
    RedisSinkConfig,
    SinkConfig,
    StdoutSinkConfig,
    WebhookSinkConfig,
)

__all__ = [
    "BackboneConfig",
    "BehaviourConfig",
    "CameraConfig",
    "CamerasConfig",
    "DeliveryConfig",
    "EventsConfig",
    "JsonlSinkConfig",
    "KafkaSinkConfig",
    "MotionConfig",
    "MqttSinkConfig",
    "RayConfig",
    "RedisSinkConfig",
    "SinkConfig",
    "StdoutSinkConfig",
    "StreamSettings",
    "TamperingConfig",
    "TemporalConfig",
    "VidgruConfig",
    "WebhookSinkConfig",
    "dump_config",
    "load_cameras_config",
    "load_config",
]
