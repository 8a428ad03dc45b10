"""Runware's input rules for PhotoMaker, checked the way the service checks them (runware.md §5.1).

Two request shapes are accepted: the standalone ``photoMaker`` task (images under ``inputImages``) and an
``imageInference`` task carrying a ``photoMaker`` object (images under ``photoMaker.images``, runware.md §5.3);
an ``imageInference`` without that object is plain text-to-image. A JSON ``null`` always means "use the
default": the legacy SDK sends ``"style": null`` and ``"strength": null`` when they are unset (runware.md §5.2).

Refusals follow Runware's ``invalid<Param>`` / ``missing<Param>`` naming with ``parameter`` set (runware.md §6);
the first broken rule of a task is the one reported.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

import attrs

from ._runware_errors import TaskError, error_item
from ._runware_features import FEATURE_TYPES, feature_type_problem
from ._runware_fields import Fields
from ._runware_options import RunwareOptions

__all__ = [
    "MAX_SEED",
    "OUTPUT_FORMATS",
    "OUTPUT_TYPES",
    "STYLES",
    "InferenceSpec",
    "apply_trigger_word",
    "validate_inference",
    "validate_task_uuid",
]

STYLES: tuple[str, ...] = (
    "No style", "Cinematic", "Disney Character", "Digital Art", "Photographic", "Fantasy art", "Neonpunk",
    "Enhance", "Comic book", "Lowpoly", "Line art",
)
"""PhotoMaker styles, spelled exactly as the docs list them (runware.md §5.1)."""
# The docs' "Default" line writes "No Style" while the list writes "No style" (runware.md SEED); both spellings of
# the default are accepted, every other style must match the list exactly [UNVERIFIED case rule].
_STYLE_ALIASES: dict[str, str] = {"No Style": "No style"}

OUTPUT_TYPES: tuple[str, ...] = ("URL", "base64Data", "dataURI")
OUTPUT_FORMATS: tuple[str, ...] = ("JPG", "PNG", "WEBP")
SAFETY_MODES: tuple[str, ...] = ("none", "fast", "full")
DELIVERY_METHODS: tuple[str, ...] = ("sync", "async")
MAX_SEED = 9223372036854775807
"""The docs print the seed maximum as 9223372036854776000, a float rendering of 2**63; the largest integer a
64-bit seed holds is 2**63 - 1."""
TRIGGER_WORD = "rwre"

_PHOTOMAKER_PAGE = "https://runware.ai/docs/image-inference/photomaker"
_INFERENCE_PAGE = "https://runware.ai/docs/image-inference/api-reference"
_AIR = re.compile(r"^[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+$")
_TRIGGER = re.compile(rf"\b{TRIGGER_WORD}\b", re.IGNORECASE)

# Parameters of each shape. Everything else is an unknownParameter (see RunwareOptions).
_COMMON_PARAMETERS = frozenset({
    "taskType", "taskUUID", "model", "positivePrompt", "negativePrompt", "width", "height", "steps",
    "CFGScale", "scheduler", "seed", "clipSkip", "numberResults", "outputType", "outputFormat", "outputQuality",
    "includeCost", "deliveryMethod", "webhookURL", "uploadEndpoint", "ttl", "safety", "checkNSFW",
})
_PHOTOMAKER_PARAMETERS = _COMMON_PARAMETERS | {"inputImages", "style", "strength"}
# imageInference documents many features PhotoMaker does not use; they are accepted with their type checked
# (_runware_features) so that a request the real service takes is not refused here: the fields of both official
# SDKs (runware 0.5.24 IImageInference, runware-sdk's SDXL params, runware.md §5.3).
_INFERENCE_PARAMETERS = _COMMON_PARAMETERS | {"photoMaker", "strength"} | set(FEATURE_TYPES)
_NESTED_PHOTOMAKER_PARAMETERS = frozenset({"images", "style", "strength"})
_SAFETY_PARAMETERS = frozenset({"checkContent", "mode"})


@attrs.frozen
class InferenceSpec:
    """A validated image-generation task, with every default filled in."""

    task_type: str
    """``photoMaker`` or ``imageInference``; results echo it."""
    task_uuid: str
    model: str
    uses_photomaker: bool
    """Whether identity features are on (standalone task, or ``imageInference`` with ``photoMaker``)."""
    input_images: tuple[object, ...]
    """The raw image references, resolved later against the image store."""
    input_parameter: str
    """Where the images came from: ``inputImages`` or ``photoMaker.images``."""
    style: str
    strength: int
    positive_prompt: str
    effective_prompt: str
    """The prompt as the model sees it, after the ``rwre`` trigger rule (runware.md §5.1)."""
    negative_prompt: str | None
    width: int
    height: int
    steps: int
    cfg_scale: float
    scheduler: str | None
    seed: int | None
    clip_skip: int | None
    number_results: int
    output_types: tuple[str, ...]
    output_format: str
    output_quality: int
    include_cost: bool
    delivery_method: str
    webhook_url: str | None
    upload_endpoint: str | None
    ttl: int | None
    check_nsfw: bool
    """Whether results carry ``NSFWContent`` (``checkNSFW`` or a ``safety`` check was asked for)."""


def apply_trigger_word(prompt: str) -> str:
    """PhotoMaker's trigger rule: ``rwre`` is prepended as ``"rwre, <prompt>"`` unless present anywhere.

    "The trigger word rwre can be included anywhere in your prompt. If not included, it will be automatically
    prepended" (runware.md §5.1). Whether the match is case-sensitive is [UNVERIFIED]; a whole-word match in
    any case is assumed.
    """
    if _TRIGGER.search(prompt):
        return prompt
    return f"{TRIGGER_WORD}, {prompt}"


def validate_task_uuid(task: Mapping[str, Any], options: RunwareOptions) -> str:
    """The task's ``taskUUID``: required, a UUID v4 string (runware.md §5.1)."""
    value = task.get("taskUUID")
    if value is None:
        raise TaskError(error_item("missingTaskUUID", "Missing taskUUID parameter. Each task needs a unique "
                                   "UUID v4 string.", parameter="taskUUID", value_type="string"))
    message = "Invalid value for taskUUID parameter. It must be a UUID v4 string."
    if not isinstance(value, str):
        raise TaskError(error_item("invalidTaskUUID", message, parameter="taskUUID", value_type="string"))
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise TaskError(error_item("invalidTaskUUID", message, parameter="taskUUID", value_type="string",
                                   task_uuid=value)) from None
    if str(parsed) != value.lower() or (options.require_uuid_version_4 and parsed.version != 4):
        raise TaskError(error_item("invalidTaskUUID", message, parameter="taskUUID", value_type="string",
                                   task_uuid=value))
    return value


