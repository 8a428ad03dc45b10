"""A local stand-in for Eachlabs' prediction API, serving the ``photomaker`` and ``photomaker-style`` models.

It speaks the protocol of docs/protocols/eachlabs.md (cited below as "eachlabs.md §n") closely enough
that the create-then-poll code on Eachlabs' own API page runs against it unchanged::

    POST /v1/prediction/          create  -> {"status": "success", "message": ..., "predictionID": ...}
    POST /v1/prediction/run       create and wait -> {"status", "message", "predictionID", "output", "error"}
    GET  /v1/prediction/{id}      poll    -> {id, input, logs, status, output, metrics, urls}
    POST /v1/prediction/{id}/cancel
    POST /v1/upload/presign       then PUT the bytes to ``presigned_url``; served at ``public_url``

Creates are limited per key to ``settings.max_in_flight`` unfinished predictions and ``settings.per_minute``
creates a minute; both refusals are 429s with ``Retry-After``. ``counters["peak_in_flight"]`` records the most
predictions ever unfinished at once.

Authentication is ``X-API-Key: <key>`` or ``Authorization: Bearer <key>`` with ``state.settings.api_key``.
Schema violations are refused at create time with Eachlabs' 400 body; failures the model itself would raise
(trigger word rules, an input image that cannot be downloaded) arrive later as ``status: "error"``. Output
images are real PNGs served from the emulator's own origin. Nothing is ever fetched over the network: an
input URL is downloadable when it names a file the emulator serves, and any other URL only when
``state.settings.external_urls_reachable`` is set.

Usage::

    state = EmulatorState("eachlabs")
    app = create_app(state)            # an aiohttp Application; run it with AppRunner or TestServer
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import functools
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable

from aiohttp import web

from ._common import EmulatorState, Fault, fault_middleware, is_loopback
from ._eachlabs_errors import (
    CANNOT_CANCEL,
    INVALID_API_KEY,
    INVALID_INPUT,
    INVALID_REQUEST_BODY,
    MODEL_NOT_FOUND,
    MODEL_REQUIRED,
    PREDICTION_NOT_FOUND,
    SYNC_NOT_SUPPORTED,
    error_response,
    injected_error,
    rate_limit_exceeded,
    too_many_requests,
)
from ._eachlabs_failures import (
    DEFAULT_JOB_FAILURE_MESSAGE,
    Failure,
    download_failure,
    not_an_image_failure,
    provider_failure,
    trigger_word_error,
    validation_failure,
)
from ._eachlabs_http import json_object, new_uuid, presented_key, request_id_middleware
from ._eachlabs_limits import CreationWindow, retry_after_header, seconds_until_a_slot_frees
from ._eachlabs_options import EachlabsOptions
from ._eachlabs_predictions import Prediction
from ._eachlabs_schema import MAX_SEED, MODELS, InputRejected, PhotoMakerInput, validate_input
from ._eachlabs_storage import MAX_UPLOAD_BYTES, PRESIGNED_PATH_PREFIX, PUBLIC_PATH_PREFIX, Storage
from ._eachlabs_uploads import presign_upload, put_upload, serve_file
from ._images import render_image, sniff_format

__all__ = ["EMULATOR_KEY", "EachlabsEmulator", "EachlabsOptions", "create_app"]

_RUN_WAIT_STEP = 0.05
"""Seconds between checks, while ``/v1/prediction/run`` waits, that the prediction ended or the client left."""

OUTPUT_SIZE = 1024
"""Width and height of output images: SDXL's default, which the predictor does not change (eachlabs.md §3.3)."""

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The path of the request being handled, so that the fault middleware's error builder (which is given only
# the status and the fault) can answer with the 500 text of that route.
_CURRENT_PATH: contextvars.ContextVar[str] = contextvars.ContextVar("eachlabs_request_path", default="")


