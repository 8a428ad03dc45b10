"""A local stand-in for fal's queue and storage, hosting ``fal-ai/photomaker``.

One aiohttp application on one port answers everything the official ``fal_client`` 1.0.3 sends once its
module constants point at it (fal.md §2, option B)::

    import fal_client.client as fc
    fc.QUEUE_URL_FORMAT = fc.RUN_URL_FORMAT = base + "/"
    fc.REST_URL = fc.CDN_URL = base

Routes (fal.md §1, §3.2, §7):

==========================================================  ==============================================
``POST /fal-ai/photomaker[/<subpath>][?fal_webhook=...]``   submit: 200 ``IN_QUEUE`` + ``x-fal-request-id``
``GET  /fal-ai/photomaker/requests/<id>/status[/]?logs=``   202 IN_QUEUE / IN_PROGRESS, 200 COMPLETED
``GET  /fal-ai/photomaker/requests/<id>[/]``                the result, or the app's error verbatim
``PUT  /fal-ai/photomaker/requests/<id>/cancel[/]``         202 / 400 ALREADY_COMPLETED / 404 NOT_FOUND
``POST /storage/auth/token``                                CDN upload token (``Authorization: Key``)
``POST /files/upload``                                      CDN upload (``Authorization: Bearer <token>``)
``POST /storage/upload/initiate`` + ``PUT`` signed URL      fallback upload
``GET  /files/emulator/<name>``                             stored and generated files (public)
==========================================================  ==============================================

The queue and the app follow fal's rules as documented, encoded here independently of the library's own
translation code: input is accepted at submit and checked when a runner takes it (fal.md §1.3), so a bad
request completes and its result answers 422 with a FastAPI ``detail`` list. Timing comes from the
state's settings (``queue_time``, ``run_time``) and is computed from timestamps at query time; the app
starts no background task. Every absolute URL is built on the origin the client used.

fal_client's ``run()`` (synchronous endpoint) is not emulated: with one origin its ``POST
/fal-ai/photomaker`` is indistinguishable from a queue submit, which this emulator answers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Mapping

import attrs
from aiohttp import web

from ._common import EmulatorState, Fault, fault_middleware
from ._fal_http import REQUEST_ID_HEADER, check_api_key, fault_answer, json_answer, origin_of, request_error
from ._fal_jobs import Job, Phase
from ._fal_options import FalOptions
from ._fal_runner import PhotoMakerRunner
from ._fal_storage import SERVED_FILES_PREFIX, FileStore, storage_routes

__all__ = ["FAL_EMULATOR_KEY", "MAX_BODY_BYTES", "FalEmulator", "FalOptions", "create_app"]

MAX_BODY_BYTES = 128 * 1024 * 1024
"""Largest request body accepted: fal_client sends uploads up to 100 MiB in one request (fal.md §3.2)."""

_TRUE_WORDS = frozenset({"1", "true", "on", "yes"})
_FALSE_WORDS = frozenset({"0", "false", "off", "no"})
_SEED_LIMIT = 2**31 - 1


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

    def __attrs_post_init__(self) -> None:
        self.runner = PhotoMakerRunner(self.state, self.options, self.store)

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

    async def submit(self, request: web.Request) -> web.StreamResponse:
        """``POST /{owner}/{alias}[/{subpath}]``: enqueue the body as is; it is checked when it runs."""
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
        job = Job(
            request_id=self._new_request_id(),
            app_id=app_id,
            subpath=request.match_info.get("subpath", "").strip("/"),
            body=await request.read(),
            submitted_at=time.monotonic(),
            submitted_wall=time.time(),
            queue_seconds=max(0.0, self.state.draw(settings.queue_time)),
            run_seconds=max(0.0, self.state.draw(settings.run_time)),
            seed=self.state.random.randint(0, _SEED_LIMIT),
            fault=self.state.job_fault(request.path),
            start_timeout=start_timeout,
            webhook_url=request.query.get("fal_webhook"),
        )
        self.jobs[job.request_id] = job
        self.state.counters["submits"] += 1
        body = {"status": "IN_QUEUE", "request_id": job.request_id, **self._urls(origin_of(request), job),
                "queue_position": self.queue_position(job, job.submitted_at)}
        return json_answer(200, body, {REQUEST_ID_HEADER: job.request_id})

    async def status(self, request: web.Request) -> web.StreamResponse:
        """``GET .../requests/{id}/status``: 202 while queued or running, 200 once completed (fal.md §1.4)."""
        job = self._job_or_refusal(request, {"detail": "Request not found"})
        if not isinstance(job, Job):
            return job
        with_logs = _parse_logs_flag(request.query.get("logs"))
        if with_logs is None:
            issue = {"loc": ["query", "logs"], "msg": "value could not be parsed to a boolean",
                     "type": "type_error.bool"}
            return json_answer(422, {"detail": [issue]})
        self.state.counters["status_polls"] += 1
        now = time.monotonic()
        phase = self.phase(job, now)
        body: dict[str, object] = {"status": phase, "request_id": job.request_id,
                                   **self._urls(origin_of(request), job)}
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
        return json_answer(200 if phase == "COMPLETED" else 202, body, {REQUEST_ID_HEADER: job.request_id})

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
        return [
            *storage_routes(self.state, self.options, self.store),
            *queue_routes,
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
    return app
