"""The Runware adapter: a ``PhotoMakerRequest`` as an array of ``photoMaker`` tasks over REST.

Reference: ``docs/protocols/runware.md`` (cited below as §n) and Runware's PhotoMaker page (runware.md SEED).
Translation tables come first, then :class:`RunwareProvider` (translation, then the flows). The wire classes
live in ``_runware_wire``, the parsing of Runware's answers in ``_runware_parsing``, the flows in
``_runware_flows``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final, Literal
from urllib.parse import urlsplit, urlunsplit

import attrs

from .._coordination import Limits
from .._http import Flow
from ..errors import ConfigurationError, InvalidRequestError, ProviderError
from ..images import extension_of
from ..jobs import JobHandle
from ..plan import Plan, UploadPlaceholder
from ..prompts import apply_trigger, find_triggers
from ..request import OutputFormat, PhotoMakerRequest
from ..result import PhotoMakerResult
from ..styles import Style
from . import _runware_flows
from ._runware_wire import PhotoMakerTask, Safety, unstructure_task
from ._steps import account_of
from .base import (
    Capability,
    FlowContext,
    IdFactory,
    Provider,
    Translator,
    check_limit,
    deep_merge,
    new_uuid,
    size_text,
    split_count,
    upload_placeholder,
)

__all__ = ["RunwareProvider", "generate_many_flow"]

# --- translation tables (spellings exactly as runware.md §5.1 / runware.md SEED list them) -------------------------

_STYLE_TO_RUNWARE: Final[Mapping[Style, str]] = {
    Style.NO_STYLE: "No style",
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

_OUTPUT_FORMAT_TO_RUNWARE: Final[Mapping[OutputFormat, str]] = {"jpeg": "JPG", "png": "PNG", "webp": "WEBP"}

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


def _rest_endpoint(url: str) -> str:
    """``url`` as the endpoint tasks are posted to: a URL without a path (the service's root) gets ``/v1``,
    where Runware answers every task (§1); any other path is kept as given (a proxy's own route)."""
    parts = urlsplit(url.strip())
    if parts.path in ("", "/"):
        return urlunsplit((parts.scheme, parts.netloc, "/v1", parts.query, parts.fragment))
    return url.strip().rstrip("/") if parts.path.rstrip("/") == "/v1" else url.strip()


def _continue_seed(seed: int, offset: int) -> int:
    """``seed + offset`` kept inside Runware's 1…2**63-1 by wrapping around to 1."""
    return (seed - 1 + offset) % MAX_SEED + 1


def _image_description(index: int, image_format: str | None, size: int) -> str:
    return f"image {index + 1} ({image_format}, {size_text(size)})"


@attrs.frozen
class RunwareProvider(Provider):
    """Runware (https://runware.ai): ``photoMaker`` tasks sent as one JSON array to ``POST /v1``.

    Sync generation posts the tasks and reads every image from the one answer; ``submit`` posts them with
    ``deliveryMethod: "async"`` and ``result`` polls ``getResponse``. Local reference images are uploaded once
    with ``imageUpload`` and reused by imageUUID (``image_transport="upload"``), or inlined as data URIs.
    """

    name: ClassVar[str] = "runware"
    style_table: ClassVar[Mapping[Style, str]] = _STYLE_TO_RUNWARE
    capabilities: ClassVar[tuple[Capability, ...]] = (
        Capability("prompt", "positivePrompt", "adjusted",
                   "2–300 characters; trigger word rwre (img is renamed; inserted after the class word when "
                   "missing, with a warning)"),
        Capability("images", "inputImages", "adjusted",
                   "1–4; URLs and Runware image UUIDs as given, local images uploaded once with imageUpload "
                   "(or inlined as data URIs with image_transport='inline')"),
        Capability("style", "style", "native", ", ".join(_STYLE_TO_RUNWARE.values())),
        Capability("style_strength", "strength", "native", "integer 15–50"),
        Capability("negative_prompt", "negativePrompt", "adjusted",
                   "2–3000 characters (shorter: left out; longer: cut, with a warning)"),
        Capability("num_images", "numberResults", "adjusted",
                   "1–20 per task; more images become several tasks in the same request array"),
        Capability("steps", "steps", "adjusted", "1–100, clamped with a warning"),
        Capability("guidance_scale", "CFGScale", "adjusted", "0–50, clamped with a warning"),
        Capability("seed", "seed", "adjusted",
                   "≥ 1 (0 is sent as 1 with a warning); images count up from it, across tasks too"),
        Capability("width", "width", "native", "128–2048, multiple of 64; 1024 when not given"),
        Capability("height", "height", "native", "128–2048, multiple of 64; 1024 when not given"),
        Capability("output_format", "outputFormat", "native", "JPG, PNG, WEBP (Runware's default: JPG)"),
        Capability("safety_check", "safety.checkContent", "native",
                   "results carry NSFWContent; flagged images are returned with nsfw=True and a warning"),
        Capability("provider_options", None, "native", "provider_options['runware'] merged into every task"),
    )

    api_key: str | None = attrs.field(default=None, repr=False)
    """The API key; ``None`` reads ``RUNWARE_API_KEY`` when a request is sent."""
    base_url: str = attrs.field(default="https://api.runware.ai/v1", converter=_rest_endpoint)
    """The REST endpoint every task array is posted to (§1). The root URL (``https://api.runware.ai``, or an
    emulator's) is accepted too and means its ``/v1``."""
    model: str = "civitai:139562@344487"
    """An SDXL model's AIR id; the default is RealVisXL V4.0, first on Runware's recommended list (§5.1)."""
    image_transport: Literal["upload", "inline"] = attrs.field(
        default="upload", validator=attrs.validators.in_(("upload", "inline")))
    """``upload``: local reference images go up once with ``imageUpload`` and are reused by imageUUID (cached
    per client); ``inline``: they are sent inside every task as data URIs."""
    poll_interval: float = 0.5
    """Seconds before the second ``getResponse`` poll; the first is immediate, later ones wait 1.5× longer."""
    max_poll_interval: float = 10.0
    """The longest wait between two polls (the new SDK's cadence: 0.5 s ×1.5 up to 10 s, §4.2)."""
    concurrency: int | None = attrs.field(default=None, validator=check_limit)
    """Task submissions (one POST each) in flight at once through one client; ``None`` (default): no limit.
    Runware documents no hard limit ("no hard rate limits ... increased latency rather than immediate failures",
    §7); its legacy SDK keeps 15 requests in flight per client."""
    per_minute: int | None = attrs.field(default=None, validator=check_limit)
    """Task submissions a minute through one client; ``None`` (default): no limit (§7)."""

    # --- settings ---------------------------------------------------------------------------------------------

    def require_key(self) -> None:
        """Raise :class:`ConfigurationError` when neither ``api_key=`` nor ``RUNWARE_API_KEY`` gives a key."""
        self.key()

    def key(self) -> str:
        """The API key: ``api_key``, else the ``RUNWARE_API_KEY`` environment variable."""
        key = self.api_key or os.environ.get("RUNWARE_API_KEY")
        if not key:
            raise ConfigurationError("Runware needs an API key: set RUNWARE_API_KEY or pass api_key= to the "
                                     "provider (keys: https://my.runware.ai)")
        return key

    def headers(self) -> dict[str, str]:
        """Bearer auth (§2.1): all official REST clients send the header, never the authentication task."""
        return {"Authorization": f"Bearer {self.key()}", "Content-Type": "application/json"}

    def limits(self) -> Limits:
        """The client-side limits set on this adapter (none by default: Runware documents none, §7)."""
        return Limits(concurrency=self.concurrency, per_minute=self.per_minute)

    def account(self) -> str:
        """The provider and a hash of the key: how shared state names this account (never the key)."""
        return account_of(self.name, self.key())

    # --- translation --------------------------------------------------------------------------------------------

    def plan(self, request: PhotoMakerRequest, *, strict: bool = False, new_id: IdFactory = new_uuid) -> Plan:
        """The task array for ``request`` (one payload), uploads, warnings and field mapping. Pure.

        ``num_images`` above 20 becomes several tasks in the same array (§5.1 numberResults ≤ 20). Raises
        :class:`InvalidRequestError` when the prompt is longer than Runware's 300 characters once the trigger
        word is in, and (``strict``) for any adjustment.
        """
        translator = Translator(self.name, strict=strict)
        positive_prompt = self._positive_prompt(request, translator)
        negative_prompt = self._negative_prompt(request, translator)
        input_images, uploads = self._input_images(request, translator)
        style = translator.send("style", "style", _STYLE_TO_RUNWARE[request.style])
        strength = int(translator.clamp("style_strength", "strength", request.style_strength, *STRENGTH_RANGE,
                                        "15–50"))
        width = self._dimension("width", request.width, translator)
        height = self._dimension("height", request.height, translator)
        counts = split_count(request.num_images, MAX_RESULTS_PER_TASK)
        note = "" if len(counts) == 1 else (
            f"Runware takes at most {MAX_RESULTS_PER_TASK} per task: {len(counts)} tasks of {counts} "
            "in one request array")
        translator.send("num_images", "numberResults", counts[0], note)
        steps: int | None = None
        if request.steps is None:
            translator.default("steps", "Runware's default: 20")
        else:
            steps = int(translator.clamp("steps", "steps", request.steps, *STEPS_RANGE, "1–100"))
        cfg_scale: float | None = None
        if request.guidance_scale is None:
            translator.default("guidance_scale", "Runware's default: 7")
        else:
            cfg_scale = translator.clamp("guidance_scale", "CFGScale", request.guidance_scale, *CFG_SCALE_RANGE,
                                         "0–50")
        seeds = self._seeds(request, counts, translator)
        output_format: str | None = None
        if request.output_format is None:
            translator.default("output_format", "Runware's default: JPG")
        else:
            output_format = translator.send("output_format", "outputFormat",
                                            _OUTPUT_FORMAT_TO_RUNWARE[request.output_format])
        safety: Safety | None = None
        if request.safety_check is None:
            translator.default("safety_check", "Runware's default: no content check (no NSFWContent in results)")
        else:
            translator.send("safety_check", "safety.checkContent", request.safety_check)
            safety = Safety(check_content=request.safety_check)
        options = request.provider_options.get(self.name, {})
        tasks: list[dict[str, Any]] = []
        for index, count in enumerate(counts):
            task = PhotoMakerTask(
                task_type="photoMaker", task_uuid=new_id(), model=self.model, positive_prompt=positive_prompt,
                negative_prompt=negative_prompt, input_images=list(input_images), style=style, strength=strength,
                width=width, height=height, steps=steps, cfg_scale=cfg_scale, seed=seeds[index],
                number_results=count, output_type="URL", output_format=output_format, include_cost=True,
                safety=safety,
            )
            payload = unstructure_task(task)
            # provider_options go in verbatim, after translation, into every task.
            tasks.append(translator.options(payload, options) if index == 0 else deep_merge(payload, options))
        if len({task.get("taskUUID") for task in tasks}) < len(tasks):
            raise InvalidRequestError(
                "provider_options", dict(options),
                f"no fixed taskUUID when num_images > {MAX_RESULTS_PER_TASK} splits the request into tasks",
                reason="Runware needs a unique taskUUID per task")
        return Plan(provider=self.name, target=f"POST {self.base_url}", payloads=[tasks], uploads=uploads,
                    warnings=translator.warnings, mapping=translator.mapping,
                    images_per_payload=[sum(_number_results(task) for task in tasks)])

    def _positive_prompt(self, request: PhotoMakerRequest, translator: Translator) -> str:
        text, warnings = apply_trigger(request.prompt, TRIGGER_WORD, provider=self.name)
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
        found = find_triggers(request.prompt)
        note = ""
        if found and found[0].group(0).lower() == "img":
            note = "trigger word 'img' renamed to Runware's 'rwre' in place"
        elif warnings:
            note = warnings[0].reason
        translator.send("prompt", "positivePrompt", text, note)
        return text

    def _negative_prompt(self, request: PhotoMakerRequest, translator: Translator) -> str | None:
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

    def _input_images(self, request: PhotoMakerRequest, translator: Translator,
                      ) -> tuple[list[str], list[UploadPlaceholder]]:
        entries: list[str] = []
        uploads: dict[str, UploadPlaceholder] = {}
        for index, image in enumerate(request.images):
            field = f"images[{index}]"
            if image.kind == "url" and image.url is not None:
                # §5.1: "A URL pointing to the image. The image must be accessible publicly."
                entries.append(translator.send(field, f"inputImages[{index}]", image.url, "URL as given"))
            elif image.kind == "runware_uuid" and image.uuid is not None:
                entries.append(translator.send(field, f"inputImages[{index}]", image.uuid,
                                               "Runware image UUID as given"))
            elif self.image_transport == "inline":
                entries.append(translator.send(field, f"inputImages[{index}]", image.data_uri(),
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
                entries.append(translator.send(field, f"inputImages[{index}]", placeholder,
                                               "uploaded once with imageUpload; the placeholder is "
                                               "replaced by the returned imageUUID"))
        return entries, list(uploads.values())

    def _dimension(self, field: str, value: int | None, translator: Translator) -> int:
        if value is None:
            translator.send(field, field, DEFAULT_DIMENSION,
                            f"Runware requires {field}; sent the default {DEFAULT_DIMENSION}")
            return DEFAULT_DIMENSION
        # PhotoMakerRequest already holds width/height to 128–2048 in steps of 64, Runware's own rule.
        return int(translator.clamp(field, field, value, *DIMENSION_RANGE, "128–2048"))

    def _seeds(self, request: PhotoMakerRequest, counts: Sequence[int], translator: Translator,
               ) -> list[int | None]:
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

    # --- flows (written once, driven sync or async: see _runware_flows) -----------------------------------------

    def generate_flow(self, plan: Plan, context: FlowContext) -> Flow[PhotoMakerResult]:
        """Upload, post the task array with sync delivery, and read every image from the one answer.

        Partial success is kept: when some tasks (or images) succeed and others fail, the result holds the
        images and each error becomes a warning; only when nothing succeeded is the first typed error raised.
        """
        return _runware_flows.generate_flow(self, plan, context)

    def submit_flow(self, plan: Plan, context: FlowContext) -> Flow[JobHandle]:
        """Upload, post the task array with ``deliveryMethod: "async"``, and return the handle (taskUUIDs)."""
        return _runware_flows.submit_flow(self, plan, context)

    def result_flow(self, handle: JobHandle, context: FlowContext) -> Flow[PhotoMakerResult]:
        """Poll ``getResponse`` for the handle's tasks until every image is in or a task failed.

        At the caller's deadline raises :class:`~photomaker_bridge.GenerationTimeoutError` with the handle:
        Runware has no cancel API, so the tasks keep running and can be collected later.
        """
        return _runware_flows.result_flow(self, handle, context)

    def handle_for(self, request_id: str) -> JobHandle:
        """A handle for tasks submitted earlier, from their taskUUID (several may be joined with commas)."""
        return _runware_flows.handle_for(self, request_id)

    supports_batch = True

    def generate_many_flow(self, plans: Sequence[Plan], context: FlowContext,
                           ) -> Flow[list[PhotoMakerResult | ProviderError]]:
        """Several requests' tasks sent as ONE array, matched back by taskUUID (see :func:`generate_many_flow`)."""
        return _runware_flows.generate_many_flow(self, plans, context)


def _number_results(task: Mapping[str, Any]) -> int:
    value = task.get("numberResults", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def generate_many_flow(provider: RunwareProvider, plans: Sequence[Plan], context: FlowContext,
                       ) -> Flow[list[PhotoMakerResult | ProviderError]]:
    """Several requests' tasks sent as ONE array (sync delivery), matched back by taskUUID.

    Returns one entry per plan, in order: its result, or the typed error that stopped it. An error that
    concerns the whole request (authentication, rate limit, transport) is the entry of every plan.
    """
    return _runware_flows.generate_many_flow(provider, plans, context)