class EachlabsEmulator:
    """The handlers and in-memory records behind one emulator application."""

    def __init__(self, state: EmulatorState, options: EachlabsOptions) -> None:
        self.state = state
        self.options = options
        self.predictions: dict[str, Prediction] = {}
        """Every prediction created, by id."""
        self.storage = Storage()
        """Presigned and uploaded files."""
        self.window = CreationWindow()
        """Recent creates per key, for the per-minute limit."""

    # ----------------------------------------------------------------------------------------------- helpers

    def authenticate(self, request: web.Request) -> str | None:
        key = presented_key(request)
        if key is not None and secrets.compare_digest(key.encode(), self.state.settings.api_key.encode()):
            return key
        return None

    def injected_error(self, status: int, fault: Fault) -> web.StreamResponse:
        """Eachlabs' own error answer for an injected HTTP status (used by the fault middleware)."""
        return injected_error(status, fault, _CURRENT_PATH.get(), self.state.settings.max_in_flight)

    def in_flight(self, api_key: str, now: float) -> int:
        """How many predictions of ``api_key`` have not finished at monotonic time ``now``."""
        return sum(1 for prediction in self.predictions.values()
                   if prediction.api_key == api_key and not prediction.is_terminal(now))

    def served_file(self, path: str, now: float) -> tuple[bytes, str] | None:
        """Bytes and MIME type of what the emulator serves at ``path`` right now, if anything."""
        if not path.startswith(PUBLIC_PATH_PREFIX):
            return None
        rest = path[len(PUBLIC_PATH_PREFIX):]
        prediction_id, separator, file_name = rest.partition("/")
        if not separator:
            stored = self.storage.uploaded(rest)
            return None if stored is None or stored.data is None else (stored.data, stored.content_type)
        prediction = self.predictions.get(prediction_id)
        index = None if prediction is None else prediction.output_index(file_name, now)
        if prediction is None or index is None:
            return None
        image = render_image(seed=prediction.seed + index, style=prediction.style_name, width=OUTPUT_SIZE,
                             height=OUTPUT_SIZE)
        return image, "image/png"

    def _is_own_origin(self, url: urllib.parse.SplitResult, request: web.Request) -> bool:
        try:
            port = url.port or (443 if url.scheme == "https" else 80)
        except ValueError:
            return False
        host = url.hostname or ""
        own_host = request.url.host or ""
        return port == request.url.port and (host == own_host.lower() or is_loopback(host))

    def _image_failure(self, field: str, value: str, request: web.Request, now: float) -> Failure | None:
        """Why the input image at ``value`` cannot be used, or ``None`` when it can."""
        if value.startswith("data:"):
            if not self.options.data_uris_downloadable:
                return download_failure(field, value[:40] + "...")
            header, _, payload = value.partition(",")
            try:
                data = (base64.b64decode(payload, validate=True) if header.endswith(";base64")
                        else urllib.parse.unquote_to_bytes(payload))
            except (binascii.Error, ValueError):
                return download_failure(field, value[:40] + "...")
            return None if sniff_format(data) else not_an_image_failure(field, value[:40] + "...")
        url = urllib.parse.urlsplit(value)
        if url.scheme not in ("http", "https") or not url.netloc:
            return download_failure(field, value)
        if self._is_own_origin(url, request):
            served = self.served_file(url.path, now)
            if served is None:
                return download_failure(field, value)
            return None if sniff_format(served[0]) else not_an_image_failure(field, value)
        # The emulator never touches the network: a foreign URL is as good as the settings say.
        return None if self.state.settings.external_urls_reachable else download_failure(field, value)

    def _runtime_failure(self, checked: PhotoMakerInput, request: web.Request, now: float) -> Failure | None:
        # Cog downloads every file input before predict() runs, so a bad URL wins over prompt errors; then
        # the predictor's own trigger-word checks (eachlabs.md §3.3).
        for field, value in checked.input_images:
            failure = self._image_failure(field, value, request, now)
            if failure is not None:
                return failure
        message = trigger_word_error(checked.prompt, checked.negative_prompt)
        return None if message is None else provider_failure(message)

    # ---------------------------------------------------------------------------------------------- handlers

    async def _admit(self, request: web.Request) -> Prediction | web.Response:
        """The prediction a create (or run) request makes, or the answer refusing it (eachlabs.md §2.1–2.3)."""
        api_key = self.authenticate(request)
        if api_key is None:
            return error_response(401, INVALID_API_KEY)
        body = await json_object(request)
        if body is None:
            return error_response(400, INVALID_REQUEST_BODY)
        slug = body.get("model")
        if not isinstance(slug, str) or not slug.strip():
            return error_response(400, MODEL_REQUIRED)
        model = MODELS.get(slug)
        if model is None:
            # [UNVERIFIED] status: the docs list the "Model not found" text, not the code (eachlabs.md §2.3).
            return error_response(404, MODEL_NOT_FOUND)
        raw_input = body.get("input")
        if not isinstance(raw_input, dict):
            return error_response(400, INVALID_INPUT, details="input: expected an object")
        webhook_url = body.get("webhook_url")
        if webhook_url is not None and not isinstance(webhook_url, str):
            return error_response(400, INVALID_REQUEST_BODY)
        # `version` is deprecated and ignored (MD-OAS, eachlabs.md §2.1); `webhook_url: ""` means "no webhook".

        checked: PhotoMakerInput | None = None
        failure: Failure | None = None
        try:
            checked = validate_input(model, raw_input)
        except InputRejected as rejected:
            self.state.counters["predictions_rejected"] += 1
            # [UNVERIFIED] timing: the docs promise a 400 at create for input that "doesn't match model
            # schema" and also list an async INPUT_VALIDATION_ERROR (eachlabs.md §3.1, §6.3).
            if self.options.validate_at_create:
                return error_response(400, INVALID_INPUT, details=rejected.details)
            failure = validation_failure(rejected.details)

        now = time.monotonic()
        refusal = self._limit_refusal(api_key, now)
        if refusal is not None:
            return refusal

        fault = self.state.job_fault(request.path)
        if checked is not None:
            failure = self._runtime_failure(checked, request, now)
        image_count = checked.num_outputs if checked is not None else 0
        stuck = False
        if fault is not None:
            if fault.kind == "fail_job" and failure is None:
                failure = provider_failure(fault.message or DEFAULT_JOB_FAILURE_MESSAGE)
            elif fault.kind == "stuck_job":
                stuck = True
            elif fault.kind == "partial":
                fewer = fault.images if fault.images is not None else image_count - 1
                image_count = max(0, min(image_count, fewer))

        prediction_id = new_uuid(self.state, self.predictions.__contains__)
        seed = checked.seed if checked is not None and checked.seed is not None else None
        if seed is None:
            seed = self.state.random.randint(0, MAX_SEED)
        prediction = Prediction(
            id=prediction_id,
            model=model,
            input=raw_input,
            api_key=api_key,
            seed=seed,
            style_name=checked.style_name if checked is not None else model.default_style,
            image_count=image_count,
            queue_seconds=self.state.queue_seconds(fault),
            run_seconds=self.state.draw(self.state.settings.run_time),
            created_at=now,
            stuck=stuck,
            failure=failure,
        )
        self.predictions[prediction_id] = prediction
        self.window.record(api_key, now)
        counters = self.state.counters
        counters["predictions_created"] += 1
        # The cap is per key; the peak is over every key, for tests that assert a client never passed it.
        in_flight = sum(1 for other in self.predictions.values() if not other.is_terminal(now))
        counters["peak_in_flight"] = max(counters["peak_in_flight"], in_flight)
        return prediction

    def _limit_refusal(self, api_key: str, now: float) -> web.Response | None:
        """The 429 that refuses a create beyond the concurrency cap or the per-minute limit, if any.

        A refused create creates and bills nothing (eachlabs.md §2.3). Both answers carry ``Retry-After``: the
        seconds until the create would be admitted (see ``_eachlabs_limits``).
        """
        settings = self.state.settings
        in_flight = [prediction for prediction in self.predictions.values()
                     if prediction.api_key == api_key and not prediction.is_terminal(now)]
        if len(in_flight) >= settings.max_in_flight:
            self.state.counters["predictions_rate_limited"] += 1
            wait = seconds_until_a_slot_frees(in_flight, now)
            return too_many_requests(settings.max_in_flight, headers=retry_after_header(
                self.options.concurrency_retry_after if wait is None else wait))
        wait = self.window.wait_needed(api_key, now, settings.per_minute)
        if wait is not None:
            self.state.counters["predictions_rate_limited_per_minute"] += 1
            return rate_limit_exceeded(wait, headers=retry_after_header(wait))
        return None

    async def create_prediction(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/prediction`` (and with a trailing slash): accept a prediction (eachlabs.md §2.1–2.3)."""
        admitted = await self._admit(request)
        if isinstance(admitted, web.Response):
            return admitted
        return web.json_response(
            {"status": "success", "message": "Prediction created successfully", "predictionID": admitted.id})

    async def run_prediction(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/prediction/run``: create, wait until the prediction ends, answer its outcome at once.

        Documented by the OpenAPI spec (``runPrediction``) and the JS client (eachlabs.md §2.9): "only supported
        for models with synchronous execution enabled; unsupported models return a bad request error". Whether
        the PhotoMaker models are enabled is not documented: ``EachlabsOptions.synchronous_models`` says which
        are.
        """
        if self.authenticate(request) is None:
            return error_response(401, INVALID_API_KEY)
        body = await json_object(request)
        if body is None:
            return error_response(422, INVALID_REQUEST_BODY)  # the spec's own 422 for this route (§2.3)
        slug = body.get("model")
        if isinstance(slug, str) and slug in MODELS and slug not in self.options.synchronous_models:
            return error_response(400, SYNC_NOT_SUPPORTED)
        admitted = await self._admit(request)
        if isinstance(admitted, web.Response):
            return admitted
        self.state.counters["runs"] += 1
        while not admitted.is_terminal(time.monotonic()):
            transport = request.transport
            if transport is None or transport.is_closing():
                return web.Response(status=499)  # the client left; nobody reads this
            await asyncio.sleep(min(_RUN_WAIT_STEP, max(0.0, admitted.finished_at - time.monotonic())))
        return web.json_response(admitted.run_answer(
            time.monotonic(), str(request.url.origin()),
            single_output_as_string=self.options.single_output_as_string))

    def _prediction_or_error(self, request: web.Request) -> Prediction | web.Response:
        if self.authenticate(request) is None:
            return error_response(401, INVALID_API_KEY)
        prediction = self.predictions.get(request.match_info["prediction_id"])
        if prediction is None:
            return error_response(404, PREDICTION_NOT_FOUND)
        return prediction

    async def get_prediction(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/prediction/{id}``: the prediction as it stands now (eachlabs.md §2.4–2.7)."""
        found = self._prediction_or_error(request)
        if isinstance(found, web.Response):
            return found
        self.state.counters["polls"] += 1
        body = found.body(
            time.monotonic(),
            str(request.url.origin()),
            cost_per_second=self.state.settings.cost_per_second,
            single_output_as_string=self.options.single_output_as_string,
            failure_output_as_string=self.options.failure_output_as_string,
        )
        return web.json_response(body)

    async def cancel_prediction(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/prediction/{id}/cancel``: only while the prediction is unfinished (eachlabs.md §2.8)."""
        found = self._prediction_or_error(request)
        if isinstance(found, web.Response):
            return found
        if not found.cancel(time.monotonic()):
            return error_response(self.options.terminal_cancel_status, CANNOT_CANCEL)
        self.state.counters["cancels"] += 1
        # The production-verified answer says "canceled" (one l) while the status is "cancelled" (§2.8).
        return web.json_response(
            {"status": "success", "message": "Prediction canceled successfully", "predictionID": found.id}
        )

EMULATOR_KEY = web.AppKey("eachlabs_emulator", EachlabsEmulator)
"""Where :func:`create_app` keeps the :class:`EachlabsEmulator` in the application, for inspection."""


def create_app(state: EmulatorState, options: EachlabsOptions | None = None) -> web.Application:
    """An aiohttp application emulating Eachlabs' prediction and upload API for the PhotoMaker models.

    ``state`` carries the key, timings, faults, request log and counters (``predictions_created``,
    ``predictions_rejected``, ``predictions_rate_limited``, ``polls``, ``cancels``, ``presigns``,
    ``uploads``, ``downloads``); ``options`` settles the behaviours the reference leaves unverified.
    Starts no background task.
    """
    emulator = EachlabsEmulator(state, options or EachlabsOptions())
    app = web.Application(
        middlewares=[
            request_id_middleware(_CURRENT_PATH),
            # Served files stand for the CDN, which the API's faults do not affect.
            fault_middleware(state, emulator.injected_error, skip=(PUBLIC_PATH_PREFIX,)),
        ],
        client_max_size=MAX_UPLOAD_BYTES + 1024 * 1024,
    )
    app[EMULATOR_KEY] = emulator
    app.router.add_post("/v1/prediction", emulator.create_prediction)
    app.router.add_post("/v1/prediction/", emulator.create_prediction)
    app.router.add_post("/v1/prediction/run", emulator.run_prediction)
    app.router.add_get("/v1/prediction/{prediction_id}", emulator.get_prediction)
    app.router.add_post("/v1/prediction/{prediction_id}/cancel", emulator.cancel_prediction)
    app.router.add_post("/v1/upload/presign", functools.partial(presign_upload, emulator))
    app.router.add_put(PRESIGNED_PATH_PREFIX + "{name}", functools.partial(put_upload, emulator))
    app.router.add_get(PUBLIC_PATH_PREFIX + "{name}", functools.partial(serve_file, emulator))
    app.router.add_get(PUBLIC_PATH_PREFIX + "{prediction_id}/{file_name}", functools.partial(serve_file, emulator))
    return app
