"""fal translation: a ``PhotoMakerRequest`` as ``fal-ai/photomaker`` arguments (pure: no network, no key).

Reference: ``docs/protocols/fal.md`` (sections cited as §n). Translation tables first, then
:func:`build_plan`, which :class:`~photomaker_bridge.providers.fal.FalProvider` calls with its settings.

Decisions the reference leaves open:

* **Reference photos** go to fal as one zip archive uploaded to fal storage (§3.3: a data-URI zip is
  reportedly refused). The plan only describes it (its size is computed, its cache key is made of the photos'
  own SHA-256s): the archive is built when the upload cache misses, and dropped once uploaded. Only local
  photos (paths, bytes, data URIs, base64) can be zipped: a photo given as a URL is refused with
  :class:`~photomaker_bridge.InvalidRequestError` rather than downloaded, because
  translation does no network I/O and the bridge never fetches arbitrary user URLs.
  Pass the bytes, or your own archive as ``provider_options={"fal": {"image_archive_url": ...}}`` (then the
  photos are not sent at all). A Runware image UUID only means something to Runware: refused too.
* **WEBP** photos are refused: fal's archive is only known to take PNG and JPEG (§3.4), and converting
  would need Pillow, which the library does not depend on.
* **The initial image** (image-to-image, §4.1 ``initial_image_url``) is a single file: a URL goes as given,
  a local image is uploaded to fal storage like the archive (once per content per client).
* **More than 4 images** are split into submissions of at most 4 (``num_images`` 1–4, §4.1). With a seed,
  submission *k* gets ``seed + (images before it)`` so that no two submissions repeat an image (the
  Runware convention: image *i* has seed ``seed + i``); without one fal draws a seed per submission.
* **Width/height** are not inputs of fal-ai/photomaker (it makes 1024×1024, fal.md SEED3 output): any other
  size is a warning. **output_format** other than PNG and **safety_check** are warnings too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import attrs
import cattrs

from ..errors import InvalidRequestError
from ..images import ZIP_MAX_BYTES, ImageFormat, extension_of, zip_digest, zip_images, zip_size
from ..plan import Plan, UploadPlaceholder
from ..prompts import apply_trigger
from ..request import PhotoMakerRequest, ReferenceImage
from ..styles import Style
from .base import Capability, Translator, deep_merge, size_text, split_count, upload_placeholder

__all__ = ["CAPABILITIES", "STYLE_TO_FAL", "Pipeline", "build_plan"]

# -- translation tables (fal.md §4.1; fal.md SEED3 StyleEnum, exact spellings) -------------------------------

STYLE_TO_FAL: Final[Mapping[Style, str]] = {
    Style.NO_STYLE: "(No style)",
    Style.CINEMATIC: "Cinematic",
    Style.DISNEY_CHARACTER: "Disney Character",
    Style.DIGITAL_ART: "Digital Art",
    Style.PHOTOGRAPHIC: "Photographic",
    Style.FANTASY_ART: "Fantasy art",
    Style.NEONPUNK: "Neonpunk",
    Style.ENHANCE: "Enhance",
    Style.COMIC_BOOK: "Comic book",
    Style.LOWPOLY: "Lowpoly",
    Style.LINE_ART: "Line art",
}

_OUTPUT_FORMAT_TO_FAL: Final[Mapping[str, str | None]] = {"png": "png", "jpeg": None, "webp": None}
"""fal-ai/photomaker has no output format input and always answers PNG (fal.md SEED3 output example)."""

_STEPS_RANGE: Final = (20, 100)  # num_inference_steps, default 50
_GUIDANCE_RANGE: Final = (0.1, 10.0)  # guidance_scale, default 5
_STYLE_STRENGTH_RANGE: Final = (15, 50)  # style_strength, default 20
_MAX_IMAGES_PER_CALL: Final = 4  # num_images 1-4
_OUTPUT_SIDE: Final = 1024  # every fal-ai/photomaker image is 1024x1024
_SEED_MODULUS: Final = 2**63  # submission seeds wrap inside the request's own seed range
_TRIGGER: Final = "img"  # after the class word: "a man img" (fal.md §4.1, TencentARC)
_ZIP_CONTENT_TYPE: Final = "application/zip"
_ZIPPABLE_FORMATS: Final = frozenset({"png", "jpeg"})  # fal.md §3.4: WEBP in the archive is unknown

Pipeline = Literal["photomaker", "photomaker-style"]


@attrs.frozen(kw_only=True)
class _PhotoMakerArguments:
    """The ``fal-ai/photomaker`` input, in the schema's order (fal.md SEED3); unset optional fields are left out
    so that fal applies its own defaults."""

    image_archive_url: str
    prompt: str
    base_pipeline: str
    initial_image_url: str | None = None
    initial_image_strength: float | None = None
    style: str
    negative_prompt: str | None = None
    num_inference_steps: int | None = None
    style_strength: int
    num_images: int
    guidance_scale: float | None = None
    seed: int | None = None


_WIRE: Final = cattrs.Converter(omit_if_default=True)


def _arguments_json(arguments: _PhotoMakerArguments) -> dict[str, Any]:
    """The arguments as JSON, keys in the schema's order (cattrs puts fields it may omit last)."""
    unstructured: dict[str, Any] = _WIRE.unstructure(arguments)
    return {field.name: unstructured[field.name] for field in attrs.fields(_PhotoMakerArguments)
            if field.name in unstructured}




