"""The Eachlabs PhotoMaker models and their input schema, as the Eachlabs emulator enforces it.

Written from the protocol reference (eachlabs.md §3) on purpose, and never from the
library's own translation tables: if the library sends something Eachlabs would refuse, the emulator must
refuse it too.

Ranges and the style list come from the Cog predictor Eachlabs runs (TencentARC ``predict.py``, eachlabs.md
§3.1/§3.2); defaults and which fields are required come from Eachlabs' own model pages.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from typing import Literal

import attrs

__all__ = [
    "DEFAULT_NEGATIVE_PROMPT",
    "DEFAULT_PROMPT",
    "IMAGE_FIELDS",
    "MAX_SEED",
    "MODELS",
    "STYLE_NAMES",
    "InputRejected",
    "ModelSpec",
    "PhotoMakerInput",
    "validate_input",
]

STYLE_NAMES: tuple[str, ...] = (
    "(No style)",
    "Cinematic",
    "Disney Charactor",  # sic: the upstream enum is misspelt and matching is exact (eachlabs.md §3.2).
    "Digital Art",
    "Photographic (Default)",
    "Fantasy art",
    "Neonpunk",
    "Enhance",
    "Comic book",
    "Lowpoly",
    "Line art",
)
"""The 11 ``style_name`` values, exactly as spelt upstream and in the upstream order (eachlabs.md §3.2)."""

DEFAULT_PROMPT = "A photo of a person img"
"""``prompt`` when the caller sends none (eachlabs.md §3.1)."""

DEFAULT_NEGATIVE_PROMPT = (
    "nsfw, lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, fewer digits, cropped, "
    "worst quality, low quality, normal quality, jpeg artifacts, signature, watermark, username, blurry"
)
"""``negative_prompt`` when the caller sends none (eachlabs.md §3.1)."""

IMAGE_FIELDS: tuple[str, ...] = ("input_image", "input_image2", "input_image3", "input_image4")
"""The identity-photo inputs, in the order the predictor stacks them (eachlabs.md §3.1)."""

MAX_SEED = 2_147_483_647
"""``np.iinfo(np.int32).max``, the upper bound of ``seed`` in the predictor (eachlabs.md §3.1)."""


@attrs.frozen
class ModelSpec:
    """One Eachlabs model slug the emulator serves."""

    slug: str
    """The ``model`` value of a create request."""
    title: str
    """Human-readable name."""
    default_style: str
    """``style_name`` when the caller sends none; the two slugs differ here and only here (eachlabs.md §3)."""
    model_id: str
    """A stable UUID standing in for Eachlabs' internal model id (it appears in failure envelopes, §2.6)."""
    version: str = "0.0.1"
    """The only version Eachlabs reports for these models (eachlabs.md §2.1, §3)."""


def _model(slug: str, title: str, default_style: str) -> ModelSpec:
    model_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://api.eachlabs.ai/v1/model?slug={slug}"))
    return ModelSpec(slug=slug, title=title, default_style=default_style, model_id=model_id)


MODELS: Mapping[str, ModelSpec] = {
    "photomaker": _model("photomaker", "Photomaker", "Photographic (Default)"),
    "photomaker-style": _model("photomaker-style", "Photomaker Style", "(No style)"),
}
"""The slugs the emulator knows; any other ``model`` is answered like an unknown model (eachlabs.md §2.3)."""


