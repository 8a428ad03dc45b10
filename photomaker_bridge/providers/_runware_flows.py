"""Runware's protocols, each written once as a generator (style-guide rule 5) and driven sync or async.

* uploads: every local reference image not yet in the client's upload cache goes up in one ``imageUpload``
  array (§5.4); the returned imageUUIDs replace the plan's placeholders and are cached per content hash.
* generate: the task array is posted with sync delivery (the default, §4.1) and every image is read from the
  one answer; several requests can share that one array (:func:`generate_many_flow`), matched by taskUUID.
* submit / result: the tasks go with ``deliveryMethod: "async"``; ``getResponse`` is polled (§4.2) with a
  growing interval until every image is in or a task failed.

Partial success (§2.5: errors are scoped to the task that failed, the others may still succeed) is never
lost: a result keeps every image that arrived and turns each error into a warning; only when no image arrived
is the first typed error raised. Transport failures arrive as :class:`ProviderError` thrown in at a ``yield``;
they are stamped with the first taskUUID (the request's id) and re-raised.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._http import DeadlineReached, Event, Flow, HttpRequest, HttpResponse, Wait
from ..errors import (
    ConfigurationError,
    GenerationTimeoutError,
    InvalidRequestError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
)
from ..images import build_data_uri
from ..jobs import JobHandle
from ..plan import Plan, UploadPlaceholder
from ..result import BridgeWarning, PhotoMakerResult, Timings
from ._runware_parsing import PROVIDER, RunwareAnswer, Summary, TaskCollector, TaskInfo, parse_answer, summarize
from ._runware_wire import get_response_task, image_upload_task
from .base import FlowContext, fill_placeholders, new_uuid

if TYPE_CHECKING:
    from .runware import RunwareProvider

__all__ = ["generate_flow", "generate_many_flow", "handle_for", "result_flow", "submit_flow", "upload_flow"]

_POLL_GROWTH = 1.5  # §4.2: the new SDK waits 0.5 s, then ×1.5 up to 10 s between polls


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _post(provider: RunwareProvider, tasks: list[dict[str, Any]]) -> HttpRequest:
    # §2.1: the body is always a JSON array of tasks, authenticated by the Bearer header.
    return HttpRequest.json("POST", provider.base_url, PROVIDER, tasks, headers=provider.headers())


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


def upload_flow(provider: RunwareProvider, uploads: Sequence[UploadPlaceholder], context: FlowContext,
                ) -> Flow[tuple[dict[str, str], bool]]:
    """Upload what the cache lacks; returns ``({sha256: imageUUID}, whether anything was sent)``."""
    resolved: dict[str, str] = {}
    missing: list[UploadPlaceholder] = []
    for upload in uploads:
        cached = context.upload_cache.get(f"{PROVIDER}:{upload.sha256}")
        if cached:
            resolved[upload.sha256] = cached
        elif all(upload.sha256 != known.sha256 for known in missing):
            missing.append(upload)
    if not missing:
        return resolved, False
    tasks: list[dict[str, Any]] = []
    for upload in missing:
        yield Event("uploading", PROVIDER, message=upload.description)
        tasks.append(image_upload_task(new_uuid(), build_data_uri(upload.data, upload.content_type)))
    first_id = str(tasks[0]["taskUUID"])
    try:
        response: HttpResponse = yield _post(provider, tasks)
    except ProviderError as error:
        raise _stamp(error, first_id) from None
    answer = parse_answer(response, request_id=first_id)
    for upload, task in zip(missing, tasks, strict=True):
        task_uuid = str(task["taskUUID"])
        failures = answer.failures_for(task_uuid)
        if failures:
            raise failures[0]
        candidates = [item.image_uuid for item in answer.items_for(task_uuid) if item.image_uuid]
        if not candidates and len(tasks) == 1:
            # §5.4 [CONFLICT]: one docs version answers {"data": {...}}; accept a lone item without taskUUID.
            candidates = [item.image_uuid for item in answer.items if item.image_uuid]
        if not candidates:
            raise ProviderUnavailableError(f"Runware's imageUpload answer has no imageUUID for {upload.description}",
                                           provider=PROVIDER, status=answer.status, code="invalid_response",
                                           request_id=task_uuid, raw=answer.body)
        context.upload_cache[f"{PROVIDER}:{upload.sha256}"] = candidates[0]
        resolved[upload.sha256] = candidates[0]
    return resolved, True


def _prepare(provider: RunwareProvider, plans: Sequence[Plan], context: FlowContext,
             ) -> Flow[tuple[list[list[dict[str, Any]]], float | None]]:
    """Each plan's tasks with uploaded imageUUIDs in place of the placeholders, and the upload time."""
    provider.require_key()
    tasks_by_plan = [_tasks_of(plan) for plan in plans]
    uploads = [upload for plan in plans for upload in plan.uploads]
    started = context.clock()
    uuids, sent = yield from upload_flow(provider, uploads, context)
    upload_seconds = context.clock() - started if sent else None
    replacements = {upload.placeholder: uuids[upload.sha256] for upload in uploads}
    return [[fill_placeholders(task, replacements) for task in tasks] for tasks in tasks_by_plan], upload_seconds


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


