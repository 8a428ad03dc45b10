"""Eachlabs translation: a ``PhotoMakerRequest`` as create bodies of an Eachlabs PhotoMaker prediction (pure: no
network, no key).

Section numbers (§) refer to ``docs/protocols/eachlabs.md``; "seed page" to Eachlabs' own API page for
``photomaker-style`` (docs/protocols/eachlabs.md SEED). Translation tables first, then :func:`build_plan`, which
:class:`~photomaker_bridge.providers.eachlabs.EachlabsProvider` calls with its settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ..errors import InvalidRequestError
from ..images import extension_of
from ..plan import Plan, UploadPlaceholder
from ..prompts import apply_trigger
from ..request import PhotoMakerRequest
from ..styles import Style
from ._eachlabs_parsing import PROVIDER
from .base import Capability, Translator, deep_merge, size_text, split_count, upload_placeholder

__all__ = ["CAPABILITIES", "STYLE_TO_EACHLABS", "build_plan"]

# ------------------------------------------------------------------------------------------------ tables

STYLE_TO_EACHLABS: Final[Mapping[Style, str]] = {
    # The upstream enum, spelt exactly: matching is case-sensitive and "Disney Charactor" is misspelt
    # upstream (§3.2; the seed page's prose "Comic Book"/"Fantasy Art" is wrong).
    Style.NO_STYLE: "(No style)",
    Style.CINEMATIC: "Cinematic",
    Style.DISNEY_CHARACTER: "Disney Charactor",
    Style.DIGITAL_ART: "Digital Art",
    Style.PHOTOGRAPHIC: "Photographic (Default)",
    Style.FANTASY_ART: "Fantasy art",
    Style.NEONPUNK: "Neonpunk",
    Style.ENHANCE: "Enhance",
    Style.COMIC_BOOK: "Comic book",
    Style.LOWPOLY: "Lowpoly",
    Style.LINE_ART: "Line art",
}

_IMAGE_INDEX_TO_EACHLABS: Final[tuple[str, ...]] = ("input_image", "input_image2", "input_image3", "input_image4")
"""Reference image ``i`` of the request goes in this input field (§3.1)."""

_TOP_LEVEL_OPTION_KEYS: Final = frozenset({"model", "version", "webhook_url", "webhook_secret", "input"})
"""``provider_options["eachlabs"]`` keys that belong to the create body itself (§2.1); every other key is a
model input and goes in ``input``."""

# Ranges of the Cog predictor Eachlabs runs (§3.1).
_NUM_STEPS_RANGE: Final = (1, 100)
_GUIDANCE_SCALE_RANGE: Final = (1, 10)
_STYLE_STRENGTH_RANGE: Final = (15, 50)
_MAX_SEED: Final = 2_147_483_647  # np.iinfo(np.int32).max (§3.1)
_MAX_OUTPUTS_PER_PREDICTION: Final = 4
_OUTPUT_SIDE: Final = 1024  # every image is 1024×1024 (§3.3: "SDXL default 1024×1024"; §3.1 has no size input)
_VERSION: Final = "0.0.1"  # deprecated and ignored, but the seed page and skills send it (§2.1)

CAPABILITIES: Final[tuple[Capability, ...]] = (
    Capability("prompt", "prompt", "adjusted",
               "'img' exactly once, right after the class word; inserted when missing, 'rwre' renamed"),
    Capability("images", "input_image, input_image2..4", "adjusted",
               "public URLs; local images are uploaded first (POST /v1/upload/presign); no Runware UUIDs"),
    Capability("style", "style_name", "native",
               "exact upstream names: (No style), Disney Charactor (sic), Photographic (Default), ... (11 styles)"),
    Capability("style_strength", "style_strength_ratio", "native", "15–50"),
    Capability("negative_prompt", "negative_prompt", "native", "must not contain 'img'"),
    Capability("num_images", "num_outputs", "adjusted",
               "1–4 per prediction; more are split into several predictions"),
    Capability("steps", "num_steps", "adjusted", "1–100, clamped"),
    Capability("guidance_scale", "guidance_scale", "adjusted", "1–10, clamped"),
    Capability("seed", "seed", "adjusted",
               "0–2147483647 (larger seeds wrap); prediction k of a split gets seed + images before it"),
    Capability("width", None, "unsupported", "the model outputs 1024×1024"),
    Capability("height", None, "unsupported", "the model outputs 1024×1024"),
    Capability("output_format", None, "unsupported", "PNG only"),
    Capability("safety_check", "disable_safety_checker", "adjusted",
               "disable_safety_checker = not safety_check; flagged images are dropped from the output"),
    Capability("initial_image", None, "unsupported", "left out with a warning: no start image input"),
    Capability("initial_image_strength", None, "unsupported", "left out with the initial image"),
    Capability("provider_options", None, "native",
               "provider_options['eachlabs'] merged verbatim into every body: model inputs into input; model, "
               "version, webhook_url, webhook_secret at the top level"),
)
"""How each unified field reaches Eachlabs (drives ``docs/providers.md``)."""


# ------------------------------------------------------------------------------------------- translation


def build_plan(request: PhotoMakerRequest, *, model: str, target: str, strict: bool) -> Plan:
    """One create body per prediction (at most 4 images each), the uploads they need, and every adjustment.

    ``provider_options["eachlabs"]`` is merged verbatim into every body after translation: the keys
    ``model``, ``version``, ``webhook_url``, ``webhook_secret`` and ``input`` (a mapping, merged into
    ``input``) go at the top level, where Eachlabs reads them (§2.1); every other key is a model input and
    goes in ``input``. Raises :class:`InvalidRequestError` for a Runware image UUID (only Runware can
    read it) and, when ``strict``, for any adjustment.
    """
    translator = Translator(PROVIDER, strict=strict)
    model_input, uploads = _translate_images(request, translator)
    _translate_prompts(request, translator, model_input)
    _translate_numbers(request, translator, model_input)
    counts = split_count(request.num_images, _MAX_OUTPUTS_PER_PREDICTION)
    note = f"split into {len(counts)} predictions of {counts}" if len(counts) > 1 else ""
    translator.send("num_images", "num_outputs", counts[0], note)
    seeds = _translate_seed(request, translator, counts)

    options = dict(request.provider_options.get(PROVIDER, {}))
    top_options = {key: value for key, value in options.items() if key in _TOP_LEVEL_OPTION_KEYS}
    input_options = {key: value for key, value in options.items() if key not in _TOP_LEVEL_OPTION_KEYS}
    payloads: list[dict[str, Any]] = []
    images_per_payload: list[int] = []
    for index, count in enumerate(counts):
        per_prediction = dict(model_input, num_outputs=count)
        if seeds[index] is not None:
            per_prediction["seed"] = seeds[index]
        body: dict[str, Any] = {"model": model, "version": _VERSION}
        if index == 0:  # the mapping records the first prediction's values
            body["input"] = translator.options(per_prediction, input_options, "input.")
            body = translator.options(body, top_options)
        else:
            body["input"] = deep_merge(per_prediction, input_options)
            body = deep_merge(body, top_options)
        payloads.append(body)
        sent_input = body.get("input")
        sent_count = sent_input.get("num_outputs") if isinstance(sent_input, dict) else None
        valid = isinstance(sent_count, int) and not isinstance(sent_count, bool) and sent_count > 0
        images_per_payload.append(sent_count if valid and isinstance(sent_count, int) else count)
    return Plan(provider=PROVIDER, target=target, payloads=payloads,
                uploads=uploads, warnings=tuple(translator.warnings), mapping=tuple(translator.mapping),
                images_per_payload=tuple(images_per_payload))


def _translate_images(request: PhotoMakerRequest,
                      translator: Translator) -> tuple[dict[str, Any], tuple[UploadPlaceholder, ...]]:
    model_input: dict[str, Any] = {}
    indices: dict[str, list[int]] = {}
    for index, image in enumerate(request.images):
        field = f"images[{index}]"
        provider_field = _IMAGE_INDEX_TO_EACHLABS[index]
        if image.kind == "runware_uuid":
            raise InvalidRequestError(field, image.uuid, "an http(s) URL or a local image (path, bytes, data "
                                      "URI, base64)", reason="a Runware image UUID only works with runware")
        if image.url is not None:
            # Eachlabs downloads file inputs itself; a URL goes as is (§3.1).
            model_input[provider_field] = translator.send(field, provider_field, image.url)
            continue
        assert image.sha256 is not None  # local images always carry their hash
        # File inputs must be URLs (data URIs are unverified, §3.1): upload once per distinct image.
        indices.setdefault(image.sha256, []).append(index)
        model_input[provider_field] = translator.send(
            field, provider_field, upload_placeholder("image", image.sha256),
            "uploaded through /v1/upload/presign; the placeholder becomes its public_url")
    uploads = []
    for sha256, positions in indices.items():
        image = request.images[positions[0]]
        assert image.data is not None and image.image_format is not None
        which = ", ".join(str(position + 1) for position in positions)
        uploads.append(UploadPlaceholder(
            kind="image", placeholder=upload_placeholder("image", sha256),
            description=f"reference image {which} ({image.image_format}, {size_text(len(image.data))})",
            image_indices=tuple(positions), size=len(image.data), sha256=sha256,
            content_type=image.content_type or "application/octet-stream",
            file_name=f"reference-{sha256[:12]}.{extension_of(image.image_format)}", data=image.data,
        ))
    return model_input, tuple(uploads)


def _translate_prompts(request: PhotoMakerRequest, translator: Translator,
                       model_input: dict[str, Any]) -> None:
    # 'img' exactly once, right after the class word (§3.3); 'rwre' is renamed, a missing one inserted.
    prompt, warnings = apply_trigger(request.prompt, "img", provider=PROVIDER)
    for warning in warnings:
        translator.warn(warning)
    model_input["prompt"] = translator.send("prompt", "prompt", prompt)
    model_input["style_name"] = translator.send("style", "style_name", STYLE_TO_EACHLABS[request.style])
    low, high = _STYLE_STRENGTH_RANGE
    model_input["style_strength_ratio"] = translator.clamp(
        "style_strength", "style_strength_ratio", request.style_strength, low, high, f"{low}–{high}")
    if request.negative_prompt is None:
        translator.default("negative_prompt", "Eachlabs' default negative prompt (nsfw, lowres, ...)")
    else:
        # The request already refuses a trigger word in the negative prompt, which the predictor rejects.
        model_input["negative_prompt"] = translator.send("negative_prompt", "negative_prompt",
                                                         request.negative_prompt)
    if request.safety_check is None:
        translator.default("safety_check", "Eachlabs' default: the safety checker is on")
    else:
        model_input["disable_safety_checker"] = translator.send(
            "safety_check", "disable_safety_checker", not request.safety_check, "inverted")


def _translate_numbers(request: PhotoMakerRequest, translator: Translator,
                       model_input: dict[str, Any]) -> None:
    # Numbers go as JSON numbers: Eachlabs' own snippets send strings ("20"), its skills send numbers, and
    # numbers are what the schema declares (§3.1).
    if request.steps is None:
        translator.default("steps", "Eachlabs' default (20)")
    else:
        low, high = _NUM_STEPS_RANGE
        model_input["num_steps"] = translator.clamp("steps", "num_steps", request.steps, low, high,
                                                    f"{low}–{high}")
    if request.guidance_scale is None:
        translator.default("guidance_scale", "Eachlabs' default (5)")
    else:
        low, high = _GUIDANCE_SCALE_RANGE
        model_input["guidance_scale"] = translator.clamp("guidance_scale", "guidance_scale",
                                                         request.guidance_scale, low, high, f"{low}–{high}")
    for field in ("width", "height"):
        # No size input (§3.1); the model makes 1024×1024, so asking exactly that is no adjustment (as for
        # fal): strict mode treats the same request alike on both.
        value = getattr(request, field)
        if value == _OUTPUT_SIDE:
            translator.default(field, "not sent: Eachlabs' PhotoMaker makes 1024×1024 images, as asked")
        elif value is not None:
            translator.unsupported(field, value, "Eachlabs' PhotoMaker has no size input; it outputs "
                                   "1024×1024 (§3.3)")
    if request.initial_image is None:
        translator.default("initial_image", "none: generated from noise")
        translator.default("initial_image_strength", "not sent: no initial image")
    else:
        reason = "Eachlabs' PhotoMaker has no start image input (§3.1); left out"
        translator.unsupported("initial_image", request.initial_image.source, reason)
        if request.initial_image_strength is not None:
            translator.unsupported("initial_image_strength", request.initial_image_strength, reason)
    if request.output_format is None or request.output_format == "png":
        translator.default("output_format", "Eachlabs outputs PNG")
    else:
        translator.unsupported("output_format", request.output_format,
                               "Eachlabs' PhotoMaker outputs PNG only (seed page: 'Output Format: PNG')")


def _translate_seed(request: PhotoMakerRequest, translator: Translator,
                    counts: list[int]) -> list[int | None]:
    if request.seed is None:
        translator.default("seed", "random per prediction")
        return [None] * len(counts)
    seed = request.seed
    if seed > _MAX_SEED:
        # Wrapped rather than clamped, so that different large seeds stay different (§3.1: 0–2147483647).
        seed = translator.adjust("seed", "seed", request.seed, seed % (_MAX_SEED + 1),
                                 f"eachlabs accepts seed 0–{_MAX_SEED}; sent the seed modulo {_MAX_SEED + 1}")
    else:
        note = "prediction k gets seed + the images asked before it" if len(counts) > 1 else ""
        translator.send("seed", "seed", seed, note)
    # A split's predictions get different seeds, or they would all draw the same images: prediction k
    # gets the seed plus the number of images asked before it (so image i's batch starts at seed + i).
    seeds: list[int | None] = []
    before = 0
    for count in counts:
        seeds.append((seed + before) % (_MAX_SEED + 1))
        before += count
    return seeds
