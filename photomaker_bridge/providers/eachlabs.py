"""The Eachlabs adapter: PhotoMaker as an Eachlabs prediction, created, then polled until it finishes.

Section numbers (§) refer to ``docs/protocols/eachlabs.md``; "seed page" to Eachlabs' own API page for
``photomaker-style`` (docs/protocols/eachlabs.md SEED). The protocol (§1–§2)::

    POST /v1/upload/presign        once per distinct local reference image, then PUT the bytes (§2.11)
    POST /v1/prediction/           {"model", "version": "0.0.1", "input": {...}} -> predictionID (§2.1–2.3)
    GET  /v1/prediction/{id}       until success | error | cancelled (§2.4–2.7)
    POST /v1/prediction/{id}/cancel      when nobody will collect it: deadline of generate, failure, abandon (§2.8)

Translation tables come first, then the provider (settings, :meth:`EachlabsProvider.plan`). The flows live in
``_eachlabs_flows``, parsing in ``_eachlabs_parsing``, the polling schedule in ``_polling``.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from typing import Any, ClassVar, Final, Literal

import attrs

from .._coordination import Limits
from .._http import Flow
from ..errors import ConfigurationError, InvalidRequestError
from ..images import extension_of
from ..jobs import CancelOutcome, JobHandle
from ..plan import Plan, UploadPlaceholder
from ..prompts import apply_trigger
from ..request import PhotoMakerRequest
from ..result import PhotoMakerResult
from ..styles import Style
from . import _eachlabs_flows
from ._durations import DurationCache, DurationCacheSetting
from ._polling import DurationEstimate, PollPolicy
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
    size_text,
    split_count,
    upload_placeholder,
)

__all__ = ["EachlabsModel", "EachlabsProvider"]

EachlabsModel = Literal["photomaker-style", "photomaker"]
"""The two Eachlabs slugs running TencentARC PhotoMaker (§3); they differ only in the default style."""

# ------------------------------------------------------------------------------------------------ tables

_STYLE_TO_EACHLABS: Final[Mapping[Style, str]] = {
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

_MODEL_TO_TYPICAL_SECONDS: Final[Mapping[str, float]] = {
    "photomaker-style": 21.0,  # seed page: "Response time: ~21 seconds"
    "photomaker": 73.0,  # §5: "Estimated Processing Time: 73 seconds"
}
"""The first expected duration of a prediction, before any completed one has been learned from."""

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


# --------------------------------------------------------------------------------------------- provider


def _strip_slash(url: str) -> str:
    return str(url).rstrip("/")


def _check_model(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in _MODEL_TO_TYPICAL_SECONDS:
        raise ConfigurationError(f"unknown Eachlabs model {value!r}; use 'photomaker-style' or 'photomaker'")


@attrs.define(kw_only=True)
class EachlabsProvider(Provider):
    """Eachlabs' PhotoMaker models (``photomaker-style`` or ``photomaker``) over its prediction API.

    Every setting has a default; only the key is needed to send anything (``plan`` needs none)::

        provider = EachlabsProvider(api_key="...", model="photomaker")
        plan = provider.plan(PhotoMakerRequest(prompt="a woman img", images=["face.jpg"]))

    Polling is adaptive (see ``_polling``): it checks early, then tightens around the expected
    duration, which the instance learns from the predictions it completes (per model).
    """

    name: ClassVar[str] = "eachlabs"
    style_table: ClassVar[Mapping[Style, str]] = _STYLE_TO_EACHLABS
    capabilities: ClassVar[tuple[Capability, ...]] = (
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

    api_key: str | None = attrs.field(default=None, repr=False)
    """The Eachlabs API key; ``None`` reads ``EACHLABS_API_KEY`` when a request is sent."""
    base_url: str = attrs.field(default="https://api.eachlabs.ai", converter=_strip_slash)
    """Where the API lives (§1); point it at an emulator to test offline."""
    model: EachlabsModel = attrs.field(default="photomaker-style", validator=_check_model)
    """The model slug: ``photomaker-style`` (default style ``(No style)``, ~21 s) or ``photomaker``
    (default ``Photographic (Default)``, ~73 s). The bridge always sends the style, so only speed differs."""
    polling: PollPolicy = attrs.field(factory=PollPolicy)
    """The shape of the polling schedule and the per-request timeout."""
    expected_seconds: float | None = None
    """The first expected duration of a prediction; ``None``: the model's published typical time."""
    concurrency: int | None = attrs.field(default=10, validator=check_limit)
    """Predictions in flight at once through one client; more wait for a slot. Eachlabs caps accounts with a
    balance of $10 or less at 10 (§2.3, a 429 past it); raise it for a larger balance, ``None`` for no cap."""
    per_minute: int | None = attrs.field(default=None, validator=check_limit)
    """Creates a minute through one client; ``None`` (default): no limit. Eachlabs' current contract has none
    (§2.3); its older plan table and the seed page say 60 a minute on the Pro plan."""
    lease_seconds: float | None = None
    """How long a created prediction keeps its slot when nobody polls it (a handle not collected yet): by then
    Eachlabs has finished it. ``None``: four times the expected duration, at least two minutes."""
    duration_cache: DurationCacheSetting = attrs.field(default=None, validator=check_duration_cache)
    """Keep learned prediction lengths between runs (``_durations``): ``True`` in the user's cache directory, or
    a path; ``None`` (default): learn per adapter only. The CLI turns it on (docs/architecture.md, "Polling")."""
    _estimates: dict[str, DurationEstimate] = attrs.field(init=False, factory=dict, repr=False, eq=False)

    # ------------------------------------------------------------------------------------------ settings

    def require_key(self) -> None:
        """Raise :class:`ConfigurationError` when neither ``api_key=`` nor ``EACHLABS_API_KEY`` is set."""
        self._key()

    def _key(self) -> str:
        key = self.api_key or os.environ.get("EACHLABS_API_KEY")
        if not key:
            raise ConfigurationError("Eachlabs needs an API key: set EACHLABS_API_KEY or pass api_key= "
                                     "(EachlabsProvider(api_key=...) or the client's provider settings)")
        return key

    def _url(self, path: str) -> str:
        return self.base_url + path

    def estimate(self) -> DurationEstimate:
        """The learned expected duration of this provider's model (seeded from its typical time)."""
        if self.model not in self._estimates:
            guess = self.expected_seconds or _MODEL_TO_TYPICAL_SECONDS[self.model]
            known = self.expected_seconds is not None
            cache = DurationCache.from_setting(self.duration_cache, self.name)
            self._estimates[self.model] = (
                cache.estimate(f"{self.name}|{self.model}|{self.base_url}", guess, known=known) if cache is not None
                else DurationEstimate(guess, known=known))
        return self._estimates[self.model]

    # ------------------------------------------------------------------------------------------- plan

    def plan(self, request: PhotoMakerRequest, *, strict: bool = False, new_id: IdFactory = new_uuid) -> Plan:
        """One create body per prediction (at most 4 images each), the uploads they need, and every adjustment.

        ``provider_options["eachlabs"]`` is merged verbatim into every body after translation: the keys
        ``model``, ``version``, ``webhook_url``, ``webhook_secret`` and ``input`` (a mapping, merged into
        ``input``) go at the top level, where Eachlabs reads them (§2.1); every other key is a model input and
        goes in ``input``. Raises :class:`InvalidRequestError` for a Runware image UUID (only Runware can
        read it) and, when ``strict``, for any adjustment.
        """
        translator = Translator(self.name, strict=strict)
        model_input, uploads = self._translate_images(request, translator)
        self._translate_prompts(request, translator, model_input)
        self._translate_numbers(request, translator, model_input)
        counts = split_count(request.num_images, _MAX_OUTPUTS_PER_PREDICTION)
        note = f"split into {len(counts)} predictions of {counts}" if len(counts) > 1 else ""
        translator.send("num_images", "num_outputs", counts[0], note)
        seeds = self._translate_seed(request, translator, counts)

        options = dict(request.provider_options.get(self.name, {}))
        top_options = {key: value for key, value in options.items() if key in _TOP_LEVEL_OPTION_KEYS}
        input_options = {key: value for key, value in options.items() if key not in _TOP_LEVEL_OPTION_KEYS}
        payloads: list[dict[str, Any]] = []
        images_per_payload: list[int] = []
        for index, count in enumerate(counts):
            per_prediction = dict(model_input, num_outputs=count)
            if seeds[index] is not None:
                per_prediction["seed"] = seeds[index]
            body: dict[str, Any] = {"model": self.model, "version": _VERSION}
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
        return Plan(provider=self.name, target=f"POST {self._url('/v1/prediction/')}", payloads=payloads,
                    uploads=uploads, warnings=tuple(translator.warnings), mapping=tuple(translator.mapping),
                    images_per_payload=tuple(images_per_payload))

    def _translate_images(self, request: PhotoMakerRequest,
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

    def _translate_prompts(self, request: PhotoMakerRequest, translator: Translator,
                           model_input: dict[str, Any]) -> None:
        # 'img' exactly once, right after the class word (§3.3); 'rwre' is renamed, a missing one inserted.
        prompt, warnings = apply_trigger(request.prompt, "img", provider=self.name)
        for warning in warnings:
            translator.warn(warning)
        model_input["prompt"] = translator.send("prompt", "prompt", prompt)
        model_input["style_name"] = translator.send("style", "style_name", _STYLE_TO_EACHLABS[request.style])
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

    def _translate_numbers(self, request: PhotoMakerRequest, translator: Translator,
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

    def _translate_seed(self, request: PhotoMakerRequest, translator: Translator,
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

    # ------------------------------------------------------------------------------------------- flows

    def headers(self) -> dict[str, str]:
        """The headers of an API request. The key goes as ``Authorization: Bearer``, the documented form (§1;
        the seed page's ``X-API-Key`` still works but is no longer documented), and only to the API: never to
        the presigned storage URL."""
        return {"Authorization": f"Bearer {self._key()}", "Content-Type": "application/json"}

    def with_webhook(self, plan: Plan, url: str) -> Plan:
        """Refused with :class:`ConfigurationError`: Eachlabs' create body takes a ``webhook_url``, but its
        documentation says "Currently, webhooks are only supported for Workflows V2" — not predictions (§2.10)."""
        raise ConfigurationError("Eachlabs documents webhooks for Workflows V2 only, not for predictions "
                                 "(docs/protocols/eachlabs.md §2.10): leave webhook_url out and collect the result "
                                 "with result() or generate()")

    def limits(self) -> Limits:
        """At most ``concurrency`` predictions in flight and ``per_minute`` creates a minute, per client."""
        lease = self.lease_seconds or max(120.0, 4 * self.estimate().seconds)
        return Limits(concurrency=self.concurrency, per_minute=self.per_minute, lease_seconds=lease)

    def account(self) -> str:
        """The provider and a hash of the key: how shared state names this account (never the key)."""
        return account_of(self.name, self._key())

    def submit_flow(self, plan: Plan, context: FlowContext) -> Flow[JobHandle]:
        """Upload, create the plan's predictions, return their handle (``_eachlabs_flows.submit``)."""
        return _eachlabs_flows.submit(self, plan, context)

    def result_flow(self, handle: JobHandle, context: FlowContext) -> Flow[PhotoMakerResult]:
        """Poll the handle's predictions and assemble one result (``_eachlabs_flows.result``)."""
        return _eachlabs_flows.result(self, handle, context)

    def generate_flow(self, plan: Plan, context: FlowContext) -> Flow[PhotoMakerResult]:
        """Submit, then collect (``_eachlabs_flows.generate``)."""
        return _eachlabs_flows.generate(self, plan, context)

    def cancel_flow(self, handle: JobHandle, context: FlowContext) -> Flow[tuple[CancelOutcome, ...]]:
        """Cancel the handle's predictions (``_eachlabs_flows.cancel``)."""
        return _eachlabs_flows.cancel(self, handle, context)

    def handle_for(self, request_id: str) -> JobHandle:
        """A handle for predictions created earlier, from their ids (several separated by commas).

        Its submission time is unknown, so the first poll of each prediction happens at once and the
        duration it took is not learned from.
        """
        ids = tuple(part.strip() for part in request_id.split(",") if part.strip())
        if not ids:
            raise InvalidRequestError("request_id", request_id, "an Eachlabs predictionID (or several, "
                                      "separated by commas)")
        return JobHandle(provider=self.name, request_ids=ids, submitted_at=datetime.datetime.now(datetime.UTC),
                         details={"model": self.model, "resumed": True})
