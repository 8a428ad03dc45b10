"""Runware's protocols, each written once as a generator and driven sync or async.

* uploads (``_runware_uploads``): the local reference images go up first, once per distinct content.
* generate: the task array is posted with sync delivery (the default, §4.1) and every image is read from the
  one answer; several requests can share that one array (:func:`generate_many_flow`), matched by taskUUID.
* submit: the tasks go with ``deliveryMethod: "async"``; ``_runware_results`` polls ``getResponse`` (§4.2) until
  every image is in or a task failed.

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

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._http import DeadlineReached, Event, Flow
from .._retry import is_provably_refused, is_transient
from ..errors import ProviderError
from ..jobs import JobHandle
from ..plan import Plan
from ..result import BridgeWarning, PhotoMakerResult
from ._runware_common import (
    STALE_UPLOAD_CODES,
    UNKNOWN_TASK_CODES,
    make_handle,
    make_result,
    number_results,
    post_tasks,
    read_answer,
    stamp,
    tasks_of,
    timeout_error,
)
from ._runware_parsing import PROVIDER, RunwareAnswer
from ._runware_results import result_flow
from ._runware_tasks import Summary, TaskCollector, TaskInfo, summarize
from ._runware_uploads import forget_stale, prepare_tasks
from ._runware_wire import get_response_task
from ._steps import acquire_slots, bind_slot, keep_handle, release_slot, step
from .base import FlowContext

if TYPE_CHECKING:
    from .runware import RunwareProvider

__all__ = ["generate_flow", "generate_many_flow", "submit_flow"]


def _known(provider: RunwareProvider, task_uuids: Sequence[str], context: FlowContext) -> Flow[bool]:
    """Whether Runware knows any of ``task_uuids`` (a getResponse, §4.2): did it take a POST whose answer was
    lost?"""
    first_id = task_uuids[0]
    answer: RunwareAnswer = yield from step(
        post_tasks(provider, [get_response_task(task_uuid) for task_uuid in task_uuids]), context, provider=PROVIDER,
        what="getResponse", request_id=first_id, parse=lambda reply: read_answer(reply, first_id))
    unknown = {uuid for uuid, error in answer.failures if error.code in UNKNOWN_TASK_CODES}
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
    request = post_tasks(provider, tasks, creates_job=True)
    resent = False
    for attempt in range(1, context.retry.attempts + 1):
        try:
            answer: RunwareAnswer = yield from step(request, context, provider=PROVIDER, what="task submission",
                                                    request_id=first_id,
                                                    parse=lambda reply: read_answer(reply, first_id))
            return answer
        except ProviderError as error:
            conflict = error.code == "conflictTaskUUID"
            if conflict and not (own_uuids or resent):
                raise stamp(error, first_id) from None
            if is_provably_refused(error) or not (is_transient(error) or conflict):
                raise stamp(error, first_id) from None
            failure = error
        yield Event("retrying", PROVIDER, first_id,
                    message=f"Runware's answer to the task submission was lost ({failure}); asking getResponse "
                            "whether it took the tasks")
        try:
            known = yield from _known(provider, task_uuids, context)
        except ProviderError as error:
            # Neither the answer nor the check came back: Runware may have taken (and will bill) the tasks.
            unchecked = stamp(error, first_id)
            unchecked.may_have_accepted = True
            raise unchecked from None
        if known:
            return None
        if attempt == context.retry.attempts:
            raise stamp(failure, first_id)
        resent = True  # not taken: send the same tasks again
    raise AssertionError("unreachable")  # the loop returns or raises


def _sync_flow(provider: RunwareProvider, plans: Sequence[Plan], context: FlowContext, *, redo: bool = True,
               ) -> Flow[list[PhotoMakerResult | ProviderError]]:
    """Post every plan's tasks as one sync array; one result or error per plan."""
    try:
        prepared, upload_seconds, used = yield from prepare_tasks(provider, plans, context)
    except DeadlineReached:
        timeout = timeout_error(None, "uploading reference images")
        yield Event("failed", PROVIDER, message=str(timeout))
        return [timeout for _ in plans]
    except ProviderError as error:
        yield Event("failed", PROVIDER, request_id=error.request_id, message=str(error))
        return [error for _ in plans]
    all_tasks = [task for tasks in prepared for task in tasks]
    first_id = str(all_tasks[0]["taskUUID"])
    handles = [make_handle(tasks, plan.warnings, delivery="sync", upload_seconds=upload_seconds)
               for plan, tasks in zip(plans, prepared, strict=True)]
    leases = yield from acquire_slots(context, PROVIDER, provider.account(), provider.limits(), 1, first_id)
    lease = leases[0] if leases else None
    yield Event("submitted", PROVIDER, request_id=first_id)
    for handle in handles:
        # Runware answers a sync POST only when the images are done; the taskUUIDs are ours, so the handle exists
        # now, before any answer (docs/protocols/runware.md §4.1, §4.2): not yet accepted.
        yield Event("handle", PROVIDER, request_id=handle.request_id, handle=handle, accepted=False)
    answer: RunwareAnswer | None = None
    sent_at = context.clock()
    try:
        answer = yield from _send_tasks(provider, all_tasks, context, own_uuids=_own_uuids(plans))
    except DeadlineReached:
        # Sync tasks "continue processing in the background" after a timeout (§4.1 seed): the handles let
        # result() collect them with getResponse.
        outcomes: list[PhotoMakerResult | ProviderError] = [
            timeout_error(handle, "waiting for Runware's sync answer") for handle in handles]
        yield Event("failed", PROVIDER, request_id=first_id, message=str(outcomes[0]))
        return outcomes
    except ProviderError as error:
        yield from release_slot(provider.account(), provider.limits(), lease=lease)
        if error.may_have_accepted and len(handles) == 1:
            # The tasks may run on: their handle (our own taskUUIDs) lets result() collect them, or say Runware
            # never had them (never_accepted).
            keep_handle(error, handles[0], running=True)
        yield Event("failed", PROVIDER, request_id=error.request_id, message=str(error))
        return [error for _ in plans]
    yield from bind_slot(lease, first_id, keep=False)
    if answer is not None and answer.items and not answer.failures:
        # A sync answer arrives when the tasks are done: the task length as a caller sees it, which the polling
        # of async tasks learns from too (_runware_results).
        provider.estimate().update(context.clock() - sent_at)
    outcomes = []
    for plan, tasks, handle in zip(plans, prepared, handles, strict=True):
        if answer is None:
            outcome = yield from _collect(provider, handle, context)
        else:
            outcome = yield from _read_plan(tasks, plan, answer, upload_seconds, context)
        outcomes.append(outcome)
    yield from release_slot(provider.account(), provider.limits(), request_id=first_id)
    stale = [(index, outcome) for index, outcome in enumerate(outcomes)
             if isinstance(outcome, ProviderError) and outcome.code in STALE_UPLOAD_CODES]
    if redo and stale and (yield from forget_stale(stale[0][1], used)):
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
    requested = sum(number_results(task) for task in tasks)
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
    return make_result(tasks, summary, plan.warnings, [answer.body], requested, upload_seconds, context)


