"""Runware's protocols, each written once as a generator and driven sync or async.

* uploads: every local reference image not yet uploaded by this client goes up in one ``imageUpload`` array
  (§5.4), one upload per distinct content even across concurrent calls; the returned imageUUIDs replace the
  plan's placeholders and are cached per content hash.
* generate: the task array is posted with sync delivery (the default, §4.1) and every image is read from the
  one answer; several requests can share that one array (:func:`generate_many_flow`), matched by taskUUID.
* submit / result: the tasks go with ``deliveryMethod: "async"``; ``getResponse`` is polled (§4.2) with a
  growing interval until every image is in or a task failed.

The task POST creates billed jobs, so it is sent again only when Runware provably refused it (429/503, a refused
connection). When its answer is lost (dropped connection, timeout, 5xx, an unreadable body), the bridge asks
``getResponse`` about the taskUUIDs it chose itself (§4.2): known tasks are collected, unknown ones were never
taken and are sent again — with the same taskUUIDs, so that a copy Runware did take after all is refused with
``conflictTaskUUID`` (§5.1) instead of running twice.

Partial success (§2.5: errors are scoped to the task that failed, the others may still succeed) is never
lost: a result keeps every image that arrived and turns each error into a warning; only when no image arrived
is the first typed error raised.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from .._coordination import Busy, ClaimUpload, FinishUpload, ForgetUpload, UploadTicket
from .._http import DeadlineReached, Event, Flow, HttpRequest, HttpResponse, Wait
from .._retry import is_provably_refused, is_transient
from ..errors import (
    ConfigurationError,
    GenerationTimeoutError,
    InvalidRequestError,
    ProviderError,
    ProviderUnavailableError,
)
from ..images import build_data_uri
from ..jobs import JobHandle
from ..plan import Plan, UploadPlaceholder
from ..result import BridgeWarning, PhotoMakerResult, Timings
from ._runware_parsing import PROVIDER, RunwareAnswer, Summary, TaskCollector, TaskInfo, parse_answer, summarize
from ._runware_wire import get_response_task, image_upload_task
from ._steps import acquire_slots, bind_slot, release_slot, step
from .base import FlowContext, error_for_status, fill_placeholders, new_uuid

if TYPE_CHECKING:
    from .runware import RunwareProvider

__all__ = ["generate_flow", "generate_many_flow", "handle_for", "result_flow", "submit_flow", "upload_flow"]

_POLL_GROWTH: Final = 1.5  # §4.2: the new SDK waits 0.5 s, then ×1.5 up to 10 s between polls
_TRANSIENT_STATUSES: Final = frozenset({408, 409, 429, 500, 502, 503, 504})
"""HTTP statuses that refuse or lose a whole request, whatever code the error item carries."""
_UNKNOWN_TASK_CODES: Final = frozenset({"taskNotFound", "taskFailedOrNotFound", "taskExpired"})
"""getResponse codes for a taskUUID Runware does not know (§4.2)."""
_STALE_UPLOAD_CODES: Final = frozenset({"mediaNotFound"})
"""A task refused because an input imageUUID names no stored image: Runware deletes uploads unused for 30 days
(§5.4), so a cached imageUUID can go stale."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _post(provider: RunwareProvider, tasks: list[dict[str, Any]], *, creates_job: bool = False) -> HttpRequest:
    # §2.1: the body is always a JSON array of tasks, authenticated by the Bearer header. A task POST creates
    # jobs, but its taskUUIDs are ours: cut at the deadline, the tasks stay known, so it needs no grace.
    return HttpRequest.json("POST", provider.base_url, PROVIDER, tasks, headers=provider.headers(),
                            creates_job=creates_job, outlives_deadline=False)