class InputRejected(ValueError):
    """The ``input`` object breaks the model schema; ``problems`` lists each broken rule."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems

    @property
    def details(self) -> str:
        """All problems in one human-readable line (the ``details`` of the 400 body, eachlabs.md §6.3)."""
        return "; ".join(self.problems)


@attrs.frozen
class PhotoMakerInput:
    """A validated ``input`` object, with defaults filled in and numeric strings converted."""

    input_images: tuple[tuple[str, str], ...]
    """``(field name, URL)`` of each non-empty image input, in predictor order."""
    prompt: str
    style_name: str
    negative_prompt: str
    num_steps: int
    style_strength_ratio: float
    num_outputs: int
    guidance_scale: float
    seed: int | None
    disable_safety_checker: bool


NumberKind = Literal["integer", "number"]

# A decimal number the way JSON writes one. Python's float() would also take "nan", "inf" and "1_000",
# which no JSON-schema validator treats as numbers.
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")


def _bound(limit: float) -> str:
    return str(int(limit)) if float(limit).is_integer() else str(limit)


def _number(name: str, value: object, kind: NumberKind, minimum: float, maximum: float,
            problems: list[str]) -> int | float | None:
    """Check one numeric input; numeric strings such as ``"20"`` count as numbers.

    Eachlabs' generated snippets send numbers as strings (``"num_steps": "20"``, the seed page) while its
    agent skills send real numbers, so both must pass (eachlabs.md §3.1).
    """
    number: int | float
    if isinstance(value, bool):
        # JSON true/false are not numbers, although Python's bool is an int.
        problems.append(f"{name}: expected {kind}, got boolean")
        return None
    if isinstance(value, str):
        text = value.strip()
        if kind == "integer" and _INTEGER.fullmatch(text):
            number = int(text)
        elif _DECIMAL.fullmatch(text):
            number = float(text)
        else:
            problems.append(f"{name}: expected {kind}, got non-numeric string {value!r}")
            return None
    elif isinstance(value, int | float):
        number = value
    else:
        problems.append(f"{name}: expected {kind}, got {type(value).__name__}")
        return None
    if isinstance(number, float):
        if not math.isfinite(number):
            problems.append(f"{name}: expected a finite {kind}, got {value!r}")
            return None
        if kind == "integer":
            if not number.is_integer():
                problems.append(f"{name}: expected integer, got {value!r}")
                return None
            number = int(number)
    if number < minimum:
        problems.append(f"{name}: {value!r} is less than the minimum of {_bound(minimum)}")
        return None
    if number > maximum:
        problems.append(f"{name}: {value!r} is greater than the maximum of {_bound(maximum)}")
        return None
    return number if kind == "integer" else float(number)


def _text(name: str, value: object, default: str, problems: list[str]) -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        problems.append(f"{name}: expected string, got {type(value).__name__}")
        return default
    return value


def _present(value: object) -> bool:
    # The predictor keeps only the non-empty image inputs ("if maybe_image:"), and a JSON null means "not
    # given", so both null and "" count as absent (eachlabs.md §3.1).
    return value is not None and value != ""


def validate_input(model: ModelSpec, raw: Mapping[str, object]) -> PhotoMakerInput:
    """Check ``raw`` against the §3.1 input table; raise :class:`InputRejected` listing every violation.

    Unknown keys are ignored, the way the upstream predictor ignores inputs it does not declare.
    """
    problems: list[str] = []
    images: list[tuple[str, str]] = []
    for name in IMAGE_FIELDS:
        value = raw.get(name)
        if not _present(value):
            if name == "input_image":
                problems.append("input_image: is required")
            continue
        if not isinstance(value, str):
            problems.append(f"{name}: expected string (an image URL), got {type(value).__name__}")
            continue
        images.append((name, value))

    prompt = _text("prompt", raw.get("prompt"), DEFAULT_PROMPT, problems)
    negative_prompt = _text("negative_prompt", raw.get("negative_prompt"), DEFAULT_NEGATIVE_PROMPT, problems)

    style_name = model.default_style
    raw_style = raw.get("style_name")
    if raw_style is not None:
        if isinstance(raw_style, str) and raw_style in STYLE_NAMES:
            style_name = raw_style
        else:
            # Case matters: the seed page's prose says "Comic Book", the enum says "Comic book" (§3.2).
            problems.append(f"style_name: {raw_style!r} is not one of: " + ", ".join(STYLE_NAMES))

    def number(name: str, kind: NumberKind, minimum: float, maximum: float, default: float) -> float:
        """The checked value of an optional numeric input, or its default."""
        value = raw.get(name)
        if value is None:
            return default
        checked = _number(name, value, kind, minimum, maximum, problems)
        return default if checked is None else checked

    num_steps = int(number("num_steps", "integer", 1, 100, 20))
    style_strength_ratio = float(number("style_strength_ratio", "number", 15, 50, 20))
    num_outputs = int(number("num_outputs", "integer", 1, 4, 1))
    guidance_scale = float(number("guidance_scale", "number", 1, 10, 5))

    seed: int | None = None
    raw_seed = raw.get("seed")
    if raw_seed is not None:
        checked_seed = _number("seed", raw_seed, "integer", 0, MAX_SEED, problems)
        seed = None if checked_seed is None else int(checked_seed)

    disable_safety_checker = False
    raw_disable = raw.get("disable_safety_checker")
    if raw_disable is not None:
        # [UNVERIFIED] Only real booleans: every source sends `false`, never a string (eachlabs.md §3.1).
        if isinstance(raw_disable, bool):
            disable_safety_checker = raw_disable
        else:
            problems.append(f"disable_safety_checker: expected boolean, got {type(raw_disable).__name__}")

    if problems:
        raise InputRejected(problems)
    return PhotoMakerInput(
        input_images=tuple(images),
        prompt=prompt,
        style_name=style_name,
        negative_prompt=negative_prompt,
        num_steps=num_steps,
        style_strength_ratio=style_strength_ratio,
        num_outputs=num_outputs,
        guidance_scale=guidance_scale,
        seed=seed,
        disable_safety_checker=disable_safety_checker,
    )
