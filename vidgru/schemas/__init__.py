"""The JSON Schema every record follows, whichever sink carries it (``event.schema.json`` beside this file).

Example::

    from vidgru.schemas import validate_record
    validate_record(json.loads(line))   # raises jsonschema.ValidationError if it does not fit
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker


@functools.cache
def event_schema() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("event.schema.json").read_text(encoding="utf-8"))


@functools.cache
def _validator() -> Draft202012Validator:
    schema = event_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def validate_record(record: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``record`` is not a valid vidgru record."""
    _validator().validate(record)
