"""The fal adapter: ``fal-ai/photomaker`` through fal's queue, spoken by the official ``fal_client``.

Reference: ``docs/protocols/fal.md`` (sections cited as §n). Translation tables first, then the adapter
(:class:`FalProvider`: pure translation into a :class:`~photomaker_bridge.Plan`). The flows live in
``_fal_flow``, the performers that run their operations in ``_fal_performers``, and the seam with
``fal_client`` (its clients as the bridge configures them, its errors mapped to the bridge's) in
``_fal_client`` — the only module that knows ``fal_client``'s internals.

Decisions the reference leaves open:

* **Reference photos** go to fal as one zip archive uploaded to fal storage (§3.3: a data-URI zip is
  reportedly refused). Only local photos (paths, bytes, data URIs, base64) can be zipped: a photo given as
  a URL is refused with :class:`~photomaker_bridge.InvalidRequestError` rather than downloaded, because
  translation does no network I/O and the bridge never fetches arbitrary user URLs.
  Pass the bytes, or your own archive as ``provider_options={"fal": {"image_archive_url": ...}}`` (then the
  photos are not sent at all). A Runware image UUID only means something to Runware: refused too.
* **WEBP** photos are refused: fal's archive is only known to take PNG and JPEG (§3.4), and converting
  would need Pillow, which the library does not depend on.
* **More than 4 images** are split into submissions of at most 4 (``num_images`` 1–4, §4.1). With a seed,
  submission *k* gets ``seed + (images before it)`` so that no two submissions repeat an image (the
  Runware convention: image *i* has seed ``seed + i``); without one fal draws a seed per submission.
* **Width/height** are not inputs of fal-ai/photomaker (it makes 1024×1024, fal.md SEED3 output): any other
  size is a warning. **output_format** other than PNG and **safety_check** are warnings too.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final, Literal

import attrs
import cattrs

from .._coordination import Limits
from .._http import Flow
from ..errors import ConfigurationError, InvalidRequestError
from ..images import ImageFormat, sha256_hex, zip_images
from ..jobs import CancelOutcome, JobHandle
from ..plan import Plan, UploadPlaceholder
from ..prompts import apply_trigger, find_triggers
from ..request import PhotoMakerRequest
from ..result import PhotoMakerResult
from ..styles import Style
from ._fal_flow import FalFlows
from ._fal_parse import PROVIDER
from ._fal_performers import FalAsyncPerformer, FalSyncPerformer
from ._polling import DurationEstimate, PollPolicy
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

__all__ = ["FalAsyncPerformer", "FalProvider", "FalSyncPerformer"]

# -- translation tables (fal.md §4.1; fal.md SEED3 StyleEnum, exact spellings) -------------------------------

_STYLE_TO_FAL: Final[Mapping[Style, str]] = {
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


TYPICAL_SECONDS: Final = 15.0
"""What a fal PhotoMaker request is expected to take before any has completed: SDXL at 1024², 50 steps on
an A6000 runs ~10–30 s (fal.md §4.3, [UNVERIFIED]: fal publishes no latency); learned from completed ones."""


@attrs.define
class FalProvider(Provider):
    """The fal adapter. ``FalProvider()`` reads ``FAL_KEY`` (or ``FAL_KEY_ID`` + ``FAL_KEY_SECRET``) when
    first used; ``FalProvider(key="id:secret")`` sets it explicitly.

    ``base_url`` points this adapter's ``fal_client`` clients at another server (the fal emulator:
    ``FalProvider(key=emulators.fal.api_key, base_url=emulators.fal.url)``): their requests for fal's hosts go
    there instead. Only these clients are pointed there — nothing process-wide changes — so clients for fal
    itself and for an emulator can be open side by side (``providers/_fal_client``).
    """

    name: ClassVar[str] = PROVIDER
    style_table: ClassVar[Mapping[Style, str]] = _STYLE_TO_FAL
    capabilities: ClassVar[tuple[Capability, ...]] = (
        Capability("prompt", "prompt", "adjusted",
                   "'img' exactly once, right after the class word; inserted when missing, 'rwre' renamed"),
        Capability("images", "image_archive_url", "adjusted",
                   "1–4 local PNG/JPEG photos in one zip, uploaded once to fal storage; URLs, WEBP and Runware "
                   "UUIDs refused (or pass your own zip as provider_options['fal']['image_archive_url'])"),
        Capability("style", "style", "native", "(No style), Cinematic, Disney Character, ... (11 styles)"),
        Capability("style_strength", "style_strength", "native", "integer 15–50"),
        Capability("negative_prompt", "negative_prompt", "native", "fal's default: empty"),
        Capability("num_images", "num_images", "adjusted",
                   "1–4 per submission; more are split into several submissions"),
        Capability("steps", "num_inference_steps", "adjusted", "20–100, clamped with a warning; fal's default 50"),
        Capability("guidance_scale", "guidance_scale", "adjusted", "0.1–10, clamped with a warning; fal's default 5"),
        Capability("seed", "seed", "adjusted", "submission k of a split gets seed + images before it"),
        Capability("width", None, "unsupported", "the model outputs 1024×1024"),
        Capability("height", None, "unsupported", "the model outputs 1024×1024"),
        Capability("output_format", None, "unsupported", "PNG only"),
        Capability("safety_check", None, "unsupported", "fal-ai/photomaker has no safety checker input"),
        Capability("provider_options", None, "native", "provider_options['fal'] merged verbatim into every payload"),
    )

    key: str | None = attrs.field(default=None, repr=False)
    """The fal API key (``"key_id:key_secret"``); ``None`` reads ``FAL_KEY`` or ``FAL_KEY_ID``+``FAL_KEY_SECRET``."""
    pipeline: Pipeline = "photomaker"
    """``base_pipeline``: ``photomaker`` (identity fidelity) or ``photomaker-style`` (stylised)."""
    application: str = "fal-ai/photomaker"
    """The fal application the payloads are submitted to."""
    base_url: str | None = None
    """Another server for fal_client (an emulator), e.g. ``http://127.0.0.1:8765``; ``None``: fal itself."""
    polling: PollPolicy = attrs.field(factory=lambda: PollPolicy(first_check=1.0, min_interval=0.25,
                                                                  max_interval=5.0))
    """The shape of the polling schedule (``_polling``): an early check, then tightening around the expected
    end. fal_client's own loop polls ten times a second (fal.md §1.8), too eager for the real service
    (fal.md §6, ISS fal-ai/fal #573); this one polls a handful of times per request."""
    expected_seconds: float | None = None
    """Submit-to-completion seconds to expect before any request has completed (default
    ``TYPICAL_SECONDS``); afterwards the schedule learns from completed requests."""
    poll_interval: float | None = None
    """A fixed number of seconds between status calls instead of the adaptive schedule (tests use a few
    hundredths against the emulator)."""
    with_logs: bool = True
    """Ask for the request's logs at every status call and turn new lines into ``log`` events."""
    concurrency: int | None = attrs.field(default=None, validator=check_limit)
    """Requests in flight at once through one client; ``None`` (default): no limit (fal documents none for
    queue requests)."""
    per_minute: int | None = attrs.field(default=None, validator=check_limit)
    """Submissions a minute through one client; ``None`` (default): no limit."""
    _estimate: DurationEstimate = attrs.field(init=False, repr=False, eq=False)
    """Learned submit-to-completion time, shared by every call made with this adapter."""

    def __attrs_post_init__(self) -> None:
        if self.pipeline not in ("photomaker", "photomaker-style"):
            raise ConfigurationError(f"pipeline must be 'photomaker' or 'photomaker-style', got {self.pipeline!r}")
        if self.poll_interval is not None and not self.poll_interval > 0:
            raise ConfigurationError(f"poll_interval must be a positive number of seconds, got {self.poll_interval!r}")
        if self.expected_seconds is not None and not self.expected_seconds > 0:
            raise ConfigurationError(f"expected_seconds must be positive, got {self.expected_seconds!r}")
        self._estimate = DurationEstimate(self.expected_seconds or TYPICAL_SECONDS)

    # -- credentials ----------------------------------------------------------------------------------------

    def resolved_key(self) -> str:
        """The key to use: ``key``, else ``FAL_KEY``, else ``FAL_KEY_ID:FAL_KEY_SECRET`` (fal.md §5)."""
        if self.key:
            return self.key
        if os.environ.get("FAL_KEY"):
            return os.environ["FAL_KEY"]
        key_id, secret = os.environ.get("FAL_KEY_ID"), os.environ.get("FAL_KEY_SECRET")
        if key_id and secret:
            return f"{key_id}:{secret}"
        raise ConfigurationError("fal needs an API key: set FAL_KEY (or FAL_KEY_ID and FAL_KEY_SECRET), "
                                 "or pass FalProvider(key=...)")

    def require_key(self) -> None:
        """Raise :class:`ConfigurationError` naming ``FAL_KEY``, ``FAL_KEY_ID``/``FAL_KEY_SECRET`` and
        ``key=`` when no key is configured."""
        self.resolved_key()

    # -- translation ----------------------------------------------------------------------------------------

    def plan(self, request: PhotoMakerRequest, *, strict: bool = False, new_id: IdFactory = new_uuid) -> Plan:
        """The ``fal-ai/photomaker`` arguments for ``request`` (one per submission), the zip to upload first,
        and every adjustment. Pure: no network, no key. ``new_id`` is unused: fal assigns the request ids."""
        translator = Translator(self.name, strict=strict)
        options = dict(request.provider_options.get(self.name, {}))
        prompt = self._prompt(request, translator)
        upload = self._archive(request, translator, options)
        archive_url = upload.placeholder if upload is not None else str(options["image_archive_url"])
        style = translator.send("style", "style", _STYLE_TO_FAL[request.style])
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
        seeds = self._seeds(request, counts, translator)
        self._unsupported(request, translator)
        translator.send("pipeline (FalProvider setting)", "base_pipeline", self.pipeline)
        payloads: list[dict[str, Any]] = []
        for count, seed in zip(counts, seeds, strict=True):
            arguments = _PhotoMakerArguments(
                image_archive_url=archive_url, prompt=prompt, base_pipeline=self.pipeline, style=style,
                negative_prompt=request.negative_prompt, num_inference_steps=steps, style_strength=style_strength,
                num_images=count, guidance_scale=guidance, seed=seed)
            payload = _arguments_json(arguments)
            # provider_options go in verbatim, after translation, and may override anything (rule 2).
            payload = translator.options(payload, options) if not payloads else deep_merge(payload, options)
            payloads.append(payload)
        target = f"fal queue: {self.application}" + (f" (at {self.base_url})" if self.base_url else "")
        return Plan(provider=self.name, target=target, payloads=payloads,
                    uploads=() if upload is None else (upload,), warnings=tuple(translator.warnings),
                    mapping=tuple(translator.mapping), images_per_payload=tuple(counts))

    def _prompt(self, request: PhotoMakerRequest, translator: Translator) -> str:
        text, warnings = apply_trigger(request.prompt, _TRIGGER, provider=self.name)
        for warning in warnings:
            translator.warn(warning)
        found = find_triggers(request.prompt)
        note = ""
        if warnings:
            note = warnings[0].reason
        elif found and found[0].group(0) != _TRIGGER:
            note = f"renamed the trigger {found[0].group(0)!r} to fal's {_TRIGGER!r}"
        translator.send("prompt", "prompt", text, note)
        return text

    def _archive(self, request: PhotoMakerRequest, translator: Translator,
                 options: Mapping[str, Any]) -> UploadPlaceholder | None:
        """The zip of the reference photos to upload, or ``None`` when ``provider_options`` supplies one."""
        count = len(request.images)
        if isinstance(options.get("image_archive_url"), str):
            translator.send("images", "image_archive_url", options["image_archive_url"],
                            f"the {count} reference photo(s) are not sent: provider_options['fal'] "
                            "supplies image_archive_url")
            return None
        members: list[tuple[ImageFormat, bytes]] = []
        for index, image in enumerate(request.images):
            field = f"images[{index}]"
            if image.kind == "runware_uuid":
                raise InvalidRequestError(field, image.source, "a path, bytes, a data URI or base64 of a photo",
                                          reason="a Runware image UUID only works with provider 'runware'")
            if image.kind == "url" or image.data is None or image.image_format is None:
                raise InvalidRequestError(
                    field, image.source, "a path, bytes, a data URI or base64 of a PNG or JPEG photo, or your own "
                    "zip as provider_options={'fal': {'image_archive_url': ...}}",
                    reason="fal takes the photos as one zip archive, and the bridge does not download URLs "
                           "to build it")
            if image.image_format not in _ZIPPABLE_FORMATS:
                raise InvalidRequestError(field, image.source, "a PNG or JPEG photo (convert WEBP first)",
                                          reason="fal's image archive is only known to take PNG and JPEG")
            members.append((image.image_format, image.data))
        data = zip_images(members)
        upload = _upload_for(data, count)
        translator.send("images", "image_archive_url", upload.placeholder,
                        f"{upload.description}, uploaded to fal storage before submitting")
        return upload

    def _seeds(self, request: PhotoMakerRequest, counts: Sequence[int], translator: Translator) -> list[int | None]:
        if request.seed is None:
            translator.default("seed", "not sent: fal draws a random seed per submission")
            return [None] * len(counts)
        offsets = [sum(counts[:index]) for index in range(len(counts))]
        seeds: list[int | None] = [(request.seed + offset) % _SEED_MODULUS for offset in offsets]
        note = "" if len(counts) == 1 else ("one seed per submission: seed + images before it ("
                                            + ", ".join(str(seed) for seed in seeds) + ")")
        translator.send("seed", "seed", seeds[0], note)
        return seeds

    def _unsupported(self, request: PhotoMakerRequest, translator: Translator) -> None:
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
            translator.unsupported("safety_check", request.safety_check,
                                   "fal-ai/photomaker has no safety checker input")

    # -- flows ----------------------------------------------------------------------------------------------

    def _flows(self) -> FalFlows:
        if self.poll_interval is not None:
            fixed = self.poll_interval
            policy = PollPolicy(first_check=fixed, approach=1.0, min_interval=fixed, max_interval=fixed)
        else:
            policy = self.polling
        return FalFlows(self.application, policy, self._estimate, self.with_logs, self.account(), self.limits())

    def limits(self) -> Limits:
        """The client-side limits set on this adapter (none by default)."""
        return Limits(concurrency=self.concurrency, per_minute=self.per_minute)

    def account(self) -> str:
        """The provider and a hash of the key: how shared state names this account (never the key)."""
        return account_of(self.name, self.resolved_key())

    def cancel_flow(self, handle: JobHandle, context: FlowContext) -> Flow[tuple[CancelOutcome, ...]]:
        """Cancel every request of ``handle`` (fal.md §1.7)."""
        return self._flows().cancel(handle, context)

    def submit_flow(self, plan: Plan, context: FlowContext) -> Flow[JobHandle]:
        """Upload the zip (once per distinct content per client), submit every payload, return the handle."""
        return self._flows().submit(plan, context, None)

    def result_flow(self, handle: JobHandle, context: FlowContext) -> Flow[PhotoMakerResult]:
        """Poll each request of ``handle``, fetch the results, and assemble one result."""
        return self._flows().result(handle, context, None)

    def generate_flow(self, plan: Plan, context: FlowContext) -> Flow[PhotoMakerResult]:
        """Submit, then collect; a call abandoned midway cancels its requests."""
        return self._flows().generate(plan, context)

    def handle_for(self, request_id: str) -> JobHandle:
        """A handle for a request submitted earlier (by any process) to this adapter's application."""
        return JobHandle(provider=self.name, request_ids=(request_id,),
                         submitted_at=datetime.datetime.now(datetime.UTC),
                         details={"application": self.application, "submitted_at_known": False})

    def sync_performer(self) -> FalSyncPerformer:
        """Runs the flows' fal operations with one ``fal_client.SyncClient`` (created on first use)."""
        return FalSyncPerformer(self)

    def async_performer(self) -> FalAsyncPerformer:
        """Runs the flows' fal operations with one ``fal_client.AsyncClient`` (created on first use)."""
        return FalAsyncPerformer(self)


def _upload_for(data: bytes, count: int) -> UploadPlaceholder:
    digest = sha256_hex(data)
    return UploadPlaceholder(
        kind="zip", placeholder=upload_placeholder("zip", digest),
        description=f"zip of {count} image{'s' if count != 1 else ''}, {size_text(len(data))}",
        image_indices=tuple(range(count)), size=len(data), sha256=digest, content_type=_ZIP_CONTENT_TYPE,
        file_name=f"photomaker-{digest[:12]}.zip", data=data)


