"""fal's result flow, written once as a generator: poll each request on the bridge's own schedule until it
completes (fal.md §1.4), fetch its result, and assemble one result; at the deadline or a failure, cancel what
nobody will collect.

Polling is the bridge's own (``_polling``): each request is polled on a schedule that tightens around the time
fal requests are expected to take, learned from completed ones; ``fal_client``'s ``get()``/``subscribe()``
loops (10 polls a second, fal.md §1.8) are never used. Until a length is known (a new client), a request is
followed on fal's status stream instead (``_fal_stream``, fal.md §1.5), at most ``StreamSlots.limit`` at once
per adapter (each holds a connection); the others poll on the cold schedule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._http import DeadlineReached, Event, Flow, Wait
from ..errors import GenerationTimeoutError, ProviderError
from ..jobs import CancelOutcome, JobHandle
from ..result import PhotoMakerResult
from ._fal_cancel import cancel_requests
from ._fal_operations import LISTEN_SECONDS, FalStatusCheck, FalStatusStream, JobTracker
from ._fal_parse import PROVIDER, FalStatus, error_for_completed
from ._fal_progress import RequestProgress, duration_of, observe, since_submit
from ._fal_result import assemble, deadline_message, fetch, fetch_finished
from ._polling import PollTimer
from ._steps import add_note, cancel_summary, keep_handle, release_slot, renew_slot, step
from .base import FlowContext

if TYPE_CHECKING:
    from ._fal_flow import FalFlows

__all__ = ["result"]


def result(flows: FalFlows, handle: JobHandle, context: FlowContext,
           jobs: JobTracker | None) -> Flow[PhotoMakerResult]:
    """Poll every request of ``handle`` until it completes, fetch each result, and assemble one result.

    At the deadline under ``generate`` the unfinished requests are cancelled; one whose cancel fal refuses
    because it had completed is fetched after all (within the clean-up grace), and when every request is then
    in, the result is returned. Otherwise :class:`GenerationTimeoutError` says what became of each request.
    """
    application = str(handle.details.get("application", flows.application))
    asked = list(handle.images_per_request)
    progress = [RequestProgress(request_id, asked[index] if index < len(asked) else None)
                for index, request_id in enumerate(handle.request_ids)]
    pending = list(progress)
    # Times are seconds since the submit; a handle rebuilt from a bare id (resume) has no submit time, so
    # it is polled at once and its duration is not learned from.
    known = bool(handle.details.get("submitted_at_known", False))
    accepted_after = handle.details.get("accepted_after")
    for index, item in enumerate(progress):
        if known and isinstance(accepted_after, list) and index < len(accepted_after):
            item.origin = max(0.0, float(accepted_after[index]))
        item.timer = (PollTimer(flows.polling, flows.estimate.seconds, cold=not flows.estimate.known) if known
                      else PollTimer(flows.polling, flows.polling.min_interval))
    def seen(item: RequestProgress, status: FalStatus, sent: float, elapsed: float) -> Flow[None]:
        """What one status of ``item`` (polled at ``sent``, read at ``elapsed``) means: wait on, or collect."""
        item.state = status.state
        yield from observe(item, status, handle)
        assert item.timer is not None
        if status.state == "IN_QUEUE":
            item.last_queued = elapsed
        if status.state != "COMPLETED":
            yield from renew_slot(flows.account, flows.limits, item.request_id)
            item.timer.pending(elapsed, started=status.state == "IN_PROGRESS", sent=sent)
            return
        yield from release_slot(flows.account, flows.limits, request_id=item.request_id)
        if known and not status.failed:
            flows.estimate.update(duration_of(item, status, elapsed))
        # A completed request needs no cancel (fal.md §1.7), but it stays pending until its result is fetched:
        # a deadline during the fetch must name it, and must not claim to cancel it.
        if jobs is not None:
            jobs.finish(item.request_id)
        item.final = status
        if status.failed:
            item.error = error_for_completed(status, request_id=item.request_id)
        else:
            # Straight to the response URL: no second status call as fal_client.result() makes.
            yield from fetch(item, application, jobs, context, handle)
        pending.remove(item)
        if item.error is not None:
            yield Event("failed", PROVIDER, request_id=item.request_id, message=str(item.error))
        else:
            yield Event("completed", PROVIDER, request_id=item.request_id)

    # A new client knows no job length: it follows each request on fal's status stream (fal.md §1.5), one
    # request per job, seeing the completion as fal sends it, instead of polling around a guess.
    streaming = known and not flows.estimate.known and flows.streams is not None and flows.streams.take()
    try:
        elapsed = 0.0
        while pending:
            if streaming:
                item = pending[0]
                before, opened = item.state, context.clock()
                left = context.remaining()  # a listen ends by the deadline (the sync performer's thread too)
                listen = LISTEN_SECONDS if left is None else max(0.05, min(LISTEN_SECONDS, left))
                statuses: tuple[FalStatus, ...] = yield from step(
                    FalStatusStream(application, item.request_id, flows.with_logs, listen, item.state or "IN_QUEUE",
                                    jobs=jobs),
                    context, provider=PROVIDER, what="status stream", request_id=item.request_id)
                for status in statuses:
                    at = since_submit(handle) - item.origin
                    yield from seen(item, status, at, at)
                    if item.final is not None:
                        break
                for other in pending:  # followed one at a time: the others' slots are not given up meanwhile
                    if other is not item:
                        yield from renew_slot(flows.account, flows.limits, other.request_id)
                if item.final is None and item.state == before and context.clock() - opened < listen / 2:
                    # The stream ended early with nothing new (a proxy closing it, say): not a tight loop.
                    yield Wait(flows.polling.min_interval)
                continue
            if known:
                # No status call before a request is due (fal.md §1.4): sleep until the soonest one is.
                now = since_submit(handle)
                soonest = min(item.origin + item.timer.next_at for item in pending if item.timer is not None)
                if soonest > now:
                    yield Wait(soonest - now)
                    continue
                due = [item for item in pending
                       if item.timer is not None and item.origin + item.timer.next_at <= now]
            else:
                due = list(pending)  # a bare id (resume): poll every request, min_interval apart
            for item in due:
                sent = since_submit(handle) - item.origin if known else elapsed
                status = yield from step(
                    FalStatusCheck(application, item.request_id, flows.with_logs, jobs=jobs), context,
                    provider=PROVIDER, what="status poll", request_id=item.request_id)
                elapsed = (since_submit(handle) - item.origin if known
                           else elapsed + flows.polling.min_interval)
                yield from seen(item, status, sent, elapsed)
            if pending and not known:
                yield Wait(flows.polling.min_interval)
    except DeadlineReached as reached:
        running = [item for item in pending if item.final is None]
        outcomes: tuple[CancelOutcome, ...] = ()
        if running and context.cancel_on_deadline:
            outcomes = yield from cancel_requests(flows, [item.request_id for item in running], jobs, context,
                                                  application, {item.request_id: item.state for item in running})
            yield from fetch_finished(running, outcomes, pending, application, jobs, context, handle)
        if not pending:
            return assemble(handle, progress, application, context)
        raise GenerationTimeoutError(deadline_message(pending, outcomes, context), provider=PROVIDER,
                                     request_id=pending[0].request_id, handle=handle) from reached
    except ProviderError as error:
        # A status call failed for good (after the retries): nothing will collect the other requests when the
        # caller asked for a generation. A completed one needs no cancel.
        running = [item for item in pending if item.final is None]
        outcomes = ()
        if context.cancel_on_deadline and running:
            outcomes = yield from cancel_requests(flows, [item.request_id for item in running], jobs, context,
                                                  application, {item.request_id: item.state for item in running})
            yield from fetch_finished(running, outcomes, pending, application, jobs, context, handle)
            if not pending:
                return assemble(handle, progress, application, context)
            add_note(error, cancel_summary(outcomes))
        elif running:
            add_note(error, "still running: collect with the handle or resume("
                     + ",".join(item.request_id for item in running) + ")")
        # What is left may still deliver and be billed: requests not cancelled, and completed ones whose result
        # could not be fetched. The error then carries the handle to collect them by.
        stopped = {outcome.request_id for outcome in outcomes
                   if outcome.state in ("cancelled", "cancel_requested", "not_found")}
        keep_handle(error, handle, running=any(
            item.error is None and item.output is None and item.request_id not in stopped
            and not (item.final is not None and item.final.failed) for item in pending))
        raise
    finally:
        if streaming and flows.streams is not None:
            flows.streams.give()
    return assemble(handle, progress, application, context)