def _sync_flow(provider: RunwareProvider, plans: Sequence[Plan], context: FlowContext,
               ) -> Flow[list[PhotoMakerResult | ProviderError]]:
    """Post every plan's tasks as one sync array; one result or error per plan."""
    try:
        prepared, upload_seconds = yield from _prepare(provider, plans, context)
    except DeadlineReached:
        timeout = _timeout(None, "uploading reference images")
        yield Event("failed", PROVIDER, message=str(timeout))
        return [timeout for _ in plans]
    except ProviderError as error:
        yield Event("failed", PROVIDER, request_id=error.request_id, message=str(error))
        return [error for _ in plans]
    all_tasks = [task for tasks in prepared for task in tasks]
    first_id = str(all_tasks[0]["taskUUID"])
    yield Event("submitted", PROVIDER, request_id=first_id)
    answer: RunwareAnswer | None = None
    failure: ProviderError | None = None
    try:
        response: HttpResponse = yield _post(provider, all_tasks)
        answer = parse_answer(response, request_id=first_id)
    except DeadlineReached:
        # Sync tasks "continue processing in the background" after a timeout (§4.1 seed): the handles let
        # result() try getResponse on them [UNVERIFIED: whether getResponse serves sync-delivered tasks].
        outcomes: list[PhotoMakerResult | ProviderError] = [
            _timeout(_handle(tasks, plan.warnings, delivery="sync", upload_seconds=upload_seconds),
                     "waiting for Runware's sync answer")
            for plan, tasks in zip(plans, prepared, strict=True)]
        yield Event("failed", PROVIDER, request_id=first_id, message=str(outcomes[0]))
        return outcomes
    except ProviderError as error:
        failure = _stamp(error, first_id)
    if answer is None:
        assert failure is not None
        yield Event("failed", PROVIDER, request_id=failure.request_id, message=str(failure))
        return [failure for _ in plans]
    outcomes = []
    for plan, tasks in zip(plans, prepared, strict=True):
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
            outcomes.append(summary.error)
        else:
            yield Event("completed", PROVIDER, request_id=str(tasks[0]["taskUUID"]))
            outcomes.append(_result(tasks, summary, plan.warnings, [answer.body], requested, upload_seconds,
                                    context))
    return outcomes


def generate_flow(provider: RunwareProvider, plan: Plan, context: FlowContext) -> Flow[PhotoMakerResult]:
    """One plan with sync delivery: its result, or the first typed error when no image arrived.

    A plan whose tasks ask for ``deliveryMethod: "async"`` (through ``provider_options``) is submitted and
    polled instead: a sync read of it would only see acknowledgements (§4.1).
    """
    if any(task.get("deliveryMethod") == "async" for task in _tasks_of(plan)):
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
    """Several plans' tasks in ONE sync array; one result or error per plan, matched by taskUUID."""
    if not plans:
        return []
    outcomes = yield from _sync_flow(provider, plans, context)
    return outcomes


