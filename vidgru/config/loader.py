from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from vidgru.config.models import VidgruConfig
from vidgru.errors import ConfigError


def _describe(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{key}'; see configs/default.yaml for the keys that exist"
    value = first.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    return f"{source}: {key}: {first['msg']}{shown}; fix it or remove the key to use the default"


def config_from_dict(data: dict[str, Any], source: str = "config") -> VidgruConfig:
    try:
        return VidgruConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err, source)) from err


def load_config(path: str | Path | None) -> VidgruConfig:
    """Load and validate a YAML config; ``None`` gives the defaults."""
    if path is None:
        return VidgruConfig()
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; pass a YAML file to --config")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; pass an existing YAML file to --config")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}; check indentation and quoting") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (features, motion, ...)")
    return config_from_dict(data, str(path))


def dump_config(cfg: VidgruConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