def _delivered_later(plan: Plan) -> bool:
    """Whether Runware answers the plan's tasks with an acknowledgement only: ``deliveryMethod: "async"`` or a
    ``webhookURL`` (§4.1, §4.3), set through ``provider_options`` or ``submit(webhook_url=...)``."""
    return any(task.get("deliveryMethod") == "async" or task.get("webhookURL") for task in tasks_of(plan))


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


def submit_flow(provider: RunwareProvider, plan: Plan, context: FlowContext) -> Flow[JobHandle]:
    """Upload, post the tasks with ``deliveryMethod: "async"`` and return the handle of the accepted ones (also
    given in a ``handle`` event).

    Tasks Runware refused while others were accepted become warnings on the handle (they never run); when
    none was accepted the first typed error is raised.
    """
    handle = yield from _submit(provider, plan, context)
    yield Event("handle", PROVIDER, request_id=handle.request_id, handle=handle, accepted=True)
    return handle


def _submit(provider: RunwareProvider, plan: Plan, context: FlowContext, *, redo: bool = True) -> Flow[JobHandle]:
    try:
        prepared, upload_seconds, used = yield from prepare_tasks(provider, [plan], context)
    except DeadlineReached:
        raise timeout_error(None, "uploading reference images") from None
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
        raise timeout_error(make_handle(tasks, plan.warnings, delivery="async", upload_seconds=upload_seconds),
                       "submitting the tasks") from None
    except ProviderError as error:
        yield Event("failed", PROVIDER, request_id=first_id, message=str(error))
        raise
    for lease in leases:
        yield from bind_slot(lease, first_id, keep=True)
    if answer is None:  # the acknowledgement was lost, but Runware took the tasks
        return make_handle(tasks, plan.warnings, delivery="async", upload_seconds=upload_seconds)
    unscoped = [error for uuid, error in answer.failures if uuid is None]
    refused = {uuid: error for uuid, error in reversed(answer.failures) if uuid is not None}
    accepted = [task for task in tasks if str(task["taskUUID"]) not in refused]
    if unscoped or not accepted:
        refusal = unscoped[0] if unscoped else answer.failures[0][1]
        if redo and (yield from forget_stale(refusal, used)):
            yield Event("retrying", PROVIDER, first_id,
                        message="Runware no longer has a reference image uploaded earlier; uploading it again")
            handle: JobHandle = yield from _submit(provider, plan, context, redo=False)
            return handle
        yield Event("failed", PROVIDER, request_id=refusal.request_id, message=str(refusal))
        raise refusal
    warnings = [*plan.warnings, *(
        BridgeWarning(field="num_images", asked=sum(number_results(task) for task in tasks),
                      sent=sum(number_results(task) for task in accepted), provider=PROVIDER,
                      reason=f"Runware refused task {uuid} ({type(error).__name__}, {error.code}): {error.message}")
        for uuid, error in refused.items())]
    return make_handle(accepted, warnings, delivery="async", upload_seconds=upload_seconds)
