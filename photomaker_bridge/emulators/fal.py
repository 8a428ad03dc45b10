"""A local stand-in for fal's queue and storage, hosting ``fal-ai/photomaker``.

One aiohttp application on one port answers everything the official ``fal_client`` 1.0.3 sends once its
module constants point at it (fal.md §2, option B; ``point_fal_client_at`` does this)::

    import fal_client.client as fc
    fc.QUEUE_URL_FORMAT = base + "/"
    fc.RUN_URL_FORMAT = base + "/run/"
    fc.REST_URL = fc.CDN_URL = base

Routes (fal.md §1, §3.2, §7):

==========================================================  ==============================================
``POST /fal-ai/photomaker[/<subpath>][?fal_webhook=...]``   submit: 200 ``IN_QUEUE`` + ``x-fal-request-id``
``POST /run/fal-ai/photomaker[/<subpath>]``                 ``fal.run``: waits, answers the result itself
``GET  /fal-ai/photomaker/requests/<id>/status[/]?logs=``   202 IN_QUEUE / IN_PROGRESS, 200 COMPLETED
``GET  /fal-ai/photomaker/requests/<id>/status/stream``     SSE: each status, closed after COMPLETED
``GET  /fal-ai/photomaker/requests/<id>[/]``                the result, or the app's error verbatim
``PUT  /fal-ai/photomaker/requests/<id>/cancel[/]``         202 / 400 ALREADY_COMPLETED / 404 NOT_FOUND
``POST /storage/auth/token``                                CDN upload token (``Authorization: Key``)
``POST /files/upload``                                      CDN upload (``Authorization: Bearer <token>``)
``POST /storage/upload/initiate`` + ``PUT`` signed URL      fallback upload
``GET  /files/emulator/<name>``                             stored and generated files (public)
``GET  /.well-known/jwks.json``                             public key of the webhook signatures
==========================================================  ==============================================

The queue and the app follow fal's rules as documented, encoded here independently of the library's own
translation code: input is accepted at submit and checked when a runner takes it (fal.md §1.3), so a bad
request completes and its result answers 422 with a FastAPI ``detail`` list. Timing comes from the
state's settings (``queue_time``, ``run_time``) and is computed from timestamps at query time; the only
background tasks are webhook deliveries (signed, retried, to loopback URLs only). Every absolute URL is built on
the origin the client used.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import attrs
from aiohttp import web

from ._common import EmulatorState, Fault, fault_middleware
from ._fal_http import REQUEST_ID_HEADER, check_api_key, fault_answer, json_answer, origin_of, request_error
from ._fal_jobs import Job, Phase
from ._fal_options import FalOptions
from ._fal_runner import PhotoMakerRunner
from ._fal_storage import SERVED_FILES_PREFIX, FileStore, storage_routes
from ._fal_webhooks import WebhookSigner, deliver_webhook

__all__ = ["FAL_EMULATOR_KEY", "MAX_BODY_BYTES", "FalEmulator", "FalOptions", "create_app"]

MAX_BODY_BYTES = 128 * 1024 * 1024
"""Largest request body accepted: fal_client sends uploads up to 100 MiB in one request (fal.md §3.2)."""

_TRUE_WORDS = frozenset({"1", "true", "on", "yes"})
_FALSE_WORDS = frozenset({"0", "false", "off", "no"})
_SEED_LIMIT = 2**31 - 1
_STREAM_CHECK_SECONDS = 0.02
"""How often a status stream or a synchronous run looks at its request again (requests settle lazily)."""


def _parse_logs_flag(value: str | None) -> bool | None:
    """``logs=`` as FastAPI parses a bool: ``1|0|true|false`` (any case, also on/off/yes/no); ``None`` if
    unparsable. fal_client sends ``true|false``, fal-js and ``fal.apps`` send ``1|0`` (fal.md §1.1)."""
    if value is None:
        return False
    word = value.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    return None


@attrs.define
class FalEmulator:
    """The emulator's state beyond :class:`EmulatorState`: options, stored files and submitted requests.

    Reach it from a running app as ``app[FAL_EMULATOR_KEY]`` (tests inspect ``jobs`` and ``store``).
    """

    state: EmulatorState
    options: FalOptions = attrs.field(factory=FalOptions)
    store: FileStore = attrs.field(factory=FileStore)
    jobs: dict[str, Job] = attrs.field(factory=dict)
    """Every submitted request by request id, in submit order."""
    runner: PhotoMakerRunner = attrs.field(init=False)
    signer: WebhookSigner = attrs.field(init=False)
    """Signs webhooks; its public key is served at ``/.well-known/jwks.json``."""
    background: set[asyncio.Task[None]] = attrs.field(init=False, factory=set)
    """Webhook deliveries in progress, cancelled at shutdown."""

    def __attrs_post_init__(self) -> None:
        self.runner = PhotoMakerRunner(self.state, self.options, self.store)
        self.signer = WebhookSigner(self.options.webhook_user_id)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` in the background until it ends or the emulator shuts down."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def shutdown(self) -> None:
        """Cancel the deliveries still running (the application's ``on_shutdown``)."""
        tasks = list(self.background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- helpers -------------------------------------------------------------------------------------------

    def _urls(self, origin: str, job: Job) -> dict[str, str]:
        # Status, result and cancel URLs use only owner/alias, never the submit sub-path (fal.md §1.1).
        base = f"{origin}/{job.app_id}/requests/{job.request_id}"
        return {"response_url": base, "status_url": base + "/status", "cancel_url": base + "/cancel"}

    def _new_request_id(self) -> str:
        # Drawn from the seeded generator so that runs repeat; a reset() may replay ids, hence the loop.
        while True:
            request_id = str(uuid.UUID(int=self.state.random.getrandbits(128), version=4))
            if request_id not in self.jobs:
                return request_id

    def _find(self, request: web.Request) -> Job | None:
        job = self.jobs.get(request.match_info["request_id"])
        app_id = f"{request.match_info['owner']}/{request.match_info['alias']}"
        return job if job is not None and job.app_id == app_id else None

    def _job_or_refusal(self, request: web.Request, not_found: Mapping[str, object]) -> Job | web.StreamResponse:
        """The job a status/result/cancel call names, or the answer refusing it (bad key: 401; unknown: 404
        with ``not_found``, whose shape differs per route, fal.md §1.4–§1.7)."""
        refused = check_api_key(request, self.state.settings.api_key)
        if refused is not None:
            return refused
        job = self._find(request)
        return job if job is not None else json_answer(404, dict(not_found))

    def phase(self, job: Job, now: float | None = None) -> Phase:
        """The queue status of ``job`` now, or at monotonic time ``now``.

        A job's state only moves forward: a time later than the present settles it for good.
        """
        return job.phase(time.monotonic() if now is None else now, self.runner)

    def queue_position(self, job: Job, now: float) -> int:
        """How many requests submitted earlier to the same app are still waiting (0-indexed position)."""
        position = 0
        for other in self.jobs.values():
            if other is job:
                break
            if other.app_id == job.app_id and other.phase(now, self.runner) == "IN_QUEUE":
                position += 1
        return position

    # -- queue routes --------------------------------------------------------------------------------------

    async def _enqueue(self, request: web.Request) -> Job | web.StreamResponse:
        """The request a submit (or run) makes, or the answer refusing it: the body is queued as is and checked
        when it runs (fal.md §1.3)."""
        refused = check_api_key(request, self.state.settings.api_key)
        if refused is not None:
            return refused
        app_id = f"{request.match_info['owner']}/{request.match_info['alias']}"
        if app_id != self.options.app_id:
            return json_answer(404, {"detail": f"Application '{app_id}' not found"})
        start_timeout: float | None = None
        if "X-Fal-Request-Timeout" in request.headers:
            try:
                start_timeout = float(request.headers["X-Fal-Request-Timeout"])
            except ValueError:
                start_timeout = -1.0
            if not start_timeout > 0:
                # The request-error table's own example of bad_request (fal.md §1.4).
                return request_error(400, "Invalid X-Fal-Request-Timeout header", "bad_request")
        settings = self.state.settings
        fault = self.state.job_fault(request.path)
        job = Job(
            request_id=self._new_request_id(),
            app_id=app_id,
            subpath=request.match_info.get("subpath", "").strip("/"),
            body=await request.read(),
            submitted_at=time.monotonic(),
            submitted_wall=time.time(),
            queue_seconds=self.state.queue_seconds(fault),
            run_seconds=max(0.0, self.state.draw(settings.run_time)),
            seed=self.state.random.randint(0, _SEED_LIMIT),
            fault=fault,
            start_timeout=start_timeout,
            webhook_url=request.query.get("fal_webhook"),
        )
        self.jobs[job.request_id] = job
        return job

    async def submit(self, request: web.Request) -> web.StreamResponse:
        """``POST /{owner}/{alias}[/{subpath}]`` on the queue: enqueue, answer ``IN_QUEUE`` with the URLs."""
        job = await self._enqueue(request)
        if not isinstance(job, Job):
            return job
        self.state.counters["submits"] += 1
        if job.webhook_url:
            self.spawn(deliver_webhook(self, job, origin_of(request)))
        body = {"status": "IN_QUEUE", "request_id": job.request_id, **self._urls(origin_of(request), job),
                "queue_position": self.queue_position(job, job.submitted_at)}
        return json_answer(200, body, {REQUEST_ID_HEADER: job.request_id})

    async def run(self, request: web.Request) -> web.StreamResponse:
        """``POST /run/{owner}/{alias}[/{subpath}]``: fal's synchronous ``fal.run`` host (fal.md SEED3).

        The request goes through the same queue and runner, and the answer is the app's own: the output (200) or
        its error, with ``x-fal-request-id``. If the client leaves first, the request is cancelled (fal's
        ``client_disconnected``, fal.md §1.4, is what the real service reports then [UNVERIFIED]).
        """
        job = await self._enqueue(request)
        if not isinstance(job, Job):
            return job
        self.state.counters["runs"] += 1
        while self.phase(job) != "COMPLETED":
            transport = request.transport
            if transport is None or transport.is_closing():
                job.cancelled_at = time.monotonic()
                job.settle(job.cancelled_at, self.runner)
                return web.Response(status=499)
            await asyncio.sleep(_STREAM_CHECK_SECONDS)
        assert job.final is not None
        return json_answer(job.final.status, job.final.answer_body(origin_of(request)),
                           {**job.final.headers, REQUEST_ID_HEADER: job.request_id})

    def _status_body(self, job: Job, origin: str, with_logs: bool, now: float) -> tuple[int, dict[str, object]]:
        """The status answer (HTTP status, body) of ``job`` at ``now`` (fal.md §1.4)."""
        phase = self.phase(job, now)
        body: dict[str, object] = {"status": phase, "request_id": job.request_id, **self._urls(origin, job)}
        if phase == "IN_QUEUE":
            body["queue_position"] = self.queue_position(job, now)
        else:
            # fal_client reads data["logs"] unconditionally: the key must be there, null when logs are off.
            body["logs"] = job.log_entries(now) if with_logs else None
        if phase == "COMPLETED":
            assert job.final is not None
            body["metrics"] = job.metrics()
            if job.final.error is not None:
                body["error"] = job.final.error
                body["error_type"] = job.final.error_type
        return (200 if phase == "COMPLETED" else 202), body

    async def _job_and_logs_flag(self, request: web.Request) -> tuple[Job, bool] | web.StreamResponse:
        job = self._job_or_refusal(request, {"detail": "Request not found"})
        if not isinstance(job, Job):
            return job
        with_logs = _parse_logs_flag(request.query.get("logs"))
        if with_logs is None:
            issue = {"loc": ["query", "logs"], "msg": "value could not be parsed to a boolean",
                     "type": "type_error.bool"}
            return json_answer(422, {"detail": [issue]})
        return job, with_logs

    async def status(self, request: web.Request) -> web.StreamResponse:
        """``GET .../requests/{id}/status``: 202 while queued or running, 200 once completed (fal.md §1.4)."""
        found = await self._job_and_logs_flag(request)
        if not isinstance(found, tuple):
            return found
        job, with_logs = found
        self.state.counters["status_polls"] += 1
        code, body = self._status_body(job, origin_of(request), with_logs, time.monotonic())
        return json_answer(code, body, {REQUEST_ID_HEADER: job.request_id})

    async def status_stream(self, request: web.Request) -> web.StreamResponse:
        """``GET .../requests/{id}/status/stream``: server-sent events, one ``data:`` line per status change.

        "Each event has a data: line with a status object ... same fields as Get request status. The server
        closes the stream after it sends the COMPLETED event. The server sends a comment line every 15 seconds"
        (fal.md §1.5). An event is sent when the status changes, and while running also when new log lines
        appear (with ``logs=1``).
        """
        found = await self._job_and_logs_flag(request)
        if not isinstance(found, tuple):
            return found
        job, with_logs = found
        self.state.counters["status_streams"] += 1
        response = web.StreamResponse(status=200, headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache", REQUEST_ID_HEADER: job.request_id})
        await response.prepare(request)
        origin = origin_of(request)
        last_sent: str | None = None
        last_write = time.monotonic()
        try:
            while True:
                now = time.monotonic()
                _, body = self._status_body(job, origin, with_logs, now)
                text = json.dumps(body)
                if text != last_sent:
                    await response.write(f"data: {text}\n\n".encode())
                    last_sent, last_write = text, now
                    if body["status"] == "COMPLETED":
                        break
                elif now - last_write >= self.options.stream_keepalive_seconds:
                    await response.write(b": keep-alive\n\n")
                    last_write = now
                await asyncio.sleep(_STREAM_CHECK_SECONDS)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client stopped listening (a listen ended, a deadline): the request runs on
        return response

    async def jwks(self, request: web.Request) -> web.StreamResponse:
        """``GET /.well-known/jwks.json``: the public key that verifies this emulator's webhooks (fal.md §1.12)."""
        return json_answer(200, self.signer.jwks())

    async def result(self, request: web.Request) -> web.StreamResponse:
        """``GET .../requests/{id}``: the app's answer, success or error, verbatim (fal.md §1.6)."""
        job = self._job_or_refusal(request, {"detail": "Request not found"})
        if not isinstance(job, Job):
            return job
        self.state.counters["results"] += 1
        if self.phase(job) != "COMPLETED" or job.final is None:
            return json_answer(self.options.result_pending_status, {"detail": "Request is still in progress"},
                               {REQUEST_ID_HEADER: job.request_id})
        final = job.final
        return json_answer(final.status, final.answer_body(origin_of(request)),
                           {**final.headers, REQUEST_ID_HEADER: job.request_id})

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        """``PUT .../requests/{id}/cancel`` (fal.md §1.7)."""
        job = self._job_or_refusal(request, {"status": "NOT_FOUND"})
        if not isinstance(job, Job):
            return job
        now = time.monotonic()
        phase = self.phase(job, now)
        if phase == "COMPLETED":
            return json_answer(400, {"status": "ALREADY_COMPLETED"})
        self.state.counters["cancels"] += 1
        if phase == "IN_QUEUE" or self.options.honour_cancel_in_progress:
            job.cancelled_at = now
            job.settle(now, self.runner)
        return json_answer(202, {"status": "CANCELLATION_REQUESTED"})

    def routes(self) -> list[web.RouteDef]:
        """Every route of the emulator: storage first, then the queue's catch-all ``/{owner}/{alias}``."""
        requests_path = "/{owner}/{alias}/requests/{request_id}"
        queue_routes: list[web.RouteDef] = []
        for suffix in ("", "/"):
            # fal's own SDK (fal.apps) calls these with a trailing slash (fal.md §1.1).
            queue_routes += [
                web.get(requests_path + "/status" + suffix, self.status),
                web.get(requests_path + suffix, self.result),
                web.put(requests_path + "/cancel" + suffix, self.cancel),
            ]
        stream_methods = ["GET", "POST"] if self.options.status_stream_accepts_post else ["GET"]
        queue_routes += [web.route(method, requests_path + "/status/stream", self.status_stream)
                         for method in stream_methods]
        run = self.options.run_prefix.rstrip("/")
        return [
            *storage_routes(self.state, self.options, self.store),
            web.get("/.well-known/jwks.json", self.jwks),
            *queue_routes,
            web.post(run + "/{owner}/{alias}", self.run),
            web.post(run + "/{owner}/{alias}/{subpath:.*}", self.run),
            web.post("/{owner}/{alias}", self.submit),
            web.post("/{owner}/{alias}/{subpath:.*}", self.submit),
        ]


FAL_EMULATOR_KEY = web.AppKey("fal_emulator", FalEmulator)
"""Where :func:`create_app` keeps its :class:`FalEmulator`: ``app[FAL_EMULATOR_KEY]``."""


def create_app(state: EmulatorState, *, options: FalOptions | None = None) -> web.Application:
    """The fal emulator as an aiohttp application, driven by ``state`` (settings, faults, log, counters).

    ``options`` settles the behaviours the reference leaves open (see :class:`FalOptions`). Injected HTTP
    faults answer in fal's own error shape; served files (``/files/emulator/...``) are never faulted, so a
    fault rate aimed at the API does not also break image downloads.
    """
    emulator = FalEmulator(state, options or FalOptions())

    def error_response(status: int, fault: Fault) -> web.StreamResponse:
        return fault_answer(status, fault, emulator.options)

    @web.middleware
    async def remember_host(request: web.Request,
                            handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        # A URL on any host the emulator was reached under is its own storage (looked up, never downloaded).
        emulator.store.hosts.add(request.host.lower())
        return await handler(request)

    app = web.Application(
        middlewares=[remember_host, fault_middleware(state, error_response, skip=(SERVED_FILES_PREFIX,))],
        client_max_size=MAX_BODY_BYTES,
    )
    app[FAL_EMULATOR_KEY] = emulator
    app.add_routes(emulator.routes())

    async def stop(_: web.Application) -> None:
        await emulator.shutdown()

    app.on_shutdown.append(stop)
    return app