CAPABILITIES: Final[tuple[Capability, ...]] = (
    Capability("prompt", "prompt", "adjusted",
               "'img' exactly once, right after the class word; inserted when missing, 'rwre' renamed, each "
               "with a warning"),
    Capability("images", "image_archive_url", "adjusted",
               "1–4 local PNG/JPEG photos in one zip, built and uploaded to fal storage once per client (keyed by "
               "the photos' SHA-256s); URLs, WEBP and Runware UUIDs refused (or pass your own zip as "
               "provider_options['fal']['image_archive_url'])"),
    Capability("style", "style", "native", "(No style), Cinematic, Disney Character, ... (11 styles)"),
    Capability("style_strength", "style_strength", "native", "integer 15–50"),
    Capability("negative_prompt", "negative_prompt", "native", "fal's default: empty"),
    Capability("num_images", "num_images", "adjusted", "1–4 per submission; more are split into several submissions"),
    Capability("steps", "num_inference_steps", "adjusted", "20–100, clamped with a warning; fal's default 50"),
    Capability("guidance_scale", "guidance_scale", "adjusted", "0.1–10, clamped with a warning; fal's default 5"),
    Capability("seed", "seed", "adjusted", "submission k of a split gets seed + images before it"),
    Capability("width", None, "unsupported", "the model outputs 1024×1024"),
    Capability("height", None, "unsupported", "the model outputs 1024×1024"),
    Capability("output_format", None, "unsupported", "PNG only"),
    Capability("safety_check", None, "unsupported", "fal-ai/photomaker has no safety checker input"),
    Capability("initial_image", "initial_image_url", "native",
               "a URL as given; a local image uploaded once to fal storage; a Runware UUID refused"),
    Capability("initial_image_strength", "initial_image_strength", "native", "0–1; fal's default 0.5"),
    Capability("provider_options", None, "native", "provider_options['fal'] merged verbatim into every payload"),
)
"""How each unified field reaches fal (drives ``docs/providers.md``)."""


