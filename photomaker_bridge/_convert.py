"""The one cattrs converter between our values and JSON-ready dicts.

Strict at our own edge: unknown keys are refused. ``Decimal`` travels as a string (no
float rounding of costs), ``bytes`` as base64, datetimes as ISO 8601, a reference image as the string that
loads it back (path, URL, UUID or data URI).

The converter knows no type of ours: each module registers the hooks of its own types where they live
(``request.py`` for reference images and requests), so this module imports none of them and no import circle
runs through it.
"""

from __future__ import annotations

import base64
import datetime
from decimal import Decimal

import cattrs

__all__ = ["converter"]


def _make_converter() -> cattrs.Converter:
    made = cattrs.Converter(forbid_extra_keys=True)
    made.register_unstructure_hook(Decimal, str)
    made.register_structure_hook(Decimal, lambda value, _: Decimal(str(value)))
    made.register_unstructure_hook(bytes, lambda value: base64.b64encode(value).decode("ascii"))
    made.register_structure_hook(bytes, lambda value, _: base64.b64decode(value))
    made.register_unstructure_hook(datetime.datetime, lambda value: value.isoformat())
    made.register_structure_hook(datetime.datetime, lambda value, _: datetime.datetime.fromisoformat(value))
    return made


converter = _make_converter()
"""The package's converter. ``converter.unstructure(value)`` gives JSON-ready data; ``structure`` reverses it."""