def _model(fields: Fields, options: RunwareOptions, photomaker: bool) -> str:
    value = fields.get("model")
    if value is None:
        raise fields.missing("model", "string")
    if not isinstance(value, str) or not _AIR.match(value):
        raise fields.invalid("model", "It must be an AIR identifier such as civitai:139562@344487.", "string")
    if photomaker and value in options.non_sdxl_models:
        raise fields.invalid("model", "PhotoMaker requires an SDXL-based model.", "string")
    return value


def _images(fields: Fields, name: str) -> tuple[object, ...]:
    value = fields.get(name)
    if value is None:
        raise fields.missing(name, "array")
    # "string[] ... Min: 1, Max: 4" (runware.md §5.1); each entry's content is checked when it is resolved.
    if not isinstance(value, list) or not 1 <= len(value) <= 4:
        raise fields.invalid(name, "It must be an array of 1 to 4 images.", "array", min=1, max=4)
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise fields.invalid(name, "Each image must be a non-empty string: a UUID, a data URI, base64 "
                                       "data or a URL.", "array")
    return tuple(value)


def _output_types(fields: Fields) -> tuple[str, ...]:
    value = fields.get("outputType")
    if value is None:
        return ("URL",)
    # The docs give one value; the SDK's type also allows a list (IOutputType | List[IOutputType]), which
    # is taken to ask for several fields at once [UNVERIFIED].
    values = value if isinstance(value, list) and value else [value]
    for item in values:
        if not isinstance(item, str) or item not in OUTPUT_TYPES:
            raise fields.invalid("outputType", f"Supported values are: {', '.join(OUTPUT_TYPES)}.", "string",
                                 allowedValues=list(OUTPUT_TYPES))
    return tuple(dict.fromkeys(values))


def _safety(fields: Fields, options: RunwareOptions) -> bool:
    value = fields.get("safety")
    if value is None:
        return False
    if not isinstance(value, dict):
        raise fields.invalid("safety", "It must be an object with checkContent and mode.", "object")
    nested = Fields(value, fields.page, fields.path("safety."))
    if options.reject_unknown_parameters:
        nested.reject_unknown(_SAFETY_PARAMETERS)
    check = nested.boolean("checkContent", False)
    # "When both checkContent and mode are specified, the mode parameter takes precedence" (runware.md SEED).
    mode = nested.choice("mode", SAFETY_MODES, "fast" if check else "none")
    return mode != "none"


def _check_features(fields: Fields) -> None:
    for name in FEATURE_TYPES:
        value = fields.get(name)
        problem = None if value is None else feature_type_problem(name, value)
        if problem is not None:
            message, kind = problem
            raise fields.invalid(name, message, kind)


