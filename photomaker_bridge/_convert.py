"""The one cattrs converter between our values and JSON-ready dicts.

Strict at our own edge (style-guide rule 10): unknown keys are refused. ``Decimal`` travels as a string (no
float rounding of costs), ``bytes`` as base64, datetimes as ISO 8601, a reference image as the string that
loads it back (path, URL, UUID or data URI).
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs
import cattrs

from .errors import InvalidRequestError
from .request import PhotoMakerRequest, ReferenceImage

__all__ = ["converter", "structure_request"]


def _make_converter() -> cattrs.Converter:
    made = cattrs.Converter(forbid_extra_keys=True)
    made.register_unstructure_hook(Decimal, str)
    made.register_structure_hook(Decimal, lambda value, _: Decimal(str(value)))
    made.register_unstructure_hook(bytes, lambda value: base64.b64encode(value).decode("ascii"))
    made.register_structure_hook(bytes, lambda value, _: base64.b64decode(value))
    made.register_unstructure_hook(datetime.datetime, lambda value: value.isoformat())
    made.register_structure_hook(datetime.datetime, lambda value, _: datetime.datetime.fromisoformat(value))
    made.register_unstructure_hook(ReferenceImage, lambda image: image.serialize())
    made.register_structure_hook(ReferenceImage, lambda value, _: ReferenceImage.load(value))
    made.register_structure_hook(PhotoMakerRequest, lambda value, _: structure_request(value))
    return made


converter = _make_converter()
"""The package's converter. ``converter.unstructure(value)`` gives JSON-ready data; ``structure`` reverses it."""

_REQUEST_FIELDS = {field.name for field in attrs.fields(PhotoMakerRequest)}
_REQUIRED = {field.name for field in attrs.fields(PhotoMakerRequest) if field.default is attrs.NOTHING}


def structure_request(value: Any) -> PhotoMakerRequest:
    """A :class:`PhotoMakerRequest` from a dict, refusing unknown or missing keys by name."""
    if not isinstance(value, Mapping):
        raise InvalidRequestError("request", value, "a mapping of field names to values")
    for key in value:
        if key not in _REQUEST_FIELDS:
            raise InvalidRequestError(str(key), value[key], "known fields: " + ", ".join(sorted(_REQUEST_FIELDS)),
                                      reason="unknown field")
    for key in sorted(_REQUIRED - set(value)):
        raise InvalidRequestError(key, None, "this field is required", reason="missing")
    return PhotoMakerRequest(**dict(value))
