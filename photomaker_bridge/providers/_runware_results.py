"""Collecting Runware tasks by handle: ``getResponse`` polled (docs/protocols/runware.md §4.2) until every image
is in or a task failed.

When to poll: Runware's own SDK polls at once, then after 0.5 s growing ×1.5 up to 10 s (§4.2), which notices a
job up to half its length late — a handle collected this way took 2.5× as long as the same job answered on a
synchronous POST (``benchmarks/batch.py``). So the bridge polls like it does fal and Eachlabs (``_polling``):
on the cold schedule (lag within a tenth of the time elapsed, 0.5–1.5 s) until it knows how long this model's
tasks take, then around the learned length. Runware's answers carry no timing, so a length is learned from the
middle between the last poll that found the tasks unfinished and the one that found them done
(docs/architecture.md, "Polling"). ``RunwareProvider(poll_interval=...)`` keeps the SDK's fixed cadence instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from .._http import DeadlineReached, Event, Flow, HttpResponse, Wait
from .._retry import is_transient
from ..errors import ConfigurationError, InvalidRequestError, ProviderError
from ..jobs import JobHandle
from ..result import PhotoMakerResult
from ._polling import PollTimer, duration_sample
from ._runware_common import make_result, now, post_tasks, read_answer, stamp, timeout_error
from ._runware_parsing import PROVIDER, RunwareAnswer
from ._runware_tasks import TaskCollector, TaskInfo, summarize
from ._runware_wire import get_response_task
from ._steps import add_note, keep_handle, release_slot, step
from .base import FlowContext

if TYPE_CHECKING:
    from .runware import RunwareProvider

__all__ = ["handle_for", "result_flow"]

_NOT_FOUND: Final = "taskNotFound"
"""getResponse's code for a taskUUID Runware never had (§4.2; taskExpired is a task it had and forgot)."""
_POLL_GROWTH: Final = 1.5  # §4.2: the new SDK waits 0.5 s, then ×1.5 up to 10 s between polls


def _read_poll(response: HttpResponse, request_id: str) -> RunwareAnswer:
    """A getResponse answer; a failure Runware reports as transient (rate limit, unavailable) for a task still
    counts as a failed poll, to be tried again."""
    answer = read_answer(response, request_id)
    transient = [error for uuid, error in answer.failures if uuid is None or is_transient(error)]
    if transient:
        raise transient[0]
    return answer


def _fixed_waits(provider: RunwareProvider, first: float) -> Iterator[float]:
    """The SDK's cadence (``poll_interval`` set): at once, then ``first`` seconds growing ×1.5 up to
    ``max_poll_interval``."""
    yield 0.0
    interval = first
    while True:
        yield interval
        interval = min(interval * _POLL_GROWTH, provider.max_poll_interval)


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
    # Times below are seconds since Runware accepted the tasks (the handle's submitted_at, on this clock).
    resumed = handle.details.get("resumed") is True  # a handle rebuilt from ids: its age is unknown
    origin = context.clock() - max((now() - handle.submitted_at).total_seconds(), 0.0)
    estimate = provider.estimate()
    # A handle of unknown age may be anywhere in its run: the cold schedule bounds the lag wherever that is.
    timer = PollTimer(provider.polling, estimate.seconds, cold=resumed or not estimate.known)
    fixed = _fixed_waits(provider, provider.poll_interval) if provider.poll_interval is not None else None
    if resumed or fixed is not None:
        timer.next_at = context.clock() - origin  # the first poll at once
    announced = False
    try:
        while True:
            pending = [collector for collector in collectors if not collector.done]
            if not pending:
                break
            delay = (next(fixed) if fixed is not None else origin + timer.next_at - context.clock())
            if delay > 0:
                yield Wait(delay)
            sent = context.clock() - origin
            first_id = pending[0].info.task_uuid
            poll = post_tasks(provider, [get_response_task(collector.info.task_uuid) for collector in pending])
            try:
                answer: RunwareAnswer = yield from step(poll, context, provider=PROVIDER, what="getResponse",
                                                        request_id=first_id,
                                                        parse=partial(_read_poll, request_id=first_id))
            except ProviderError as error:
                yield Event("failed", PROVIDER, request_id=first_id, message=str(error))
                # Runware has no cancel (docs/protocols/runware.md): the tasks run on and can be collected later.
                failure = stamp(error, first_id)
                keep_handle(failure, handle, running=True)
                if failure.handle is not None:
                    add_note(failure, "still running (Runware has no cancel): collect with the handle or resume("
                             + ",".join(handle.request_ids) + ")")
                raise failure from None
            elapsed = context.clock() - origin
            before = sum(len(collector.images) + len(collector.failures) for collector in pending)
            for collector in pending:
                collector.add(answer, include_unscoped=False)
            if sum(len(collector.images) + len(collector.failures) for collector in pending) > before:
                bodies.append(answer.body)
            if not announced and any(collector.pending for collector in pending):
                announced = True
                yield Event("running", PROVIDER, request_id=first_id)
            if all(collector.done for collector in collectors):
                if not resumed:
                    estimate.update(duration_sample(timer.last_pending, elapsed, None))
                break
            timer.pending(elapsed, started=True, sent=sent)  # Runware tells no queue from run (§4.2)
    except DeadlineReached:
        raise timeout_error(handle, "waiting for the tasks") from None
    yield from release_slot(provider.account(), provider.limits(), request_id=handle.request_id)
    summary = summarize(collectors, requested=handle.requested_images)
    if (summary.error is not None and not summary.images and handle.details.get("delivery") == "sync"
            and all(collector.failures and all(error.code == _NOT_FOUND for error in collector.failures)
                    for collector in collectors)):
        # A sync handle is made before its POST leaves (Event.accepted false): Runware never had these tasks, so
        # nothing ran and nothing is billed. An async handle was acknowledged: its tasks existed.
        summary.error.never_accepted = True
    if summary.error is not None:
        yield Event("failed", PROVIDER, request_id=summary.error.request_id, message=str(summary.error))
        raise summary.error
    yield Event("completed", PROVIDER, request_id=handle.request_id)
    upload_seconds = handle.details.get("upload_seconds")
    return make_result([{"taskUUID": task_uuid} for task_uuid in handle.request_ids], summary, handle.warnings,
                       bodies, handle.requested_images, upload_seconds if isinstance(upload_seconds, float) else None,
                       context)


def handle_for(provider: RunwareProvider, request_id: str) -> JobHandle:
    """A handle from taskUUIDs alone (comma-separated for several); image counts and formats are unknown, so
    the tasks are complete when Runware reports nothing still processing. Its age is unknown too: it is polled
    at once, and teaches nothing about how long tasks take."""
    ids = [part.strip() for part in request_id.split(",") if part.strip()]
    if not ids:
        raise InvalidRequestError("request_id", request_id, "a Runware taskUUID (several joined with commas)")
    return JobHandle(provider=PROVIDER, request_ids=ids, submitted_at=now(),
                     details={"delivery": "async", "resumed": True})
