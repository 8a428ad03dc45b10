"""The Runware adapter: a ``PhotoMakerRequest`` as an array of PhotoMaker tasks over REST.

Reference: ``docs/protocols/runware.md`` (cited below as §n) and Runware's PhotoMaker page (runware.md SEED).
Translation tables come first, then :class:`RunwareProvider` (translation, then the flows). The wire classes
live in ``_runware_wire``, the parsing of Runware's answers in ``_runware_parsing`` (and of its tasks'
outcomes in ``_runware_tasks``), the flows in
``_runware_flows`` (sending tasks), ``_runware_uploads`` and ``_runware_results`` (polling by handle).
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
from ..jobs import JobHandle
from ..plan import FieldMapping, Plan
from ..request import OutputFormat, PhotoMakerRequest
from ..result import PhotoMakerResult
from ..styles import Style
from . import _runware_fields as rules
from . import _runware_flows, _runware_results
from ._durations import DurationCacheSetting, starting_estimate
from ._polling import DurationEstimate, PollPolicy
from ._runware_fields import (
    CFG_SCALE_RANGE,
    DIMENSION_RANGE,
    MAX_RESULTS_PER_TASK,
    PROMPT_LENGTH,
    STEPS_RANGE,
    STRENGTH_RANGE,
    TRIGGER_WORD,
)
from ._runware_wire import ImageInferenceTask, PhotoMakerSettings, PhotoMakerTask, Safety, unstructure_task
from ._steps import account_of
from .base import (
    Capability,
    FlowContext,
    IdFactory,
    Provider,
    Translator,
    check_duration_cache,
    check_limit,
    deep_merge,
    new_uuid,
    split_count,
)

__all__ = ["CFG_SCALE_RANGE", "DIMENSION_RANGE", "MAX_RESULTS_PER_TASK", "PROMPT_LENGTH", "STEPS_RANGE",
           "STRENGTH_RANGE", "TRIGGER_WORD", "RunwareProvider", "TaskShape", "generate_many_flow"]

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

TaskShape = Literal["imageInference", "photoMaker"]
"""How a PhotoMaker request is sent (§5.1, §5.3): ``imageInference`` with ``photoMaker`` settings, or the older
standalone ``photoMaker`` task."""

_PHOTOMAKER_FIELDS: Final[Mapping[TaskShape, Mapping[str, str]]] = {
    "imageInference": {"images": "photoMaker.images", "style": "photoMaker.style",
                       "strength": "photoMaker.strength"},
    "photoMaker": {"images": "inputImages", "style": "style", "strength": "strength"},
}
"""Where each shape carries the reference images, the style and its strength."""


_TYPICAL_SECONDS: Final = 5.0
"""The task length to expect before any is known: Runware publishes none, so a guess; the cold schedule bounds
the lag whatever the length is (``_polling``)."""

RUNWARE_POLLING: Final = PollPolicy(first_check=0.5, min_interval=0.1, max_interval=10.0)
"""Runware's tasks take seconds, not Eachlabs' tens of seconds: an early first check and a finer grid around the
learned length; the longest wait is the SDK's 10 s (§4.2)."""


def _optional_positive(instance: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9):
        raise ConfigurationError(f"{attribute.name} must be a positive number of seconds, got {value!r}")


def _rest_endpoint(url: str) -> str:
    """``url`` as the endpoint tasks are posted to: a URL without a path (the service's root) gets ``/v1``,
    where Runware answers every task (§1); any other path is kept as given (a proxy's own route)."""
    parts = urlsplit(url.strip())
    if parts.path in ("", "/"):
        return urlunsplit((parts.scheme, parts.netloc, "/v1", parts.query, parts.fragment))
    return url.strip().rstrip("/") if parts.path.rstrip("/") == "/v1" else url.strip()