def submit_flow(provider: RunwareProvider, plan: Plan, context: FlowContext) -> Flow[JobHandle]:
    """Upload, post the tasks with ``deliveryMethod: "async"`` and return the handle of the accepted ones.

    Tasks Runware refused while others were accepted become warnings on the handle (they never run); when
    none was accepted the first typed error is raised.
    """
    try:
        prepared, upload_seconds = yield from _prepare(provider, [plan], context)
    except DeadlineReached:
        raise _timeout(None, "uploading reference images") from None
    # §4.1: async delivery answers at once with an acknowledgement; results come from getResponse.
    tasks = [{**task, "deliveryMethod": "async"} for task in prepared[0]]
    first_id = str(tasks[0]["taskUUID"])
    yield Event("submitted", PROVIDER, request_id=first_id)
    try:
        response: HttpResponse = yield _post(provider, tasks)
    except DeadlineReached:
        raise _timeout(_handle(tasks, plan.warnings, delivery="async", upload_seconds=upload_seconds),
                       "submitting the tasks") from None
    except ProviderError as error:
        yield Event("failed", PROVIDER, request_id=first_id, message=str(error))
        raise _stamp(error, first_id) from None
    answer = parse_answer(response, request_id=first_id)
    unscoped = [error for uuid, error in answer.failures if uuid is None]
    refused = {uuid: error for uuid, error in reversed(answer.failures) if uuid is not None}
    accepted = [task for task in tasks if str(task["taskUUID"]) not in refused]
    if unscoped or not accepted:
        refusal = unscoped[0] if unscoped else answer.failures[0][1]
        yield Event("failed", PROVIDER, request_id=refusal.request_id, message=str(refusal))
        raise refusal
    warnings = [*plan.warnings, *(
        BridgeWarning(field="num_images", asked=sum(_number_results(task) for task in tasks),
                      sent=sum(_number_results(task) for task in accepted), provider=PROVIDER,
                      reason=f"Runware refused task {uuid} ({type(error).__name__}, {error.code}): {error.message}")
        for uuid, error in refused.items())]
    return _handle(accepted, warnings, delivery="async", upload_seconds=upload_seconds)


def result_flow(provider: RunwareProvider, handle: JobHandle, context: FlowContext) -> Flow[PhotoMakerResult]:
    """Poll ``getResponse`` for the handle's tasks until every image is in or a task failed (§4.2).

    Polling is cumulative (every answer holds the task's whole state), so images are deduplicated by
    imageUUID. A transient poll failure (rate limit, 5xx, dropped connection, unreadable answer) is retried
    up to ``provider.max_poll_failures`` times in a row; at the deadline GenerationTimeoutError carries the
    handle.
    """
    if handle.provider != PROVIDER:
        raise ConfigurationError(f"a {handle.provider!r} handle cannot be collected from Runware")
    provider.require_key()
    details: Mapping[str, Any] = handle.details.get("tasks") or {}
    collectors = [TaskCollector(TaskInfo.from_details(task_uuid, details.get(task_uuid)))
                  for task_uuid in handle.request_ids]
    bodies: list[Any] = []
    interval = provider.poll_interval
    failures_in_a_row = 0
    announced = False
    while True:
        pending = [collector for collector in collectors if not collector.done]
        if not pending:
            break
        first_id = pending[0].info.task_uuid
        try:
            response: HttpResponse = yield _post(provider, [get_response_task(collector.info.task_uuid)
                                                            for collector in pending])
            answer = parse_answer(response, request_id=first_id)
            transient = [error for uuid, error in answer.failures
                         if uuid is None or isinstance(error, RateLimitedError | ProviderUnavailableError)]
            if transient:
                raise transient[0]
        except DeadlineReached:
            raise _timeout(handle, "waiting for the tasks") from None
        except ProviderError as error:
            failures_in_a_row += 1
            if not error.retryable or failures_in_a_row >= provider.max_poll_failures:
                yield Event("failed", PROVIDER, request_id=first_id, message=str(error))
                raise _stamp(error, first_id) from None
            wait = interval
            if isinstance(error, RateLimitedError) and error.retry_after is not None:
                wait = max(interval, error.retry_after)
            try:
                yield Wait(wait)
            except DeadlineReached:
                raise _timeout(handle, "waiting for the tasks") from None
            continue
        failures_in_a_row = 0
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
        try:
            yield Wait(interval)
        except DeadlineReached:
            raise _timeout(handle, "waiting for the tasks") from None
        interval = min(interval * _POLL_GROWTH, provider.max_poll_interval)
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