def validate_inference(task: Mapping[str, Any], task_uuid: str, options: RunwareOptions) -> InferenceSpec:
    """Check a ``photoMaker`` or ``imageInference`` task and fill in its defaults; raises :class:`TaskError`."""
    task_type = str(task["taskType"])
    standalone = task_type == "photoMaker"
    fields = Fields(task, _PHOTOMAKER_PAGE if standalone else _INFERENCE_PAGE)
    if options.reject_unknown_parameters:
        fields.reject_unknown(_PHOTOMAKER_PARAMETERS if standalone else _INFERENCE_PARAMETERS)
    if not standalone:
        _check_features(fields)
        # imageInference's own strength is the image-to-image strength, 0 to 1 (runware-sdk types it float).
        fields.number("strength", 0, 1, 0.8)

    nested_value = None if standalone else task.get("photoMaker")
    uses_photomaker = standalone or nested_value is not None
    model = _model(fields, options, uses_photomaker)

    if standalone:
        identity, images_name = fields, "inputImages"
    elif nested_value is not None:
        if not isinstance(nested_value, dict):
            raise fields.invalid("photoMaker", "It must be an object with images, style and strength.", "object")
        # Nested under imageInference the images key is "images", not "inputImages" (runware.md §5.3).
        identity, images_name = Fields(nested_value, _PHOTOMAKER_PAGE, "photoMaker."), "images"
        if options.reject_unknown_parameters:
            identity.reject_unknown(_NESTED_PHOTOMAKER_PARAMETERS)
    else:
        identity, images_name = None, ""

    if identity is not None:
        images = _images(identity, images_name)
        style = identity.choice("style", STYLES, "No style", _STYLE_ALIASES)
        strength = identity.integer("strength", 15, 50, 15)
        assert strength is not None
    else:
        images, style, strength = (), "No style", 15

    prompt_limit = options.photomaker_prompt_max_length if uses_photomaker else options.plain_prompt_max_length
    prompt = fields.text("positivePrompt", required=True, min_length=2, max_length=prompt_limit,
                         type_message="Positive prompt must be a string value.")
    assert prompt is not None
    negative = fields.text("negativePrompt", min_length=2, max_length=3000,
                           type_message="Negative prompt must be a string value.")
    # Width and height use the codes of the official CLI's fixture: invalidCustomHeight with
    # min/max/multiplier (runware.md §6); that these are the exact codes for photoMaker is [UNVERIFIED].
    width = fields.integer("width", 128, 2048, None, multiple_of=64, code="invalidCustomWidth", required=True)
    height = fields.integer("height", 128, 2048, None, multiple_of=64, code="invalidCustomHeight", required=True)
    steps = fields.integer("steps", 1, 100, 20)
    cfg_scale = fields.number("CFGScale", 0, 50, 7.0)
    scheduler = fields.text("scheduler")
    if scheduler is not None and not scheduler.strip():
        raise fields.invalid("scheduler", "It must name a scheduler.", "string")
    seed = fields.integer("seed", 1, MAX_SEED, None)
    clip_skip = fields.integer("clipSkip", 0, 2, None)
    number_results = fields.integer("numberResults", 1, 20, 1)
    output_types = _output_types(fields)
    output_format = fields.choice("outputFormat", OUTPUT_FORMATS, "JPG")
    output_quality = fields.integer("outputQuality", 20, 99, 95)
    include_cost = fields.boolean("includeCost", False)
    # [CONFLICT] deliveryMethod is "Required: true, Default: sync" (runware.md §4.1): optional, sync by default.
    delivery_method = fields.choice("deliveryMethod", DELIVERY_METHODS, "sync")
    webhook_url = fields.url("webhookURL")
    upload_endpoint = fields.url("uploadEndpoint")
    ttl = fields.integer("ttl", 60, None, None)
    check_nsfw = fields.boolean("checkNSFW", False)
    safety = _safety(fields, options)
    assert width is not None and height is not None and steps is not None and number_results is not None
    assert output_quality is not None

    return InferenceSpec(
        task_type=task_type, task_uuid=task_uuid, model=model, uses_photomaker=uses_photomaker,
        input_images=images, input_parameter=identity.path(images_name) if identity is not None else "",
        style=style, strength=strength, positive_prompt=prompt,
        effective_prompt=apply_trigger_word(prompt) if uses_photomaker else prompt,
        negative_prompt=negative, width=width, height=height, steps=steps, cfg_scale=cfg_scale,
        scheduler=scheduler, seed=seed, clip_skip=clip_skip, number_results=number_results,
        output_types=output_types, output_format=output_format, output_quality=output_quality,
        include_cost=include_cost, delivery_method=delivery_method, webhook_url=webhook_url,
        upload_endpoint=upload_endpoint, ttl=ttl, check_nsfw=check_nsfw or safety,
    )
