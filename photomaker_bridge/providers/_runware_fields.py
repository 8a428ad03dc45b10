"""Runware's field rules: how each unified field becomes (or stays out of) a PhotoMaker task. Pure functions
of the request, recording every adjustment on a :class:`~photomaker_bridge.providers.base.Translator`.

Reference: ``docs/protocols/runware.md`` (sections cited as §n). The adapter, ``runware.py``, holds the
translation tables and assembles the tasks from these values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import attrs

from ..errors import InvalidRequestError
from ..images import extension_of
from ..plan import UploadPlaceholder
from ..prompts import apply_trigger
from ..request import PhotoMakerRequest
from ._runware_parsing import PROVIDER
from .base import Translator, size_text, upload_placeholder

TRIGGER_WORD: Final = "rwre"  # §5.1: Runware's PhotoMaker trigger, kept where it is written
PROMPT_LENGTH: Final = (2, 300)  # §5.1 positivePrompt: "between 2 and 300 characters"
NEGATIVE_PROMPT_LENGTH: Final = (2, 3000)  # §5.1 negativePrompt
STRENGTH_RANGE: Final = (15, 50)  # §5.1 strength: integer 15–50
STEPS_RANGE: Final = (1, 100)  # §5.1 steps
CFG_SCALE_RANGE: Final = (0, 50)  # §5.1 CFGScale: float 0–50
DIMENSION_RANGE: Final = (128, 2048)  # §5.1 width/height: 128–2048, divisible by 64
DEFAULT_DIMENSION: Final = 1024  # width/height are required by Runware (§5.1); the bridge's default
MAX_RESULTS_PER_TASK: Final = 20  # §5.1 numberResults: 1–20; §7 "numberResults up to 20 per task"
MAX_SEED: Final = 2**63 - 1  # §5.1 prints 9223372036854776000, the float rendering of 2**63


def _continue_seed(seed: int, offset: int) -> int:
    """``seed + offset`` kept inside Runware's 1…2**63-1 by wrapping around to 1."""
    return (seed - 1 + offset) % MAX_SEED + 1


def _image_description(index: int, image_format: str | None, size: int) -> str:
    return f"image {index + 1} ({image_format}, {size_text(size)})"


def positive_prompt(request: PhotoMakerRequest, translator: Translator) -> str:
    """``positivePrompt``: the prompt with Runware's trigger placed as Runware does (§5.1), stripped, 2–300
    characters (else :class:`InvalidRequestError`); every change is a warning."""
    text, warnings = apply_trigger(request.prompt, TRIGGER_WORD, provider=PROVIDER)
    for warning in warnings:
        translator.warn(warning)
    # The legacy SDK strips the prompt before sending (§5.2); surrounding blanks carry no meaning.
    text = text.strip()
    low, high = PROMPT_LENGTH
    if not low <= len(text) <= high:
        raise InvalidRequestError(
            "prompt", request.prompt,
            f"Runware accepts a positivePrompt of {low}–{high} characters (about 77 tokens); "
            "shorten the prompt",
            reason=f"with the trigger word it is {len(text)} characters, over the limit of {high}")
    translator.send("prompt", "positivePrompt", text, warnings[0].reason if warnings else "")
    return text

def negative_prompt(request: PhotoMakerRequest, translator: Translator) -> str | None:
    """``negativePrompt``: 2–3000 characters; shorter is left out and longer cut, each with a warning."""
    if request.negative_prompt is None:
        translator.default("negative_prompt", "none sent")
        return None
    text = request.negative_prompt.strip()
    low, high = NEGATIVE_PROMPT_LENGTH
    if len(text) < low:
        translator.unsupported("negative_prompt", request.negative_prompt,
                               f"Runware accepts a negativePrompt of {low}–{high} characters; a shorter one "
                               "is left out")
        return None
    if len(text) > high:
        sent: str = translator.adjust("negative_prompt", "negativePrompt", request.negative_prompt, text[:high],
                                      f"Runware accepts a negativePrompt of {low}–{high} characters; sent the "
                                      f"first {high}")
        return sent
    return str(translator.send("negative_prompt", "negativePrompt", text))

