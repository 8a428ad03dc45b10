"""The Runware emulator's task handling, shared by the REST and WebSocket transports.

:class:`RunwareEmulator` holds everything one emulator instance knows (stored images, jobs by taskUUID,
WebSocket sessions, background tasks) and turns one task object into what Runware answers for it
(:class:`TaskOutcome`). The transports only differ in how they authenticate and how they deliver: REST waits
for a sync job and answers once, WebSocket pushes one frame per image.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from aiohttp import WSCloseCode, web

from ._common import EmulatorState
from ._runware_errors import INVALID_API_KEY_MESSAGE, TaskError, error_item
from ._runware_fields import invalid_code
from ._runware_jobs import Job, JobFate
from ._runware_media import UPLOAD_FORMATS, InputRules, MediaStore
from ._runware_options import RunwareOptions
from ._runware_validation import MAX_SEED, validate_inference, validate_task_uuid
from ._runware_webhooks import deliver_webhooks, put_uploads

if TYPE_CHECKING:
    from ._runware_websocket import Session

__all__ = ["DRY_RUN_HEADER", "EMULATOR_KEY", "SUPPORTED_TASK_TYPES", "RunwareEmulator", "TaskOutcome", "is_dry_run"]

DRY_RUN_HEADER = "X-Runware-Dry-Run"
"""The REST header that asks for a dry run (Runware's own agent skills, docs/protocols/runware.md §2.1)."""


def is_dry_run(value: str | None) -> bool:
    """Whether a dry-run switch (the header's value, or the WebSocket URL's ``dryRun`` query value) is on.

    The docs show ``1`` (``X-Runware-Dry-Run: 1``; the legacy JS SDK sends ``dryRun=1``); ``true`` is taken to
    mean the same [UNVERIFIED], anything else (absent, ``0``, ``false``) is a normal request.
    """
    return value is not None and value.strip().lower() in ("1", "true")

SUPPORTED_TASK_TYPES: tuple[str, ...] = (
    "authentication", "ping", "photoMaker", "imageInference", "imageUpload", "getResponse",
)
_UPLOAD_PARAMETERS = frozenset({"taskType", "taskUUID", "image"})
_POLL_PARAMETERS = frozenset({"taskType", "taskUUID"})
_DEFAULT_FAILURE = "Inference failed: the worker stopped before the image was generated."
_FATES: dict[str, JobFate] = {"fail_job": "fail", "stuck_job": "stuck", "partial": "partial"}


@attrs.define
class TaskOutcome:
    """What one task produced right away, and the sync job (if any) whose results are still to come."""

    data: list[dict[str, Any]] = attrs.field(factory=list)
    errors: list[dict[str, Any]] = attrs.field(factory=list)
    job: Job | None = None
    """A sync job: REST waits for it, WebSocket streams its images as they are ready."""


def _refusal(error: TaskError, task_type: str | None, task_uuid: str | None) -> TaskOutcome:
    return TaskOutcome(errors=[error.for_task(task_type, task_uuid).item])


def _reject_unknown(task: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for name in task:
        if name not in allowed:
            raise TaskError(error_item("unknownParameter", f"Unknown parameter {name}.", parameter=name))


@attrs.define(eq=False)
class RunwareEmulator:
    """One Runware emulator: its state, stored images, jobs, sessions and background tasks."""

    state: EmulatorState
    options: RunwareOptions = attrs.field(factory=RunwareOptions)
    media: MediaStore = attrs.field(init=False)
    jobs: dict[str, Job] = attrs.field(init=False, factory=dict)
    """Every accepted image task, by taskUUID (kept after the end so ``getResponse`` can answer)."""
    sessions: dict[str, Session] = attrs.field(init=False, factory=dict)
    """WebSocket sessions by connectionSessionUUID."""
    background: set[asyncio.Task[None]] = attrs.field(init=False, factory=set)
    sockets: set[web.WebSocketResponse] = attrs.field(init=False, factory=set)
    """Open WebSockets, closed on shutdown."""
    closing: asyncio.Event = attrs.field(init=False, factory=asyncio.Event)
    """Set when the application shuts down: waits end, streams stop."""

    def __attrs_post_init__(self) -> None:
        self.media = MediaStore(new_uuid=self.new_uuid)

    def new_uuid(self) -> str:
        """A UUID v4 drawn from the seeded generator, so IDs repeat from run to run."""
        return str(uuid.UUID(int=self.state.random.getrandbits(128), version=4))

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coroutine`` in the background, tracked so shutdown cancels it."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self.background.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[None]) -> None:
        self.background.discard(task)
        # Retrieve the exception so it is counted rather than reported as "never retrieved".
        if not task.cancelled() and task.exception() is not None:
            self.state.counters["internal_errors"] += 1

    async def shutdown(self) -> None:
        """Close every socket and stop every background task (the application's ``on_shutdown``)."""
        self.closing.set()
        for socket in list(self.sockets):
            await socket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
        tasks = list(self.background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- authentication -------------------------------------------------------------------------------

    def check_api_key(self, api_key: object) -> dict[str, Any] | None:
        """``None`` when the key is right, else the authentication error item (runware.md §2.3, §3.1)."""
        if isinstance(api_key, str) and api_key and api_key == self.state.settings.api_key:
            return None
        self.state.counters["auth_failures"] += 1
        if api_key is None or api_key == "":
            # "No key" is missingApiKey in the SDKs' tables (runware.md §6); §9 suggests invalidApiKey for both
            # cases, so which code the service sends for an absent key is [UNVERIFIED]. Both are 401s.
            return error_item("missingApiKey", "Missing API key. Authenticate with your API key.",
                              parameter="apiKey", value_type="string", task_type="authentication")
        return error_item("invalidApiKey", INVALID_API_KEY_MESSAGE, parameter="apiKey", value_type="string",
                          task_type="authentication")

    # -- tasks ----------------------------------------------------------------------------------------

    def handle_task(self, task: object, *, origin: str, path: str, dry_run: bool = False) -> TaskOutcome:
        """Runware's answer to one authenticated task object (``authentication`` is the transports' job).

        ``dry_run`` (the ``X-Runware-Dry-Run`` header, the WebSocket's ``dryRun=1``) validates an image task
        and answers its estimated cost without creating a job (see :meth:`_estimate`).
        """
        if not isinstance(task, dict):
            return TaskOutcome(errors=[error_item("invalidPayload", "Each task must be a JSON object.")])
        task_type = task.get("taskType")
        self.state.counters[f"tasks:{task_type}"] += 1
        raw_uuid = task.get("taskUUID") if isinstance(task.get("taskUUID"), str) else None
        try:
            if task_type is None:
                raise TaskError(error_item("missingTaskType", "Missing taskType parameter.",
                                           parameter="taskType", value_type="string"))
            if task_type == "ping":
                pong: dict[str, Any] = {"taskType": "ping", "pong": True}
                if raw_uuid is not None:
                    pong["taskUUID"] = raw_uuid
                return TaskOutcome(data=[pong])
            if task_type in ("photoMaker", "imageInference"):
                if dry_run:
                    return self._estimate(task)
                return self._accept(task, origin=origin, path=path)
            if task_type == "imageUpload":
                return self._upload(task, origin=origin)
            if task_type == "getResponse":
                return self._poll(task)
            if task_type == "authentication":
                # A second authentication inside an already authenticated request changes nothing.
                error = self.check_api_key(task.get("apiKey"))
                return TaskOutcome(errors=[error]) if error else TaskOutcome()
            # Runware's code for an unknown task type is [UNVERIFIED]; it follows the invalid<Param> pattern.
            raise TaskError(error_item(
                "invalidTaskType", f"Invalid value for taskType parameter. Supported values are: "
                f"{', '.join(SUPPORTED_TASK_TYPES)}.", parameter="taskType", value_type="string",
                allowedValues=list(SUPPORTED_TASK_TYPES)))
        except TaskError as error:
            self.state.counters["rejected_tasks"] += 1
            return _refusal(error, task_type if isinstance(task_type, str) else None, raw_uuid)

    def _estimate(self, task: Mapping[str, Any]) -> TaskOutcome:
        """A dry run: the task is checked like a real one, nothing runs, nothing is stored or billed.

        "Add the header X-Runware-Dry-Run: 1 to validate a request and get its cost without executing or being
        charged" (Runware's own agent skills, docs/protocols/runware.md §2.1). The answer's shape is not
        documented [UNVERIFIED]: the emulator answers one ``data`` item per task with ``taskType``,
        ``taskUUID`` and the ``cost`` a real run would report (``cost_per_image`` × ``numberResults``).
        Input images are checked for their form only: a UUID must name a stored image, inline data must decode.
        """
        task_uuid = validate_task_uuid(task, self.options)
        spec = validate_inference(task, task_uuid, self.options)
        for value in spec.input_images:
            self.media.check(value, InputRules(parameter=spec.input_parameter,
                                               code=invalid_code(spec.input_parameter)))
        self.state.counters["dry_runs"] += 1
        cost = round(self.state.settings.cost_per_image * spec.number_results, 10)
        return TaskOutcome(data=[{"taskType": spec.task_type, "taskUUID": task_uuid, "cost": cost}])

    def _accept(self, task: Mapping[str, Any], *, origin: str, path: str) -> TaskOutcome:
        task_uuid = validate_task_uuid(task, self.options)
        now = time.monotonic()
        existing = self.jobs.get(task_uuid)
        if existing is not None and (not existing.is_finished(now) or self.options.reject_reused_task_uuid):
            # "The taskUUID must be unique for each task" (runware.md §5.1); the SDKs know the refusal as
            # conflictTaskUUID (runware.md §3.4, §6).
            self.state.counters["conflicts"] += 1
            raise TaskError(error_item("conflictTaskUUID", f"A task with taskUUID {task_uuid} is already being "
                                       "processed. Use a new UUID v4 for each task.",
                                       parameter="taskUUID", value_type="string"))
        spec = validate_inference(task, task_uuid, self.options)
        rules = InputRules(parameter=spec.input_parameter, code=invalid_code(spec.input_parameter))
        input_uuids = tuple(
            self.media.resolve(value, rules, origin=origin,
                               external_urls_reachable=self.state.settings.external_urls_reachable)
            for value in spec.input_images
        )
        settings = self.state.settings
        fault = self.state.job_fault(path)
        fate: JobFate = "success"
        count = spec.number_results
        if fault is not None and fault.kind in _FATES:
            fate = _FATES[fault.kind]
            if fate == "partial":
                asked = spec.number_results - 1 if fault.images is None else fault.images
                count = max(0, min(spec.number_results, asked))
            else:
                count = 0  # a failed or stuck job delivers no image at all
        queue_seconds = self.state.queue_seconds(fault)
        run_seconds = self.state.draw(settings.run_time)
        # "Random seeds are generated as 32-bit values"; with numberResults > 1 each image's seed is the first
        # one plus its index (runware.md §2.2, §5.1).
        first_seed = spec.seed if spec.seed is not None else self.state.random.randint(1, 2**32 - 1)
        seeds = tuple(min(first_seed + index, MAX_SEED) for index in range(count))
        job = Job(
            spec=spec, origin=origin, input_uuids=input_uuids,
            image_uuids=tuple(self.new_uuid() for _ in range(count)), seeds=seeds, accepted_at=now,
            started_at=now + queue_seconds, run_seconds=run_seconds, fate=fate,
            failure_message=(fault.message if fault is not None and fault.message else _DEFAULT_FAILURE),
            cost_per_image=settings.cost_per_image, ttl_scale=self.options.ttl_scale,
        )
        self.jobs[task_uuid] = job
        self.state.counters["jobs_created"] += 1
        if spec.upload_endpoint is not None:
            self.spawn(put_uploads(self, job))
        if spec.webhook_url is not None:
            self.spawn(deliver_webhooks(self, job))
            return TaskOutcome(data=[job.acknowledgement()])
        if spec.delivery_method == "async":
            return TaskOutcome(data=[job.acknowledgement()])
        return TaskOutcome(job=job)

    def finish(self, job: Job) -> TaskOutcome:
        """The answer for a sync job that has ended: its images, or its error."""
        self.count_end(job)
        if job.has_failed():
            return TaskOutcome(errors=[job.error()])
        return TaskOutcome(data=job.final_items(self.media))

    def count_end(self, job: Job) -> None:
        """Count a job's end once, the first time anyone observes it."""
        if job.counted or not job.is_finished():
            return
        job.counted = True
        self.state.counters["jobs_failed" if job.fate == "fail" else "jobs_completed"] += 1

    def _upload(self, task: Mapping[str, Any], *, origin: str) -> TaskOutcome:
        task_uuid = validate_task_uuid(task, self.options)
        if self.options.reject_unknown_parameters:
            _reject_unknown(task, _UPLOAD_PARAMETERS)
        image = task.get("image")
        if image is None:
            raise TaskError(error_item("missingImage", "Missing image parameter. It is required.",
                                       parameter="image", value_type="string"))
        # imageUpload takes a URL, a data URI or base64 (D-UPL schema, runware.md §5.4), in any of the listed
        # formats including BMP and GIF.
        rules = InputRules(parameter="image", code="invalidImage", formats=UPLOAD_FORMATS, allow_uuid=False)
        image_uuid = self.media.resolve(image, rules, origin=origin,
                                        external_urls_reachable=self.state.settings.external_urls_reachable)
        self.state.counters["uploads"] += 1
        # The legacy SDK reads response["imageURL"], so the item must carry it (runware.md §5.4 [CONFLICT]).
        return TaskOutcome(data=[{"taskType": "imageUpload", "taskUUID": task_uuid, "imageUUID": image_uuid,
                                  "imageURL": self.media.url(image_uuid, origin)}])

    def _poll(self, task: Mapping[str, Any]) -> TaskOutcome:
        task_uuid = validate_task_uuid(task, self.options)
        if self.options.reject_unknown_parameters:
            _reject_unknown(task, _POLL_PARAMETERS)
        self.state.counters["polls"] += 1
        job = self.jobs.get(task_uuid)
        if job is None:
            # The code for an unknown taskUUID is [UNVERIFIED]: taskNotFound is one of the names in the SDKs'
            # error tables (runware.md §4.2, §6).
            raise TaskError(error_item("taskNotFound", f"No task with taskUUID {task_uuid} was found.",
                                       parameter="taskUUID", value_type="string"))
        self.count_end(job)
        return TaskOutcome(data=job.poll_items(self.media))


EMULATOR_KEY: web.AppKey[RunwareEmulator] = web.AppKey("runware_emulator", RunwareEmulator)
"""Where a Runware emulator application keeps its :class:`RunwareEmulator`."""
