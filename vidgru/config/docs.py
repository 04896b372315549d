"""Render the documented default config from the models, so configs/default.yaml cannot drift from them."""

from __future__ import annotations

import textwrap

import yaml
from pydantic import BaseModel

from vidgru.config.models import VidgruConfig

HEADER = """\
# vidgru configuration: every key with its default and what it does.
# Pass a file with only the keys you change: vidgru train --config my.yaml ...
# Unknown keys and bad values are errors that name the key.
# This file is generated from vidgru/config/models.py (python -m vidgru.config.docs > configs/default.yaml).
"""


def _scalar(value: object) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def render_default_yaml() -> str:
    lines = [HEADER]
    defaults = VidgruConfig()
    for section in VidgruConfig.model_fields:
        model: BaseModel = getattr(defaults, section)
        doc = (type(model).__doc__ or "").strip()
        lines.append(f"{section}:  # {doc}" if doc else f"{section}:")
        for key, info in type(model).model_fields.items():
            for part in textwrap.wrap(info.description or "", 100):
                lines.append(f"  # {part}")
            value = getattr(model, key)
            value = list(value) if isinstance(value, tuple) else value
            lines.append(f"  {key}: {_scalar(value)}")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_default_yaml(), end="")
