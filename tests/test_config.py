from pathlib import Path

import pytest

from vidgru.config import VidgruConfig, load_config
from vidgru.config.docs import render_default_yaml
from vidgru.errors import ConfigError

DEFAULT_YAML = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"


def test_default_yaml_is_the_models_defaults() -> None:
    assert DEFAULT_YAML.read_text() == render_default_yaml(), "regenerate: python -m vidgru.config.docs"
    assert load_config(DEFAULT_YAML) == VidgruConfig()


def test_every_key_is_documented() -> None:
    for section in VidgruConfig.model_fields.values():
        for name, field in section.annotation.model_fields.items():  # type: ignore[union-attr]
            assert field.description, f"{section.annotation.__name__}.{name} has no description"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'events\.treshold'"):
        load_config(_write(tmp_path, "events:\n  treshold: 2\n"))


def test_bad_value_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"events\.hysteresis.*1\.5"):
        load_config(_write(tmp_path, "events:\n  hysteresis: 1.5\n"))
    with pytest.raises(ConfigError, match=r"motion.*divisible by grid"):
        load_config(_write(tmp_path, "motion:\n  grid: [7, 12]\n"))


def test_partial_file_keeps_other_defaults(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, "events:\n  threshold: 2.5\n"))
    assert cfg.events.threshold == 2.5
    assert cfg.motion == VidgruConfig().motion


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d"):
        load_config(_write(tmp_path, "events:\n  threshold: [1\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(_write(tmp_path, "- a\n- b\n"))