@attrs.frozen
class RunwareProvider(Provider):
    """Runware (https://runware.ai): PhotoMaker tasks sent as one JSON array to ``POST /v1``.

    ``task_shape`` picks how: ``imageInference`` with ``photoMaker`` settings (the default: the only PhotoMaker
    shape of Runware's current SDK, ``runware-sdk``, and of the legacy one since March 2026, §5.3), or the older
    standalone ``photoMaker`` task (§5.1), which the service still answers.

    Sync generation posts the tasks and reads every image from the one answer; ``submit`` posts them with
    ``deliveryMethod: "async"`` and ``result`` polls ``getResponse``. Local reference images are uploaded once
    with ``imageUpload`` and reused by imageUUID (``image_transport="upload"``), or inlined as data URIs.
    """

    name: ClassVar[str] = "runware"
    style_table: ClassVar[Mapping[Style, str]] = _STYLE_TO_RUNWARE
    capabilities: ClassVar[tuple[Capability, ...]] = (
        Capability("prompt", "positivePrompt", "adjusted",
                   "2–300 characters; trigger word rwre kept where written (img renamed; when missing the prompt "
                   "is led with 'rwre, ' as Runware does), every change with a warning"),
        Capability("images", "photoMaker.images", "adjusted",
                   "1–4; URLs and Runware image UUIDs as given, local images uploaded once with imageUpload "
                   "(or inlined as data URIs with image_transport='inline'); inputImages with "
                   "task_shape='photoMaker'"),
        Capability("style", "photoMaker.style", "native", ", ".join(_STYLE_TO_RUNWARE.values())),
        Capability("style_strength", "photoMaker.strength", "native", "integer 15–50"),
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
        Capability("initial_image", None, "unsupported",
                   "left out with a warning: Runware documents no start image with PhotoMaker (seedImage is an "
                   "imageInference field; try it through provider_options)"),
        Capability("initial_image_strength", None, "unsupported", "left out with the initial image"),
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
    task_shape: TaskShape = attrs.field(default="imageInference",
                                        validator=attrs.validators.in_(("imageInference", "photoMaker")))
    """``imageInference`` (with ``photoMaker`` settings, §5.3) or ``photoMaker`` (the standalone task, §5.1)."""
    polling: PollPolicy = RUNWARE_POLLING
    """When ``result`` polls ``getResponse``: the cold schedule until this model's task length is known, then
    around the learned length (``_runware_results``, docs/architecture.md "Polling")."""
    expected_seconds: float | None = attrs.field(default=None, validator=_optional_positive)
    """The first expected task length; ``None``: unknown (Runware publishes none), so the cold schedule."""
    poll_interval: float | None = attrs.field(default=None, validator=_optional_positive)
    """A fixed cadence instead of the learned one, as Runware's SDK polls (§4.2): at once, then after this many
    seconds, each wait 1.5× the last up to ``max_poll_interval``. ``None`` (default): the learned schedule."""
    max_poll_interval: float = attrs.field(default=10.0, validator=_optional_positive)
    """The longest wait of the fixed cadence (the SDK's: 0.5 s ×1.5 up to 10 s, §4.2)."""
    duration_cache: DurationCacheSetting = attrs.field(default=None, validator=check_duration_cache)
    """Keep learned task lengths between runs (``_durations``): ``True`` in the user's cache directory, or a
    path; ``None`` (default): learn per adapter only. The CLI turns it on (docs/architecture.md, "Polling")."""
    _estimates: dict[str, DurationEstimate] = attrs.field(init=False, factory=dict, repr=False, eq=False)
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

    def estimate(self) -> DurationEstimate:
        """The learned length of this model's tasks (per adapter, and across runs with ``duration_cache``)."""
        if self.model not in self._estimates:
            self._estimates[self.model] = starting_estimate(self.duration_cache, self.name,
                                                            f"{self.name}|{self.model}|{self.base_url}",
                                                            self.expected_seconds, _TYPICAL_SECONDS)
        return self._estimates[self.model]

    # --- translation --------------------------------------------------------------------------------------------

    def plan(self, request: PhotoMakerRequest, *, strict: bool = False, new_id: IdFactory = new_uuid) -> Plan:
        """The task array for ``request`` (one payload), uploads, warnings and field mapping. Pure.

        ``num_images`` above 20 becomes several tasks in the same array (§5.1 numberResults ≤ 20). Raises
        :class:`InvalidRequestError` when the prompt is longer than Runware's 300 characters once the trigger
        word is in, and (``strict``) for any adjustment.
        """
        translator = Translator(self.name, strict=strict)
        positive_prompt = rules.positive_prompt(request, translator)
        negative_prompt = rules.negative_prompt(request, translator)
        fields = _PHOTOMAKER_FIELDS[self.task_shape]
        input_images, uploads = rules.input_images(request, translator, fields["images"],
                                                       self.image_transport)
        style = translator.send("style", fields["style"], _STYLE_TO_RUNWARE[request.style])
        strength = int(translator.clamp("style_strength", fields["strength"], request.style_strength,
                                        *STRENGTH_RANGE, "15–50"))
        width = rules.dimension("width", request.width, translator)
        height = rules.dimension("height", request.height, translator)
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
        seeds = rules.seeds(request, counts, translator)
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
        rules.leave_out_initial_image(request, translator)
        options = request.provider_options.get(self.name, {})
        tasks: list[dict[str, Any]] = []
        for index, count in enumerate(counts):
            common: dict[str, Any] = {
                "task_uuid": new_id(), "model": self.model, "positive_prompt": positive_prompt,
                "negative_prompt": negative_prompt, "width": width, "height": height, "steps": steps,
                "cfg_scale": cfg_scale, "seed": seeds[index], "number_results": count, "output_type": "URL",
                "output_format": output_format, "include_cost": True, "safety": safety}
            task: PhotoMakerTask | ImageInferenceTask
            if self.task_shape == "photoMaker":
                task = PhotoMakerTask(task_type="photoMaker", input_images=list(input_images), style=style,
                                      strength=strength, **common)
            else:
                task = ImageInferenceTask(task_type="imageInference", photo_maker=PhotoMakerSettings(
                    images=list(input_images), style=style, strength=strength), **common)
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

    def with_webhook(self, plan: Plan, url: str) -> Plan:
        """``plan`` with ``webhookURL`` in every task: Runware acknowledges at once and POSTs each image's result
        there as it is ready (§4.3); the bridge still polls ``getResponse`` for ``result``/``generate``."""
        tasks = [{**task, "webhookURL": url} for task in plan.payloads[0]]
        return attrs.evolve(plan, payloads=[tasks], mapping=(*plan.mapping, FieldMapping(
            "webhook_url", "webhookURL", url, "in every task; Runware POSTs each image's result there")))

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
        return _runware_results.result_flow(self, handle, context)

    def handle_for(self, request_id: str) -> JobHandle:
        """A handle for tasks submitted earlier, from their taskUUID (several may be joined with commas)."""
        return _runware_results.handle_for(self, request_id)

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
