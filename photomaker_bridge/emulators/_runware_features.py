"""The ``imageInference`` feature parameters PhotoMaker does not use, checked for their documented JSON type.

Both official SDKs send them (runware.md §5.3): the legacy ``runware`` 0.5.24 ``IImageInference`` fields, and
the new ``runware-sdk`` generated SDXL parameters (``types/task_map.py``, e.g. ``routing``, ``hiresFix``). The
emulator does not run the features, but a request the real service would refuse for a wrong type must be
refused here too, so each one's type is checked. Their inner structure is not documented in the sources this
project can cite [UNVERIFIED]; only the outer type is enforced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["FEATURE_TYPES", "feature_type_problem"]


def _is_object(value: Any) -> bool:
    return isinstance(value, dict)


def _is_array(value: Any) -> bool:
    return isinstance(value, list)


def _is_string(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_boolean(value: Any) -> bool:
    return isinstance(value, bool)


def _is_true_or_object(value: Any) -> bool:
    # runware-sdk types it `Literal[True] | dict[str, object]`: `true` turns the default fix on.
    return value is True or isinstance(value, dict)


_CHECKS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "object": ("an object", _is_object),
    "array": ("an array", _is_array),
    "string": ("a non-empty string", _is_string),
    "number": ("a number", _is_number),
    "integer": ("an integer", _is_integer),
    "boolean": ("a boolean", _is_boolean),
    "true|object": ("true or an object", _is_true_or_object),
}

FEATURE_TYPES: Mapping[str, str] = {
    # runware-sdk SDXL params and ImageInferenceParams
    "routing": "object", "hiresFix": "true|object", "advancedFeatures": "object", "acceleratorOptions": "object",
    "outpaint": "object", "refiner": "object", "ultralytics": "object", "inputs": "object",
    "lora": "array", "controlNet": "array", "ipAdapters": "array", "embeddings": "array",
    "vae": "string", "promptWeighting": "string", "maskMargin": "integer",
    # legacy runware 0.5.24 IImageInference
    "instantID": "object", "acePlusPlus": "object", "puLID": "object", "providerSettings": "object",
    "settings": "object", "lycoris": "array", "referenceImages": "array", "seedImage": "string",
    "maskImage": "string", "acceleration": "string", "resolution": "string", "upscaleFactor": "number",
    "useCache": "boolean",
}
"""Each feature parameter and its JSON type (``true|object``: ``true`` or an object)."""

PROMPT_WEIGHTINGS: tuple[str, ...] = ("compel", "sdEmbeds")
"""``promptWeighting`` values (runware-sdk ``Literal['compel', 'sdEmbeds']``, legacy ``EPromptWeighting``)."""


def feature_type_problem(name: str, value: Any) -> tuple[str, str] | None:
    """``(message, type)`` when ``value`` has the wrong type for feature ``name``; ``None`` when it is fine."""
    kind = FEATURE_TYPES.get(name)
    if kind is None:
        return None
    description, check = _CHECKS[kind]
    if not check(value):
        return f"It must be {description}.", kind
    if name == "promptWeighting" and value not in PROMPT_WEIGHTINGS:
        return f"Supported values are: {', '.join(PROMPT_WEIGHTINGS)}.", kind
    return None