def _read(response: HttpResponse, request_id: str) -> RunwareAnswer:
    """:func:`parse_answer`, raising when a transient status (408, 409, 429, 5xx) refused or lost the whole
    request (no result, no error naming a task): then the failure is transient whatever code its error item
    carries. An error naming a task is that task's own outcome (a failed generation), not the request's."""
    answer = parse_answer(response, request_id=request_id)
    scoped = any(uuid is not None for uuid, _ in answer.failures)
    if answer.status in _TRANSIENT_STATUSES and not answer.items and not scoped:
        first = answer.failures[0][1] if answer.failures else None
        raise error_for_status(answer.status, first.message if first else f"Runware answered HTTP {answer.status}",
                               provider=PROVIDER, code=first.code if first else None, request_id=request_id,
                               raw=answer.body, retry_after=response.header("retry-after"))
    return answer


def _tasks_of(plan: Plan) -> list[dict[str, Any]]:
    if plan.provider != PROVIDER:
        raise ConfigurationError(f"a {plan.provider!r} plan cannot be sent to Runware; plan it for 'runware'")
    tasks = [dict(task) for payload in plan.payloads for task in payload]
    if not tasks:
        raise InvalidRequestError("plan", plan.target, "a plan with at least one Runware task")
    return tasks


def _stamp(error: ProviderError, request_id: str) -> ProviderError:
    # A transport failure knows no taskUUID; the first task's is the request's id (it may have run at Runware).
    if error.request_id is None:
        error.request_id = request_id
    return error


