"""The Eachlabs adapter: PhotoMaker as an Eachlabs prediction, created, then polled until it finishes.

Section numbers (§) refer to ``shared/providers/eachlabs.md``; "seed page" to Eachlabs' own API page for
``photomaker-style`` (``shared/seeds/002_*``). The protocol (§1–§2)::

    POST /v1/upload/presign        once per distinct local reference image, then PUT the bytes (§2.11)
    POST /v1/prediction/           {"model", "version": "0.0.1", "input": {...}} -> predictionID (§2.1–2.3)
    GET  /v1/prediction/{id}       until success | error | cancelled (§2.4–2.7)
    POST /v1/prediction/{id}/cancel      when nobody will collect it: deadline of generate, failure, abandon (§2.8)

Translation tables come first, then the provider (settings, :meth:`EachlabsProvider.plan`), then the flows.
Parsing lives in ``_eachlabs_parsing``, the polling schedule in ``_polling``.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final, Literal

import attrs

from .._http import CLEANUP_GRACE_SECONDS, DeadlineReached, Event, Flow, HttpRequest, Wait
from .._transports import RequestsTransport
from ..errors import (
    ConfigurationError,
    GenerationTimeoutError,
    InvalidRequestError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
)
from ..images import extension_of
from ..jobs import JobHandle
from ..plan import Plan, UploadPlaceholder
from ..prompts import apply_trigger
from ..request import PhotoMakerRequest
from ..result import PhotoMakerResult
from ..styles import Style
from ._eachlabs_parsing import (
    PredictionSnapshot,
    assemble_result,
    parse_create,
    parse_prediction,
    parse_presign,
    upload_error,
)
from ._polling import DurationEstimate, PollPolicy, PollTimer, duration_sample
from .base import (
    Capability,
    FlowContext,
    IdFactory,
    Provider,
    Translator,
    deep_merge,
    fill_placeholders,
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
_UNANSWERED_CREATE: Final = "a create got no answer, so Eachlabs may have accepted a prediction not listed here"
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
            seconds = self.expected_seconds or _MODEL_TO_TYPICAL_SECONDS[self.model]
            self._estimates[self.model] = DurationEstimate(seconds)
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

    def _headers(self) -> dict[str, str]:
        # The key goes in X-API-Key only, as on the seed page (Bearer also works, §1), and only to the API:
        # never to the presigned storage URL.
        return {"X-API-Key": self._key(), "Content-Type": "application/json"}

    def submit_flow(self, plan: Plan, context: FlowContext) -> Flow[JobHandle]:
        """Upload the plan's local images (once per client, by content hash), then create its predictions
        back to back. Returns the handle of all of them.

        An accepted prediction is never left running unreported:

        * each create is marked ``creates_job``, so a create in flight when the deadline passes may finish
          within the clean-up grace; then, at the deadline, created predictions are cancelled when
          ``cancel_on_deadline``, and :class:`GenerationTimeoutError` carries their handle;
        * if a create fails after others succeeded (or ``on_event`` raises), no handle is returned, so those are
          cancelled (nobody could collect them) and the error, naming them, is raised;
        * if the flow is abandoned (the caller's task cancelled, KeyboardInterrupt), they are cancelled in the
          background, since a flow being closed can no longer yield.
        """
        headers = self._headers()
        began = context.clock()
        created: list[tuple[str, datetime.datetime]] = []
        upload_seconds: float | None = None
        creating = False
        try:
            urls: dict[str, str] = {}
            for upload in plan.uploads:
                urls[upload.placeholder] = yield from self._upload(upload, context, headers)
            if plan.uploads:
                upload_seconds = context.clock() - began
            for payload in plan.payloads:
                body = fill_placeholders(payload, urls)
                creating = True
                response = yield HttpRequest.json("POST", self._url("/v1/prediction/"), self.name, body,
                                                  headers=headers, timeout=self.polling.request_timeout,
                                                  creates_job=True)
                creating = False
                prediction_id = parse_create(response)
                created.append((prediction_id, datetime.datetime.now(datetime.UTC)))
                yield Event("submitted", self.name, prediction_id)
        except DeadlineReached as reached:
            ids = [prediction_id for prediction_id, _ in created]
            handle = self._handle(plan, created, upload_seconds) if created else None
            if ids and context.cancel_on_deadline:
                yield from self._cancel(ids, headers)
            what = "while creating the predictions" if created or not plan.uploads else "while uploading"
            if creating and reached.__cause__ is not None:
                # Sent, then cut even after the grace: Eachlabs may have accepted it, and we cannot know its id.
                what += "; " + _UNANSWERED_CREATE
            raise GenerationTimeoutError(f"the deadline passed {what}", provider=self.name, handle=handle,
                                         request_id=ids[0] if ids else None) from None
        except GeneratorExit:
            self._cancel_in_background([prediction_id for prediction_id, _ in created], headers)
            raise
        except Exception as error:  # a refused create, or on_event raising: no handle will be returned
            ids = [prediction_id for prediction_id, _ in created]
            if ids:
                yield from self._cancel(ids, headers)
            notes = [_job_note(ids, failed=None, cancelled=ids, running=[])]
            if creating and isinstance(error, ProviderError) and error.status is None:
                notes.append(_UNANSWERED_CREATE)  # a dropped connection: the create may have gone through
            _add_note(error, "; ".join(filter(None, notes)))
            raise
        return self._handle(plan, created, upload_seconds)

    def _handle(self, plan: Plan, created: list[tuple[str, datetime.datetime]],
                upload_seconds: float | None) -> JobHandle:
        submitted_at = created[0][1]
        counts = list(plan.images_per_payload[: len(created)])
        details: dict[str, Any] = {
            "model": self.model,
            # Seconds between the first create and each create: polling times each prediction from its own.
            "created_after": [(when - submitted_at).total_seconds() for _, when in created],
        }
        if upload_seconds is not None:
            details["upload_seconds"] = upload_seconds
        return JobHandle(provider=self.name, request_ids=tuple(prediction_id for prediction_id, _ in created),
                         submitted_at=submitted_at, requested_images=sum(counts) or None,
                         images_per_request=tuple(counts), warnings=tuple(plan.warnings), details=details)

    def _upload(self, upload: UploadPlaceholder, context: FlowContext, headers: Mapping[str, str]) -> Flow[str]:
        cache_key = f"{self.name}:{upload.sha256}"
        cached = context.upload_cache.get(cache_key)
        if cached is not None:
            return cached
        yield Event("uploading", self.name, message=upload.description)
        response = yield HttpRequest.json("POST", self._url("/v1/upload/presign"), self.name,
                                          {"content_type": upload.content_type, "file_type": "image"},
                                          headers=headers, timeout=self.polling.request_timeout)
        presigned = parse_presign(response)
        # The PUT goes to storage (S3), signed by its URL: the Content-Type named at presign and the
        # required_headers, never the API key (§2.11).
        put_headers = {"Content-Type": upload.content_type, **presigned.required_headers}
        response = yield HttpRequest("PUT", presigned.presigned_url, self.name, put_headers, upload.data,
                                     timeout=self.polling.request_timeout)
        if not 200 <= response.status < 300:
            raise upload_error(response)
        context.upload_cache[cache_key] = presigned.public_url
        return presigned.public_url

    def _cancel(self, prediction_ids: list[str], headers: Mapping[str, str]) -> Flow[None]:
        """Best-effort cancel (§2.8): failures are ignored, the caller's own error matters more. Closed midway
        (the caller's task cancelled during the clean-up), it leaves the rest to a background thread."""
        for index, prediction_id in enumerate(prediction_ids):
            try:
                yield HttpRequest("POST", self._url(f"/v1/prediction/{prediction_id}/cancel"), self.name,
                                  dict(headers), timeout=self.polling.request_timeout)
            except (ProviderError, DeadlineReached):
                continue
            except GeneratorExit:
                self._cancel_in_background(prediction_ids[index:], headers)
                raise

    def _cancel_in_background(self, prediction_ids: Sequence[str], headers: Mapping[str, str]) -> None:
        """Cancel ``prediction_ids`` (§2.8) from a background thread, for a flow being closed: it can no longer
        yield, and the Eachlabs adapter has no performer to hand the cancels to (fal's ``JobTracker`` does).

        A thread, for the async client too: an ``asyncio.run`` ending right after the cancelled task would
        cancel a task left on the loop before it sent anything, while the (non-daemon) thread is waited for at
        interpreter exit. Only ``X-API-Key`` is sent, within CLEANUP_GRACE_SECONDS in all; nothing is raised.
        """
        if not prediction_ids:
            return
        key = {"X-API-Key": headers["X-API-Key"]}
        requests = [HttpRequest("POST", self._url(f"/v1/prediction/{prediction_id}/cancel"), self.name, key)
                    for prediction_id in prediction_ids]
        with contextlib.suppress(RuntimeError):  # no new thread at interpreter shutdown: nothing more to do
            threading.Thread(target=_send_quietly, args=(requests,), name="eachlabs-cancel").start()

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

    def result_flow(self, handle: JobHandle, context: FlowContext) -> Flow[PhotoMakerResult]:
        """Poll each prediction of ``handle`` on the adaptive schedule until all succeed, then assemble one
        result.

        * A failed prediction cancels its unfinished siblings and its error is raised.
        * A poll that keeps failing (after ``polling.error_retries`` retries) raises its error; under
          ``generate`` (``cancel_on_deadline``) the unfinished predictions are cancelled first, otherwise they
          are left running for a later ``resume``.
        * A raised ProviderError names every prediction of the job in its message (it has no handle field)
          and what became of them; ``request_id`` stays the prediction whose poll failed.
        * At the deadline: cancel when ``cancel_on_deadline``, then raise :class:`GenerationTimeoutError` with
          the handle.
        * Abandoned (the caller's task cancelled, ``on_event`` raising) under ``cancel_on_deadline``: nobody
          will collect the unfinished predictions, so they are cancelled (in the background when the flow is
          being closed). ``result``/``resume`` leave them running: the caller holds the handle.
        """
        headers = self._headers()
        ids = list(handle.request_ids)
        estimate = self.estimate()
        resumed = handle.details.get("resumed") is True
        offsets = handle.details.get("created_after")
        age = (datetime.datetime.now(datetime.UTC) - handle.submitted_at).total_seconds()
        now = context.clock()
        origins: dict[str, float] = {}
        timers: dict[str, PollTimer] = {}
        for index, prediction_id in enumerate(ids):
            offset = offsets[index] if isinstance(offsets, list) and index < len(offsets) else 0.0
            origins[prediction_id] = now - max(age - float(offset), 0.0)
            timers[prediction_id] = PollTimer(self.polling, estimate.seconds)
            if resumed:
                timers[prediction_id].next_at = 0.0
        snapshots: dict[str, PredictionSnapshot] = {}
        phases: dict[str, str] = {}
        failures: dict[str, int] = {}
        failed_job = False

        def unfinished() -> list[str]:
            return [prediction_id for prediction_id in ids if prediction_id not in snapshots]

        try:
            while len(snapshots) < len(ids):
                prediction_id = min(unfinished(), key=lambda each: origins[each] + timers[each].next_at)
                timer = timers[prediction_id]
                delay = origins[prediction_id] + timer.next_at - context.clock()
                if delay > 0:
                    yield Wait(delay)
                request = HttpRequest("GET", self._url(f"/v1/prediction/{prediction_id}"), self.name,
                                      headers, timeout=self.polling.request_timeout)
                try:
                    response = yield request
                    snapshot = parse_prediction(response, prediction_id)
                except ProviderError as error:
                    if not isinstance(error, ProviderUnavailableError | RateLimitedError) or not error.retryable:
                        # A 2xx answer that is an error is the prediction's own failure (§2.6); a redirect
                        # (unexpected_redirect, not retryable) would only come again.
                        failed_job = error.status is not None and 200 <= error.status < 300
                        raise
                    # A failed read (5xx, dropped connection, unreadable body, 429): safe to repeat (§4).
                    failures[prediction_id] = failures.get(prediction_id, 0) + 1
                    if failures[prediction_id] > self.polling.error_retries:
                        raise
                    hint = error.retry_after if isinstance(error, RateLimitedError) else None
                    timer.retry_after_error(context.clock() - origins[prediction_id], failures[prediction_id],
                                            hint)
                    continue
                failures.pop(prediction_id, None)
                elapsed = context.clock() - origins[prediction_id]
                if phases.get(prediction_id) != snapshot.phase:
                    phases[prediction_id] = snapshot.phase
                    kind = {"queued": "queued", "running": "running", "succeeded": "completed"}[snapshot.phase]
                    yield Event(kind, self.name, prediction_id)
                if not snapshot.finished:
                    timer.pending(elapsed, started=snapshot.phase == "running")
                    continue
                snapshots[prediction_id] = snapshot
                if not resumed:
                    estimate.update(duration_sample(timer.last_pending, elapsed, snapshot.predict_time))
            result = assemble_result([snapshots[prediction_id] for prediction_id in ids], handle,
                                     total_seconds=context.clock() - context.started_at)
        except DeadlineReached:
            left = unfinished()
            if context.cancel_on_deadline:
                yield from self._cancel(left, headers)
            done = "cancelled" if context.cancel_on_deadline else "still running; resume with the handle"
            raise GenerationTimeoutError(f"the deadline passed before {len(left)} of {len(ids)} Eachlabs "
                                         f"prediction(s) finished ({done})", provider=self.name,
                                         request_id=left[0] if left else None, handle=handle) from None
        except ProviderError as error:
            left = unfinished()
            cancelled: list[str]
            running: list[str]
            if failed_job:
                # A failed prediction fails the whole job: its siblings would never be collected.
                cancelled, running = [each for each in left if each != error.request_id], []
            elif context.cancel_on_deadline:
                # A poll that keeps failing under generate: nobody will collect the job either (§2.8).
                cancelled, running = left, []
            else:
                # result()/resume(): the job may still be collected later with its handle.
                cancelled, running = [], left
            yield from self._cancel(cancelled, headers)
            _add_note(error, _job_note(ids, failed=error.request_id, cancelled=cancelled, running=running))
            yield Event("failed", self.name, error.request_id, message=str(error))
            raise
        except GeneratorExit:
            if context.cancel_on_deadline:
                self._cancel_in_background(unfinished(), headers)
            raise
        except Exception:  # on_event raised: the call ends here, and under generate nobody will collect
            if context.cancel_on_deadline:
                yield from self._cancel(unfinished(), headers)
            raise
        return result


def _job_note(ids: Sequence[str], *, failed: str | None, cancelled: Sequence[str], running: Sequence[str]) -> str:
    """What became of a job's predictions, for the message of the error that ends the call: ProviderError has
    no handle, so every id is named once (``failed`` is already the error's ``request_id``)."""
    parts = []
    if cancelled:
        parts.append(f"cancelled: {', '.join(cancelled)}")
    if running:
        parts.append(f"still running, resume with request id {','.join(ids)}")
    else:
        others = [each for each in ids if each != failed and each not in cancelled]
        if others:
            parts.append(f"also in this job: {', '.join(others)}")
    return "; ".join(parts)


def _add_note(error: BaseException, note: str) -> None:
    """Append ``note`` to a ProviderError's message, in place (other exceptions are the caller's own)."""
    if isinstance(error, ProviderError) and note:
        error.message = f"{error.message} ({note})"
        error.args = (error.message,)


def _send_quietly(requests: Sequence[HttpRequest]) -> None:
    """Send ``requests`` one after another within CLEANUP_GRACE_SECONDS in all; never raises (a background
    thread's clean-up has nobody to report to)."""
    ends = time.monotonic() + CLEANUP_GRACE_SECONDS
    transport = RequestsTransport()
    try:
        for request in requests:
            left = ends - time.monotonic()
            if left <= 0:
                break
            with contextlib.suppress(Exception):
                transport.send(request.with_timeout(left))
    finally:
        transport.close()
