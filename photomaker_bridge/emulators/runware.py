"""A local stand-in for Runware's image API, faithful enough for the official ``runware`` SDK.

``create_app(state)`` builds an aiohttp application that speaks Runware's protocol (runware.md §9):

* REST ``POST /v1``: a JSON array of tasks, authenticated by ``Authorization: Bearer <key>`` or by a leading
  ``{"taskType": "authentication", "apiKey": ...}`` task; answered with ``{"data": [...]}`` and/or
  ``{"errors": [...]}`` and the HTTP status of §2.4.
* WebSocket on ``/`` and ``/v1``: authentication handshake with ``connectionSessionUUID``, ping/pong at any
  time, one frame per image, session resume.
* Tasks ``photoMaker``, ``imageInference`` (with a nested ``photoMaker`` object, or plain), ``imageUpload``,
  ``getResponse`` and ``ping``, validated against the documented rules (§5.1) with Runware's error codes.
* Generated and uploaded images served at ``/image/ws/0.5/ii/<imageUUID>.<ext>`` on the emulator's origin,
  until the task's ``ttl`` deletes them (then 404).
* ``X-Runware-Dry-Run: 1`` (REST) or ``?dryRun=1`` (WebSocket URL): image tasks are validated and answered with
  their cost, and nothing runs.
* ``webhookURL``: each result POSTed to a loopback URL; ``uploadEndpoint``: each image PUT to a loopback URL.

Timing and faults come from the :class:`~photomaker_bridge.emulators._common.EmulatorState`: a job waits
``queue_time`` then runs ``run_time``; HTTP faults answer in Runware's error shape; job faults make a job
fail (``inferenceError``), never finish, or deliver fewer images. Choices the reference leaves open are
fields of :class:`RunwareOptions`.

Example::

    state = EmulatorState("runware")
    runner = web.AppRunner(create_app(state))
    # ... then Runware(api_key=state.settings.api_key, url="ws://127.0.0.1:PORT/v1")
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from ._common import EmulatorState, fault_middleware
from ._runware_core import DRY_RUN_HEADER, EMULATOR_KEY, RunwareEmulator, TaskOutcome, is_dry_run
from ._runware_errors import error_item, errors_response, fault_error_response, status_for_code
from ._runware_jobs import Job
from ._runware_media import IMAGE_PATH_PREFIX
from ._runware_options import RunwareOptions
from ._runware_websocket import websocket_handler

__all__ = ["EMULATOR_KEY", "RunwareEmulator", "RunwareOptions", "create_app"]

_WAIT_STEP = 0.05
"""Seconds between checks, while a sync REST request waits, that the client is still there."""


async def _wait_for(emulator: RunwareEmulator, job: Job, request: web.Request) -> bool:
    """Wait until ``job`` ends; ``False`` if the client went away or the emulator shuts down first."""
    while True:
        now = time.monotonic()
        if job.is_finished(now):
            return True
        transport = request.transport
        if emulator.closing.is_set() or transport is None or transport.is_closing():
            return False
        await asyncio.sleep(min(_WAIT_STEP, job.finished_at - now))


def _authenticate(emulator: RunwareEmulator, request: web.Request,
                  tasks: list[Any]) -> tuple[list[Any], dict[str, Any] | None]:
    """The tasks left after authentication, and the auth error if it failed (runware.md §2.1)."""
    first = tasks[0]
    if isinstance(first, dict) and first.get("taskType") == "authentication":
        return tasks[1:], emulator.check_api_key(first.get("apiKey"))
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        return tasks, emulator.check_api_key(None)
    if scheme.lower() != "bearer":
        return tasks, emulator.check_api_key(header)
    return tasks, emulator.check_api_key(token.strip())


async def _rest_handler(request: web.Request) -> web.StreamResponse:
    """``POST /v1``: run every task of the array and answer once."""
    emulator = request.app[EMULATOR_KEY]
    try:
        payload = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return errors_response([error_item("invalidPayload", "The request body is not valid JSON.")], 400)
    if not isinstance(payload, list) or not payload:
        # "Our API always accepts an array of objects as input" (runware.md §2.1, runware.md SEED).
        return errors_response([error_item("invalidPayload", "The request body must be a JSON array of task "
                                           "objects.")], 400)
    tasks, auth_error = _authenticate(emulator, request, payload)
    if auth_error is not None:
        return errors_response([auth_error], 401)
    origin = f"{request.scheme}://{request.host}"
    dry_run = is_dry_run(request.headers.get(DRY_RUN_HEADER))
    # Tasks are accepted in order (so a repeated taskUUID in one request conflicts), then waited together.
    outcomes = [emulator.handle_task(task, origin=origin, path=request.path, dry_run=dry_run) for task in tasks]
    waits = [_wait_for(emulator, outcome.job, request) for outcome in outcomes if outcome.job is not None]
    if not all(await asyncio.gather(*waits)):
        # A stuck job: the client gave up or the emulator is stopping; nobody reads this answer.
        return errors_response([error_item("serviceUnavailable", "The emulator is shutting down.")], 503)
    try:
        finished = [emulator.finish(outcome.job) if outcome.job is not None else outcome for outcome in outcomes]
    except Exception as error:  # an emulator bug answers like Runware's own server errors, in its shape
        emulator.state.counters["internal_errors"] += 1
        return errors_response([error_item("internalServerError", f"Internal server error: {error}")], 500)
    return _rest_answer(finished)


def _rest_answer(outcomes: list[TaskOutcome]) -> web.Response:
    """One body for every task; the HTTP status rule for mixed answers is runware.md §2.5."""
    data = [item for outcome in outcomes for item in outcome.data]
    errors = [item for outcome in outcomes for item in outcome.errors]
    if not errors:
        return web.Response(text=json.dumps({"data": data}), content_type="application/json")
    # "Errors are scoped to the specific task that failed, while other tasks in the same request may still
    # succeed" (D-ERR). The status of such a mixed answer is [UNVERIFIED] (runware.md §2.5): 200 when any task
    # succeeded, otherwise the status of the first error's family.
    any_succeeded = any(not outcome.errors for outcome in outcomes)
    status = 200 if any_succeeded else status_for_code(str(errors[0]["code"]))
    return errors_response(errors, status=status, data=data)


async def _image_handler(request: web.Request) -> web.StreamResponse:
    """``GET /image/ws/0.5/ii/<imageUUID>.<ext>``: a stored picture."""
    emulator = request.app[EMULATOR_KEY]
    stored = emulator.media.lookup_path(request.match_info["name"])
    if stored is None:
        return web.Response(status=404, text="Not Found")
    return web.Response(body=stored.data, content_type=stored.content_type,
                        headers={"Cache-Control": "public, max-age=2592000"})


def create_app(state: EmulatorState, options: RunwareOptions | None = None) -> web.Application:
    """The Runware emulator as an aiohttp application around ``state``.

    ``options`` chooses among readings of the reference where it is unsure (defaults: the most likely
    behaviour). The :class:`RunwareEmulator` behind the app, with its jobs and stored images, is
    ``app[EMULATOR_KEY]``.
    """
    emulator = RunwareEmulator(state, options or RunwareOptions())
    app = web.Application(middlewares=[fault_middleware(state, fault_error_response, skip=("/image/",))],
                          client_max_size=64 * 1024 * 1024)
    app[EMULATOR_KEY] = emulator
    app.router.add_post("/v1", _rest_handler)
    app.router.add_get("/v1", websocket_handler)
    app.router.add_get("/", websocket_handler)
    app.router.add_get(IMAGE_PATH_PREFIX + "{name}", _image_handler)

    async def stop(_: web.Application) -> None:
        await emulator.shutdown()

    app.on_shutdown.append(stop)
    return app