def input_images(request: PhotoMakerRequest, translator: Translator, wire_field: str,
                 image_transport: str) -> tuple[list[str], list[UploadPlaceholder]]:
    """The reference images as ``wire_field`` entries (URLs and Runware UUIDs as given, local images inlined or
    uploaded once per content), and the uploads they need."""
    entries: list[str] = []
    uploads: dict[str, UploadPlaceholder] = {}
    for index, image in enumerate(request.images):
        field = f"images[{index}]"
        if image.kind == "url" and image.url is not None:
            # §5.1: "A URL pointing to the image. The image must be accessible publicly."
            entries.append(translator.send(field, f"{wire_field}[{index}]", image.url, "URL as given"))
        elif image.kind == "runware_uuid" and image.uuid is not None:
            entries.append(translator.send(field, f"{wire_field}[{index}]", image.uuid,
                                           "Runware image UUID as given"))
        elif image_transport == "inline":
            entries.append(translator.send(field, f"{wire_field}[{index}]", image.data_uri(),
                                           "inlined as a data URI"))
        else:
            if image.sha256 is None or image.data is None or image.content_type is None:
                raise InvalidRequestError(field, image.source, "a URL, a Runware image UUID or local image data")
            known = uploads.get(image.sha256)
            if known is None:
                uploads[image.sha256] = UploadPlaceholder(
                    kind="image", placeholder=upload_placeholder("image", image.sha256),
                    description=_image_description(index, image.image_format, len(image.data)),
                    image_indices=(index,), size=len(image.data), sha256=image.sha256,
                    content_type=image.content_type,
                    file_name=f"reference-{image.sha256[:12]}.{extension_of(image.image_format or 'png')}",
                    data=image.data)
            else:
                uploads[image.sha256] = attrs.evolve(known, image_indices=(*known.image_indices, index))
            placeholder = upload_placeholder("image", image.sha256)
            entries.append(translator.send(field, f"{wire_field}[{index}]", placeholder,
                                           "uploaded once with imageUpload; the placeholder is "
                                           "replaced by the returned imageUUID"))
    return entries, list(uploads.values())

def dimension(field: str, value: int | None, translator: Translator) -> int:
    """``width``/``height`` (required by Runware: 1024 when not given), clamped to 128–2048."""
    if value is None:
        translator.send(field, field, DEFAULT_DIMENSION,
                        f"Runware requires {field}; sent the default {DEFAULT_DIMENSION}")
        return DEFAULT_DIMENSION
    # PhotoMakerRequest already holds width/height to 128–2048 in steps of 64, Runware's own rule.
    return int(translator.clamp(field, field, value, *DIMENSION_RANGE, "128–2048"))

def seeds(request: PhotoMakerRequest, counts: Sequence[int], translator: Translator) -> list[int | None]:
    """One seed per task: the request's (at least 1), later tasks continuing where the previous one ended."""
    if request.seed is None:
        translator.default("seed", "random: Runware picks one and reports each image's seed")
        return [None] * len(counts)
    first = request.seed
    if first < 1:
        first = translator.adjust("seed", "seed", request.seed, 1,
                                  "Runware accepts seed ≥ 1; sent 1")
    else:
        # Runware gives image i of a task seed + i (§2.2); later tasks start where the previous one ended,
        # so the images of a split request never repeat a seed, as if it had been one task.
        note = "" if len(counts) == 1 else "later tasks continue from seed + the images before them"
        translator.send("seed", "seed", first, note)
    offsets = [sum(counts[:index]) for index in range(len(counts))]
    return [_continue_seed(first, offset) for offset in offsets]


def leave_out_initial_image(request: PhotoMakerRequest, translator: Translator) -> None:
    """Runware's PhotoMaker pages document no start image (§5.1, §5.3): ``seedImage``/``strength`` belong to
    plain imageInference, and how they combine with ``photoMaker`` settings is unknown, so nothing is guessed."""
    if request.initial_image is None:
        translator.default("initial_image", "none: generated from noise")
        translator.default("initial_image_strength", "not sent: no initial image")
        return
    reason = ("Runware documents no start image for PhotoMaker; left out (seedImage and strength are "
              "imageInference fields: pass them in provider_options['runware'] to try)")
    translator.unsupported("initial_image", request.initial_image.source, reason)
    if request.initial_image_strength is not None:
        translator.unsupported("initial_image_strength", request.initial_image_strength, reason)
