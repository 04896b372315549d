"""Typed configuration. ``configs/default.yaml`` documents every key; a test keeps the two in step.

Example::

    from vidgru.config import load_config
    cfg = load_config("configs/default.yaml")
    cfg.events.threshold
"""

from vidgru.config.loader import dump_config, load_config
from vidgru.config.models import (
    BackboneConfig,
    EventsConfig,
    MotionConfig,
    RayConfig,
    TemporalConfig,
    VidgruConfig,
)

__all__ = [
    "BackboneConfig",
    "EventsConfig",
    "MotionConfig",
    "RayConfig",
    "TemporalConfig",
    "VidgruConfig",
    "dump_config",
    "load_config",
]