def _number_results(task: Mapping[str, Any]) -> int:
    value = task.get("numberResults", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


# -- uploads ----------------------------------------------------------------------------------------------------


def upload_flow(provider: RunwareProvider, uploads: Sequence[UploadPlaceholder], context: FlowContext,
                ) -> Flow[tuple[dict[str, str], bool]]:
    """Upload what this client has not; returns ``({sha256: imageUUID}, whether anything was sent)``.

    Content another call is uploading right now is waited for, not uploaded again; what this call must upload
    goes up in one ``imageUpload`` array.
    """
    resolved: dict[str, str] = {}
    tickets: dict[str, UploadTicket] = {}
    pending: list[UploadPlaceholder] = []
    distinct = {upload.sha256: upload for upload in uploads}
    for upload in distinct.values():
        claimed = yield ClaimUpload(f"{PROVIDER}:{upload.sha256}", wait=False)
        if isinstance(claimed, str):
            resolved[upload.sha256] = claimed
        elif isinstance(claimed, UploadTicket):
            tickets[upload.sha256] = claimed
        else:
            pending.append(upload)
    sent = False
    while tickets or pending:
        if tickets:
            yield from _upload_batch(provider, [distinct[sha] for sha in tickets], tickets, resolved, context)
            sent = True
            tickets = {}
        waiting, pending = pending, []
        for upload in waiting:
            yield Event("waiting", PROVIDER, message=f"{upload.description}: another call is uploading it")
            claimed = yield ClaimUpload(f"{PROVIDER}:{upload.sha256}", wait=True)
            if isinstance(claimed, str):
                resolved[upload.sha256] = claimed
            elif isinstance(claimed, UploadTicket):
                tickets[upload.sha256] = claimed  # the other call's upload failed: this one uploads it
            elif isinstance(claimed, Busy) or claimed is None:
                pending.append(upload)
    return resolved, sent


def _upload_batch(provider: RunwareProvider, uploads: Sequence[UploadPlaceholder],
                  tickets: Mapping[str, UploadTicket], resolved: dict[str, str], context: FlowContext) -> Flow[None]:
    tasks: list[dict[str, Any]] = []
    for upload in uploads:
        yield Event("uploading", PROVIDER, message=upload.description)
        tasks.append(image_upload_task(new_uuid(), build_data_uri(upload.data, upload.content_type)))
    first_id = str(tasks[0]["taskUUID"])
    finished: set[str] = set()
    try:
        try:
            answer: RunwareAnswer = yield from step(_post(provider, tasks), context, provider=PROVIDER,
                                                    what="image upload", parse=lambda reply: _read(reply, first_id))
        except ProviderError as error:
            raise _stamp(error, first_id) from None
        for upload, task in zip(uploads, tasks, strict=True):
            task_uuid = str(task["taskUUID"])
            failures = answer.failures_for(task_uuid)
            if failures:
                raise failures[0]
            candidates = [item.image_uuid for item in answer.items_for(task_uuid) if item.image_uuid]
            if not candidates and len(tasks) == 1:
                # §5.4 [CONFLICT]: one docs version answers {"data": {...}}; accept a lone item without taskUUID.
                candidates = [item.image_uuid for item in answer.items if item.image_uuid]
            if not candidates:
                raise ProviderUnavailableError(
                    f"Runware's imageUpload answer has no imageUUID for {upload.description}", provider=PROVIDER,
                    status=answer.status, code="invalid_response", request_id=task_uuid, raw=answer.body)
            resolved[upload.sha256] = candidates[0]
            finished.add(upload.sha256)
            yield FinishUpload(tickets[upload.sha256], candidates[0])
    except GeneratorExit:
        raise  # the driver's scope finishes the tickets (as failed)
    except BaseException:
        for upload in uploads:
            if upload.sha256 not in finished:
                yield FinishUpload(tickets[upload.sha256], None)
        raise


def _prepare(provider: RunwareProvider, plans: Sequence[Plan], context: FlowContext,
             ) -> Flow[tuple[list[list[dict[str, Any]]], float | None, dict[str, str]]]:
    """Each plan's tasks with uploaded imageUUIDs in place of the placeholders, the upload time, and the imageUUID
    of every upload (by cache key)."""
    provider.require_key()
    tasks_by_plan = [_tasks_of(plan) for plan in plans]
    uploads = [upload for plan in plans for upload in plan.uploads]
    started = context.clock()
    uuids, sent = yield from upload_flow(provider, uploads, context)
    upload_seconds = context.clock() - started if sent else None
    replacements = {upload.placeholder: uuids[upload.sha256] for upload in uploads}
    used = {f"{PROVIDER}:{upload.sha256}": uuids[upload.sha256] for upload in uploads}
    return ([[fill_placeholders(task, replacements) for task in tasks] for tasks in tasks_by_plan], upload_seconds,
            used)


def _forget_stale(error: PhotoMakerResult | ProviderError, used: Mapping[str, str]) -> Flow[bool]:
    """When ``error`` says an input imageUUID is gone, drop this client's cached uploads; whether it said so."""
    if not isinstance(error, ProviderError) or error.code not in _STALE_UPLOAD_CODES or not used:
        return False
    for key, image_uuid in used.items():
        yield ForgetUpload(key, image_uuid)
    return True


# -- sending tasks ----------------------------------------------------------------------------------------------


def _known(provider: RunwareProvider, task_uuids: Sequence[str], context: FlowContext) -> Flow[bool]:
    """Whether Runware knows any of ``task_uuids`` (a getResponse, §4.2): did it take a POST whose answer was
    lost?"""
    first_id = task_uuids[0]
    answer: RunwareAnswer = yield from step(
        _post(provider, [get_response_task(task_uuid) for task_uuid in task_uuids]), context, provider=PROVIDER,
        what="getResponse", request_id=first_id, parse=lambda reply: _read(reply, first_id))
    unknown = {uuid for uuid, error in answer.failures if error.code in _UNKNOWN_TASK_CODES}
    return any(task_uuid not in unknown for task_uuid in task_uuids)


def _own_uuids(plans: Sequence[Plan]) -> bool:
    """Whether the bridge chose every taskUUID of ``plans`` (``provider_options`` may fix one)."""
    return not any(line.unified_field == "provider_options.taskUUID" for plan in plans for line in plan.mapping)


def _send_tasks(provider: RunwareProvider, tasks: list[dict[str, Any]], context: FlowContext, *,
                own_uuids: bool) -> Flow[RunwareAnswer | None]:
    """POST a task array that creates jobs and read its answer; ``None`` when the answer was lost but Runware
    had taken the tasks (collect them with getResponse). See the module docstring for the rule.

    ``conflictTaskUUID`` means Runware already has a task with one of these ids: when the bridge chose them
    (``own_uuids``), that task is this call's own, sent by a try whose answer was lost, and is collected; a
    taskUUID fixed through ``provider_options`` may name an older task, so the conflict is then a refusal."""
    first_id = str(tasks[0]["taskUUID"])
    task_uuids = [str(task["taskUUID"]) for task in tasks]
    request = _post(provider, tasks, creates_job=True)
    resent = False
    for attempt in range(1, context.retry.attempts + 1):
        try:
            answer: RunwareAnswer = yield from step(request, context, provider=PROVIDER, what="task submission",
                                                    request_id=first_id, parse=lambda reply: _read(reply, first_id))
            return answer
        except ProviderError as error:
            conflict = error.code == "conflictTaskUUID"
            if conflict and not (own_uuids or resent):
                raise _stamp(error, first_id) from None
            if is_provably_refused(error) or not (is_transient(error) or conflict):
                raise _stamp(error, first_id) from None
            failure = error
        yield Event("retrying", PROVIDER, first_id,
                    message=f"Runware's answer to the task submission was lost ({failure}); asking getResponse "
                            "whether it took the tasks")
        try:
            known = yield from _known(provider, task_uuids, context)
        except ProviderError as error:
            raise _stamp(error, first_id) from None
        if known:
            return None
        if attempt == context.retry.attempts:
            raise _stamp(failure, first_id)
        resent = True  # not taken: send the same tasks again
    raise AssertionError("unreachable")  # the loop returns or raises


def _handle(tasks: Sequence[Mapping[str, Any]], warnings: Sequence[BridgeWarning], *, delivery: str,
            upload_seconds: float | None) -> JobHandle:
    infos = [TaskInfo.from_task(task) for task in tasks]
    counts = [info.number_results or 1 for info in infos]
    return JobHandle(provider=PROVIDER, request_ids=[info.task_uuid for info in infos], submitted_at=_now(),
                     requested_images=sum(counts), images_per_request=counts, warnings=tuple(warnings),
                     details={"delivery": delivery, "upload_seconds": upload_seconds,
                              "tasks": {info.task_uuid: info.to_details() for info in infos}})


def _timeout(handle: JobHandle | None, what: str) -> GenerationTimeoutError:
    if handle is None:
        return GenerationTimeoutError(f"the deadline passed while {what}; nothing was submitted to Runware",
                                      provider=PROVIDER, handle=None)
    # Runware has no cancel API (§4): the tasks keep running and stay collectable with result(handle).
    return GenerationTimeoutError(
        f"the deadline passed while {what}; Runware has no cancel API, so tasks {', '.join(handle.request_ids)} "
        "keep running: collect them later with result(handle)",
        provider=PROVIDER, request_id=handle.request_id, handle=handle)


def _result(tasks: Sequence[Mapping[str, Any]], summary: Summary, warnings: Sequence[BridgeWarning],
            bodies: Sequence[Any], requested: int | None, upload_seconds: float | None,
            context: FlowContext) -> PhotoMakerResult:
    return PhotoMakerResult(
        images=summary.images, provider=PROVIDER, request_ids=[str(task["taskUUID"]) for task in tasks],
        seed=summary.images[0].seed if summary.images else None, cost=summary.cost,
        timings=Timings(total_seconds=context.clock() - context.started_at, upload_seconds=upload_seconds),
        warnings=(*warnings, *summary.warnings), raw=tuple(bodies), requested_images=requested,
        created_at=_now(),
    )


def _sync_flow(provider: RunwareProvider, plans: Sequence[Plan], context: FlowContext, *, redo: bool = True,
               ) -> Flow[list[PhotoMakerResult | ProviderError]]:
    """Post every plan's tasks as one sync array; one result or error per plan."""
    try:
        prepared, upload_seconds, used = yield from _prepare(provider, plans, context)
    except DeadlineReached:
        timeout = _timeout(None, "uploading reference images")
        yield Event("failed", PROVIDER, message=str(timeout))
        return [timeout for _ in plans]
    except ProviderError as error:
        yield Event("failed", PROVIDER, request_id=error.request_id, message=str(error))
        return [error for _ in plans]
    all_tasks = [task for tasks in prepared for task in tasks]
    first_id = str(all_tasks[0]["taskUUID"])
    handles = [_handle(tasks, plan.warnings, delivery="sync", upload_seconds=upload_seconds)
               for plan, tasks in zip(plans, prepared, strict=True)]
    leases = yield from acquire_slots(context, PROVIDER, provider.account(), provider.limits(), 1, first_id)
    lease = leases[0] if leases else None
    yield Event("submitted", PROVIDER, request_id=first_id)
    answer: RunwareAnswer | None = None
    try:
        answer = yield from _send_tasks(provider, all_tasks, context, own_uuids=_own_uuids(plans))
    except DeadlineReached:
        # Sync tasks "continue processing in the background" after a timeout (§4.1 seed): the handles let
        # result() collect them with getResponse.
        outcomes: list[PhotoMakerResult | ProviderError] = [
            _timeout(handle, "waiting for Runware's sync answer") for handle in handles]
        yield Event("failed", PROVIDER, request_id=first_id, message=str(outcomes[0]))
        return outcomes
    except ProviderError as error:
        yield from release_slot(provider.account(), provider.limits(), lease=lease)
        yield Event("failed", PROVIDER, request_id=error.request_id, message=str(error))
        return [error for _ in plans]
    yield from bind_slot(lease, first_id, keep=False)
    outcomes = []
    for plan, tasks, handle in zip(plans, prepared, handles, strict=True):
        if answer is None:
            outcome = yield from _collect(provider, handle, context)
        else:
            outcome = yield from _read_plan(tasks, plan, answer, upload_seconds, context)
        outcomes.append(outcome)
    yield from release_slot(provider.account(), provider.limits(), request_id=first_id)
    stale = [(index, outcome) for index, outcome in enumerate(outcomes)
             if isinstance(outcome, ProviderError) and outcome.code in _STALE_UPLOAD_CODES]
    if redo and stale and (yield from _forget_stale(stale[0][1], used)):
        yield Event("retrying", PROVIDER, first_id,
                    message="Runware no longer has a reference image uploaded earlier; uploading it again")
        again = yield from _sync_flow(provider, [plans[index] for index, _ in stale], context, redo=False)
        for (index, _), outcome in zip(stale, again, strict=True):
            outcomes[index] = outcome
    return outcomes


def _collect(provider: RunwareProvider, handle: JobHandle, context: FlowContext,
             ) -> Flow[PhotoMakerResult | ProviderError]:
    try:
        collected: PhotoMakerResult = yield from result_flow(provider, handle, context)
    except ProviderError as error:
        return error
    return collected


def _read_plan(tasks: Sequence[Mapping[str, Any]], plan: Plan, answer: RunwareAnswer, upload_seconds: float | None,
               context: FlowContext) -> Flow[PhotoMakerResult | ProviderError]:
    requested = sum(_number_results(task) for task in tasks)
    try:
        collectors = [TaskCollector(TaskInfo.from_task(task)) for task in tasks]
        for collector in collectors:
            collector.add(answer)
        summary = summarize(collectors, requested=requested)
    except ProviderError as error:  # an unreadable image concerns its own request only
        summary = Summary(images=(), cost=None, warnings=(), error=error)
    if summary.error is not None:
        yield Event("failed", PROVIDER, request_id=summary.error.request_id, message=str(summary.error))
        return summary.error
    yield Event("completed", PROVIDER, request_id=str(tasks[0]["taskUUID"]))
    return _result(tasks, summary, plan.warnings, [answer.body], requested, upload_seconds, context)


def _delivered_later(plan: Plan) -> bool:
    """Whether Runware answers the plan's tasks with an acknowledgement only: ``deliveryMethod: "async"`` or a
    ``webhookURL`` (§4.1, §4.3), set through ``provider_options`` or ``submit(webhook_url=...)``."""
    return any(task.get("deliveryMethod") == "async" or task.get("webhookURL") for task in _tasks_of(plan))


def generate_flow(provider: RunwareProvider, plan: Plan, context: FlowContext) -> Flow[PhotoMakerResult]:
    """One plan with sync delivery: its result, or the first typed error when no image arrived.

    A plan whose tasks are delivered later (async delivery or a webhook) is submitted and polled instead: a
    sync read of it would only see acknowledgements (§4.1).
    """
    if _delivered_later(plan):
        handle = yield from submit_flow(provider, plan, context)
        result: PhotoMakerResult = yield from result_flow(provider, handle, context)
        return result
    outcomes = yield from _sync_flow(provider, [plan], context)
    outcome = outcomes[0]
    if isinstance(outcome, ProviderError):
        raise outcome
    return outcome


def generate_many_flow(provider: RunwareProvider, plans: Sequence[Plan], context: FlowContext,
                       ) -> Flow[list[PhotoMakerResult | ProviderError]]:
    """Several plans' tasks in ONE sync array; one result or error per plan, matched by taskUUID. Plans
    delivered later (async delivery or a webhook) are submitted one by one, then polled."""
    if not plans:
        return []
    later = [index for index, plan in enumerate(plans) if _delivered_later(plan)]
    now = [index for index in range(len(plans)) if index not in later]
    outcomes: dict[int, PhotoMakerResult | ProviderError] = {}
    if now:
        answered = yield from _sync_flow(provider, [plans[index] for index in now], context)
        outcomes.update(zip(now, answered, strict=True))
    handles: dict[int, JobHandle] = {}
    for index in later:
        try:
            handles[index] = yield from submit_flow(provider, plans[index], context)
        except ProviderError as error:
            outcomes[index] = error
    for index, handle in handles.items():
        try:
            outcomes[index] = yield from result_flow(provider, handle, context)
        except ProviderError as error:
            outcomes[index] = error
    return [outcomes[index] for index in range(len(plans))]


def submit_flow(provider: RunwareProvider, plan: Plan, context: FlowContext, *, redo: bool = True,
                ) -> Flow[JobHandle]:
    """Upload, post the tasks with ``deliveryMethod: "async"`` and return the handle of the accepted ones.

    Tasks Runware refused while others were accepted become warnings on the handle (they never run); when
    none was accepted the first typed error is raised.
    """
    try:
        prepared, upload_seconds, used = yield from _prepare(provider, [plan], context)
    except DeadlineReached:
        raise _timeout(None, "uploading reference images") from None
    # §4.1: async delivery answers at once with an acknowledgement; results come from getResponse.
    tasks = [{**task, "deliveryMethod": "async"} for task in prepared[0]]
    first_id = str(tasks[0]["taskUUID"])
    leases = yield from acquire_slots(context, PROVIDER, provider.account(), provider.limits(), 1, first_id)
    yield Event("submitted", PROVIDER, request_id=first_id)
    try:
        answer = yield from _send_tasks(provider, tasks, context, own_uuids=_own_uuids([plan]))
    except DeadlineReached:
        for lease in leases:  # the tasks may run: their slot stays taken until collected or expired
            yield from bind_slot(lease, first_id, keep=True)
        raise _timeout(_handle(tasks, plan.warnings, delivery="async", upload_seconds=upload_seconds),
                       "submitting the tasks") from None
    except ProviderError as error:
        yield Event("failed", PROVIDER, request_id=first_id, message=str(error))
        raise
    for lease in leases:
        yield from bind_slot(lease, first_id, keep=True)
    if answer is None:  # the acknowledgement was lost, but Runware took the tasks
        return _handle(tasks, plan.warnings, delivery="async", upload_seconds=upload_seconds)
    unscoped = [error for uuid, error in answer.failures if uuid is None]
    refused = {uuid: error for uuid, error in reversed(answer.failures) if uuid is not None}
    accepted = [task for task in tasks if str(task["taskUUID"]) not in refused]
    if unscoped or not accepted:
        refusal = unscoped[0] if unscoped else answer.failures[0][1]
        if redo and (yield from _forget_stale(refusal, used)):
            yield Event("retrying", PROVIDER, first_id,
                        message="Runware no longer has a reference image uploaded earlier; uploading it again")
            handle: JobHandle = yield from submit_flow(provider, plan, context, redo=False)
            return handle
        yield Event("failed", PROVIDER, request_id=refusal.request_id, message=str(refusal))
        raise refusal
    warnings = [*plan.warnings, *(
        BridgeWarning(field="num_images", asked=sum(_number_results(task) for task in tasks),
                      sent=sum(_number_results(task) for task in accepted), provider=PROVIDER,
                      reason=f"Runware refused task {uuid} ({type(error).__name__}, {error.code}): {error.message}")
        for uuid, error in refused.items())]
    return _handle(accepted, warnings, delivery="async", upload_seconds=upload_seconds)


# -- result -----------------------------------------------------------------------------------------------------


def _read_poll(response: HttpResponse, request_id: str) -> RunwareAnswer:
    """A getResponse answer; a failure Runware reports as transient (rate limit, unavailable) for a task still
    counts as a failed poll, to be tried again."""
    answer = _read(response, request_id)
    transient = [error for uuid, error in answer.failures if uuid is None or is_transient(error)]
    if transient:
        raise transient[0]
    return answer


def result_flow(provider: RunwareProvider, handle: JobHandle, context: FlowContext) -> Flow[PhotoMakerResult]:
    """Poll ``getResponse`` for the handle's tasks until every image is in or a task failed (§4.2).

    Polling is cumulative (every answer holds the task's whole state), so images are deduplicated by
    imageUUID. A failed poll is tried again as the client's retry policy allows; at the deadline
    GenerationTimeoutError carries the handle.
    """
    if handle.provider != PROVIDER:
        raise ConfigurationError(f"a {handle.provider!r} handle cannot be collected from Runware")
    provider.require_key()
    details: Mapping[str, Any] = handle.details.get("tasks") or {}
    collectors = [TaskCollector(TaskInfo.from_details(task_uuid, details.get(task_uuid)))
                  for task_uuid in handle.request_ids]
    bodies: list[Any] = []
    interval = provider.poll_interval
    announced = False
    try:
        while True:
            pending = [collector for collector in collectors if not collector.done]
            if not pending:
                break
            first_id = pending[0].info.task_uuid
            poll = _post(provider, [get_response_task(collector.info.task_uuid) for collector in pending])
            try:
                answer: RunwareAnswer = yield from step(poll, context, provider=PROVIDER, what="getResponse",
                                                        request_id=first_id,
                                                        parse=partial(_read_poll, request_id=first_id))
            except ProviderError as error:
                yield Event("failed", PROVIDER, request_id=first_id, message=str(error))
                raise _stamp(error, first_id) from None
            before = sum(len(collector.images) + len(collector.failures) for collector in pending)
            for collector in pending:
                collector.add(answer, include_unscoped=False)
            if sum(len(collector.images) + len(collector.failures) for collector in pending) > before:
                bodies.append(answer.body)
            if not announced and any(collector.pending for collector in pending):
                announced = True
                yield Event("running", PROVIDER, request_id=first_id)
            if all(collector.done for collector in collectors):
                break
            yield Wait(interval)
            interval = min(interval * _POLL_GROWTH, provider.max_poll_interval)
    except DeadlineReached:
        raise _timeout(handle, "waiting for the tasks") from None
    yield from release_slot(provider.account(), provider.limits(), request_id=handle.request_id)
    summary = summarize(collectors, requested=handle.requested_images)
    if summary.error is not None:
        yield Event("failed", PROVIDER, request_id=summary.error.request_id, message=str(summary.error))
        raise summary.error
    yield Event("completed", PROVIDER, request_id=handle.request_id)
    upload_seconds = handle.details.get("upload_seconds")
    return _result([{"taskUUID": task_uuid} for task_uuid in handle.request_ids], summary, handle.warnings, bodies,
                   handle.requested_images, upload_seconds if isinstance(upload_seconds, float) else None, context)


def handle_for(provider: RunwareProvider, request_id: str) -> JobHandle:
    """A handle from taskUUIDs alone (comma-separated for several); image counts and formats are unknown, so
    the tasks are complete when Runware reports nothing still processing."""
    ids = [part.strip() for part in request_id.split(",") if part.strip()]
    if not ids:
        raise InvalidRequestError("request_id", request_id, "a Runware taskUUID (several joined with commas)")
    return JobHandle(provider=PROVIDER, request_ids=ids, submitted_at=_now(), details={"delivery": "async"})