def build_plan(request: PhotoMakerRequest, *, pipeline: Pipeline, target: str, submit_options: Mapping[str, Any],
               strict: bool) -> Plan:
    """The ``fal-ai/photomaker`` arguments for ``request`` (one per submission), the files to upload first
    (the zip, the initial image) and every adjustment. ``submit_options`` are the settings fal_client sends
    beside the arguments (``priority``, ``hint``, ``start_timeout``), recorded on the plan."""
    translator = Translator("fal", strict=strict)
    options = dict(request.provider_options.get("fal", {}))
    prompt = _prompt(request, translator)
    archive = _archive(request, translator, options)
    archive_url = archive.placeholder if archive is not None else str(options["image_archive_url"])
    initial = _initial_image(request.initial_image, translator)
    initial_url = None if initial is None else initial if isinstance(initial, str) else initial.placeholder
    if request.initial_image is None:
        translator.default("initial_image_strength", "not sent: no initial image")
    else:
        if request.initial_image_strength is None:
            translator.default("initial_image_strength", "not sent: fal's default (0.5)")
        else:
            translator.send("initial_image_strength", "initial_image_strength", request.initial_image_strength)
    style = translator.send("style", "style", STYLE_TO_FAL[request.style])
    style_strength = int(translator.clamp("style_strength", "style_strength", request.style_strength,
                                          *_STYLE_STRENGTH_RANGE, "15-50"))
    if request.negative_prompt is None:
        translator.default("negative_prompt", "not sent: fal's default (empty)")
    else:
        translator.send("negative_prompt", "negative_prompt", request.negative_prompt)
    counts = split_count(request.num_images, _MAX_IMAGES_PER_CALL)
    note = "" if len(counts) == 1 else (f"fal takes 1-4 per submission: split into {len(counts)} submissions "
                                        f"({'+'.join(map(str, counts))})")
    translator.send("num_images", "num_images", counts[0], note)
    steps = None
    if request.steps is None:
        translator.default("steps", "not sent: fal's default (50)")
    else:
        steps = int(translator.clamp("steps", "num_inference_steps", request.steps, *_STEPS_RANGE, "20-100"))
    guidance = None
    if request.guidance_scale is None:
        translator.default("guidance_scale", "not sent: fal's default (5)")
    else:
        guidance = translator.clamp("guidance_scale", "guidance_scale", request.guidance_scale,
                                    *_GUIDANCE_RANGE, "0.1-10")
    seeds = _seeds(request, counts, translator)
    _unsupported(request, translator)
    translator.send("pipeline (FalProvider setting)", "base_pipeline", pipeline)
    for name, value in submit_options.items():
        translator.send(f"{name} (FalProvider setting)", f"submit({name}=...)", value, "sent by fal_client beside "
                        "the arguments")
    payloads: list[dict[str, Any]] = []
    for count, seed in zip(counts, seeds, strict=True):
        arguments = _PhotoMakerArguments(
            image_archive_url=archive_url, prompt=prompt, base_pipeline=pipeline, initial_image_url=initial_url,
            initial_image_strength=request.initial_image_strength, style=style,
            negative_prompt=request.negative_prompt, num_inference_steps=steps, style_strength=style_strength,
            num_images=count, guidance_scale=guidance, seed=seed)
        payload = _arguments_json(arguments)
        # provider_options go in verbatim, after translation, and may override anything (docs/architecture.md).
        payload = translator.options(payload, options) if not payloads else deep_merge(payload, options)
        payloads.append(payload)
    uploads = [upload for upload in (archive, initial) if isinstance(upload, UploadPlaceholder)]
    return Plan(provider="fal", target=target, payloads=payloads, uploads=uploads,
                warnings=tuple(translator.warnings), mapping=tuple(translator.mapping),
                images_per_payload=tuple(counts), submit_options=submit_options)


def _prompt(request: PhotoMakerRequest, translator: Translator) -> str:
    text, warnings = apply_trigger(request.prompt, _TRIGGER, provider="fal")
    for warning in warnings:
        translator.warn(warning)
    translator.send("prompt", "prompt", text, warnings[0].reason if warnings else "")
    return text


