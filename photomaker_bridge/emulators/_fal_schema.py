"""The ``fal-ai/photomaker`` input schema, checked the way fal's FastAPI/pydantic app checks it.

This module encodes fal's documented rules on its own (fal.md §4.1, fal.md SEED3): it must never import the
library's translation code, so that a mistake there shows up as a rejected request.

All field errors are collected in one pass, in declaration order, as FastAPI's ``detail`` list
(fal.md §1.6). The wording follows pydantic v1 (``"ensure this value is less than or equal to 4"``,
``value_error.number.not_le``, ``ctx.limit_value``), the only form fal.md shows; whether the live app
speaks pydantic v1 or v2 is [UNVERIFIED] (fal.md §1.6).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Literal

import attrs

__all__ = [
    "BASE_PIPELINES",
    "FIELD_NAMES",
    "STYLES",
    "TRIGGER_WORD",
    "PhotoMakerInput",
    "ValidationIssue",
    "json_decode_issue",
    "trigger_word_issue",
    "validate_input",
]

ValidationIssue = dict[str, Any]
"""One entry of a FastAPI ``detail`` list: ``{"loc", "msg", "type"}`` plus ``ctx`` when there is context."""

STYLES: tuple[str, ...] = (
    "(No style)", "Cinematic", "Disney Character", "Digital Art", "Photographic", "Fantasy art",
    "Neonpunk", "Enhance", "Comic book", "Lowpoly", "Line art",
)
"""``StyleEnum`` of fal-ai/photomaker, exact spellings (fal.md §4.1, fal.md SEED3)."""

BASE_PIPELINES: tuple[str, ...] = ("photomaker", "photomaker-style")
"""``BasePipelineEnum`` of fal-ai/photomaker (fal.md §4.1)."""

TRIGGER_WORD = "img"
"""The PhotoMaker trigger word the prompt must contain exactly once (fal.md §4.2, TencentARC pipeline)."""

# Whole word, case-sensitive. TencentARC adds "img" to the CLIP tokenizer as an added token that is split out
# of the raw text before lower-casing, so "IMG" is not the trigger; whether a substring such as "imgur" would
# count is [UNVERIFIED] (fal.md §4.2) — the brief asks for whole words, which is the rule users are taught.
_TRIGGER_PATTERN = re.compile(rf"(?<![0-9A-Za-z_]){TRIGGER_WORD}(?![0-9A-Za-z_])")

FieldKind = Literal["str", "int", "float", "enum"]


@attrs.frozen
class _Field:
    name: str
    kind: FieldKind
    required: bool = False
    default: object = None
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()


# Declaration order of the seed's schema: pydantic reports errors in this order.
_FIELDS: tuple[_Field, ...] = (
    _Field("image_archive_url", "str", required=True),
    _Field("prompt", "str", required=True),
    _Field("base_pipeline", "enum", default="photomaker", choices=BASE_PIPELINES),
    _Field("initial_image_url", "str", nullable=True),
    _Field("initial_image_strength", "float", default=0.5, minimum=0, maximum=1),
    _Field("style", "enum", default="Photographic", choices=STYLES),
    _Field("negative_prompt", "str", default=""),
    _Field("num_inference_steps", "int", default=50, minimum=20, maximum=100),
    _Field("style_strength", "int", default=20, minimum=15, maximum=50),
    _Field("num_images", "int", default=1, minimum=1, maximum=4),
    _Field("guidance_scale", "float", default=5.0, minimum=0.1, maximum=10),
    _Field("seed", "int", nullable=True),
)

FIELD_NAMES: tuple[str, ...] = tuple(field.name for field in _FIELDS)
"""Every input field of fal-ai/photomaker, in schema order."""


@attrs.frozen
class PhotoMakerInput:
    """A payload that passed the schema, with every default filled in."""

    image_archive_url: str
    prompt: str
    base_pipeline: str
    initial_image_url: str | None
    initial_image_strength: float
    style: str
    negative_prompt: str
    num_inference_steps: int
    style_strength: int
    num_images: int
    guidance_scale: float
    seed: int | None


def _issue(name: str | None, message: str, kind: str, context: Mapping[str, object] | None = None
           ) -> ValidationIssue:
    issue: ValidationIssue = {"loc": ["body"] if name is None else ["body", name], "msg": message, "type": kind}
    if context is not None:
        issue["ctx"] = dict(context)
    return issue


def _limit_text(limit: float) -> str:
    # pydantic v1 prints the declared constraint as written: ge=0 -> "0", ge=0.1 -> "0.1".
    return f"{limit:g}"


def _coerce(field: _Field, value: object, strict: bool) -> tuple[object, ValidationIssue | None]:
    """The value pydantic would keep, or the error it would report for a wrong type.

    ``strict`` refuses what a correct client never sends (booleans or strings for numbers, numbers for
    strings, fractional numbers for integers). With ``strict=False`` the pydantic v1 coercions apply
    (``"50"`` and ``50.7`` become ``50``); the real service most likely coerces [UNVERIFIED].
    """
    name = field.name
    if field.kind in ("str", "enum"):
        if isinstance(value, str):
            return value, None
        if not strict and field.kind == "str" and isinstance(value, int | float) and not isinstance(value, bool):
            return str(value), None
        if field.kind == "enum":
            return None, _enum_issue(field)
        return None, _issue(name, "str type expected", "type_error.str")
    if field.kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value, None
        if isinstance(value, float) and math.isfinite(value) and (value.is_integer() or not strict):
            return int(value), None
        if not strict and isinstance(value, bool | str):
            try:
                return int(value), None
            except ValueError:
                pass
        return None, _issue(name, "value is not a valid integer", "type_error.integer")
    # float
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value), None
    if not strict and isinstance(value, bool | str):
        try:
            return float(value), None
        except ValueError:
            pass
    return None, _issue(name, "value is not a valid float", "type_error.float")


def _enum_issue(field: _Field) -> ValidationIssue:
    permitted = ", ".join(repr(choice) for choice in field.choices)
    return _issue(field.name, f"value is not a valid enumeration member; permitted: {permitted}",
                  "type_error.enum", {"enum_values": list(field.choices)})


def _check(field: _Field, value: object) -> ValidationIssue | None:
    if field.kind == "enum" and value not in field.choices:
        return _enum_issue(field)
    if isinstance(value, int | float) and not isinstance(value, bool):
        # Written as "not (x >= limit)" so that NaN fails both bounds, as it does in pydantic.
        if field.minimum is not None and not value >= field.minimum:
            return _issue(field.name, f"ensure this value is greater than or equal to {_limit_text(field.minimum)}",
                          "value_error.number.not_ge", {"limit_value": field.minimum})
        if field.maximum is not None and not value <= field.maximum:
            return _issue(field.name, f"ensure this value is less than or equal to {_limit_text(field.maximum)}",
                          "value_error.number.not_le", {"limit_value": field.maximum})
    return None


def validate_input(payload: object, *, strict: bool = True, forbid_extra: bool = False
                   ) -> PhotoMakerInput | list[ValidationIssue]:
    """Check a submitted body against the fal-ai/photomaker schema.

    Returns the input with defaults filled in, or every error found (FastAPI ``detail`` entries). Unknown
    fields are ignored as pydantic does by default, unless ``forbid_extra`` (then ``value_error.extra``).
    """
    if not isinstance(payload, dict):
        return [_issue(None, "value is not a valid dict", "type_error.dict")]
    issues: list[ValidationIssue] = []
    values: dict[str, object] = {}
    for field in _FIELDS:
        if field.name not in payload:
            if field.required:
                issues.append(_issue(field.name, "field required", "value_error.missing"))
            values[field.name] = field.default
            continue
        raw = payload[field.name]
        if raw is None:
            if field.nullable:
                values[field.name] = None
            else:
                issues.append(_issue(field.name, "none is not an allowed value", "type_error.none.not_allowed"))
            continue
        value, issue = _coerce(field, raw, strict)
        issue = issue or _check(field, value)
        if issue is not None:
            issues.append(issue)
        values[field.name] = value
    if forbid_extra:
        issues.extend(_issue(str(name), "extra fields not permitted", "value_error.extra")
                      for name in payload if name not in FIELD_NAMES)
    if issues:
        return issues
    return PhotoMakerInput(**values)  # type: ignore[arg-type]


def json_decode_issue(body: bytes) -> ValidationIssue | None:
    """FastAPI's answer to a body that is not JSON, or ``None`` when it parses."""
    try:
        json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        if isinstance(error, UnicodeDecodeError):
            return {"loc": ["body"], "msg": "body is not valid UTF-8", "type": "value_error.jsondecode"}
        return {"loc": ["body", error.pos], "msg": str(error), "type": "value_error.jsondecode",
                "ctx": {"msg": error.msg, "doc": error.doc, "pos": error.pos, "lineno": error.lineno,
                        "colno": error.colno}}
    return None


def trigger_word_issue(prompt: str) -> ValidationIssue | None:
    """The error PhotoMaker raises unless the prompt holds the trigger word exactly once.

    TencentARC's pipeline raises ``ValueError`` when the trigger appears zero or several times (fal.md §4.2);
    how fal maps it is [UNVERIFIED], emulated as a 422 entry on ``prompt``.
    """
    count = len(_TRIGGER_PATTERN.findall(prompt))
    if count == 1:
        return None
    message = (f"PhotoMaker currently does not support multiple trigger words in a single prompt. "
               f"Trigger word: {TRIGGER_WORD}, Prompt: {prompt}.")
    return _issue("prompt", message, "value_error", {"trigger_word": TRIGGER_WORD, "count": count})