def _archive(request: PhotoMakerRequest, translator: Translator,
             options: Mapping[str, Any]) -> UploadPlaceholder | None:
    """The zip of the reference photos to upload, or ``None`` when ``provider_options`` supplies one."""
    count = len(request.images)
    if isinstance(options.get("image_archive_url"), str):
        translator.send("images", "image_archive_url", options["image_archive_url"],
                        f"the {count} reference photo(s) are not sent: provider_options['fal'] "
                        "supplies image_archive_url")
        return None
    members: list[tuple[ImageFormat, bytes]] = []
    digests: list[tuple[ImageFormat, str]] = []
    for index, image in enumerate(request.images):
        field = f"images[{index}]"
        if image.kind == "runware_uuid":
            raise InvalidRequestError(field, image.source, "a path, bytes, a data URI or base64 of a photo",
                                      reason="a Runware image UUID only works with provider 'runware'")
        if image.kind == "url" or image.data is None or image.image_format is None or image.sha256 is None:
            raise InvalidRequestError(
                field, image.source, "a path, bytes, a data URI or base64 of a PNG or JPEG photo, or your own "
                "zip as provider_options={'fal': {'image_archive_url': ...}}",
                reason="fal takes the photos as one zip archive, and the bridge does not download URLs "
                       "to build it")
        if image.image_format not in _ZIPPABLE_FORMATS:
            raise InvalidRequestError(field, image.source, "a PNG or JPEG photo (convert WEBP first)",
                                      reason="fal's image archive is only known to take PNG and JPEG")
        members.append((image.image_format, image.data))
        digests.append((image.image_format, image.sha256))
    if sum(len(data) for _, data in members) > ZIP_MAX_BYTES:
        raise InvalidRequestError("images", f"{count} photos", f"at most {ZIP_MAX_BYTES} bytes in all",
                                  reason="fal takes them as one zip archive, and this one would need ZIP64")
    # Keyed by the photos' own SHA-256s (computed when the request was made), the archive is built only when
    # the upload cache misses, and its bytes are dropped once uploaded (docs/architecture.md, "Uploads").
    digest = zip_digest(digests)
    size = zip_size([(image_format, len(data)) for image_format, data in members])
    upload = UploadPlaceholder(
        kind="zip", placeholder=upload_placeholder("zip", digest),
        description=f"zip of {count} image{'s' if count != 1 else ''}, {size_text(size)}",
        image_indices=tuple(range(count)), size=size, sha256=digest, content_type=_ZIP_CONTENT_TYPE,
        file_name=f"photomaker-{digest[:12]}.zip", data=lambda: zip_images(members))
    translator.send("images", "image_archive_url", upload.placeholder,
                    f"{upload.description}, uploaded to fal storage before submitting")
    return upload


def _initial_image(image: ReferenceImage | None, translator: Translator) -> UploadPlaceholder | str | None:
    """The initial image's URL as given, the upload that will stand for it, or ``None`` (§4.1)."""
    if image is None:
        translator.default("initial_image", "not sent: fal generates from noise")
        return None
    if image.kind == "runware_uuid":
        raise InvalidRequestError("initial_image", image.source, "a URL, a path, bytes, a data URI or base64",
                                  reason="a Runware image UUID only works with provider 'runware'")
    if image.kind == "url" and image.url is not None:
        return str(translator.send("initial_image", "initial_image_url", image.url, "URL as given"))
    if image.data is None or image.sha256 is None or image.content_type is None or image.image_format is None:
        raise InvalidRequestError("initial_image", image.source, "a URL or local image data")
    upload = UploadPlaceholder(
        kind="image", placeholder=upload_placeholder("image", image.sha256),
        description=f"initial image ({image.image_format}, {size_text(len(image.data))})", image_indices=(),
        size=len(image.data), sha256=image.sha256, content_type=image.content_type,
        file_name=f"initial-{image.sha256[:12]}.{extension_of(image.image_format)}", data=image.data)
    translator.send("initial_image", "initial_image_url", upload.placeholder,
                    f"{upload.description}, uploaded to fal storage before submitting")
    return upload


def _seeds(request: PhotoMakerRequest, counts: Sequence[int], translator: Translator) -> list[int | None]:
    if request.seed is None:
        translator.default("seed", "not sent: fal draws a random seed per submission")
        return [None] * len(counts)
    offsets = [sum(counts[:index]) for index in range(len(counts))]
    seeds: list[int | None] = [(request.seed + offset) % _SEED_MODULUS for offset in offsets]
    note = "" if len(counts) == 1 else ("one seed per submission: seed + images before it ("
                                        + ", ".join(str(seed) for seed in seeds) + ")")
    translator.send("seed", "seed", seeds[0], note)
    return seeds


def _unsupported(request: PhotoMakerRequest, translator: Translator) -> None:
    for field in ("width", "height"):
        value = getattr(request, field)
        if value is None:
            continue
        if value == _OUTPUT_SIDE:
            translator.default(field, "not sent: fal makes 1024x1024 images, as asked")
        else:
            translator.unsupported(field, value, "fal-ai/photomaker has no size input; its images are 1024x1024")
    if request.output_format is not None:
        if _OUTPUT_FORMAT_TO_FAL[request.output_format] is None:
            translator.unsupported("output_format", request.output_format,
                                   "fal-ai/photomaker has no output format input; its images are PNG")
        else:
            translator.default("output_format", "not sent: fal answers PNG, as asked")
    if request.safety_check is not None:
        translator.unsupported("safety_check", request.safety_check, "fal-ai/photomaker has no safety checker input")
