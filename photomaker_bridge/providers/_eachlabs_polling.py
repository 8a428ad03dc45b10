"""Eachlabs' result flow, written once as a generator: poll each prediction on the adaptive schedule
(``_polling``) until all succeed (§2.4–2.7), then assemble one result; at the deadline or a failure, cancel what
nobody will collect.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

from .._http import DeadlineReached, Event, Flow, HttpRequest, Wait
from ..errors import GenerationTimeoutError, ProviderError
from ..jobs import CancelOutcome, JobHandle
from ..result import PhotoMakerResult
from ._eachlabs_cancel import api_url, cancel_ids, cancel_in_background
from ._eachlabs_parsing import PROVIDER, PredictionSnapshot, parse_prediction
from ._eachlabs_result import assemble_result
from ._polling import PollTimer, duration_sample
from ._steps import add_note, cancel_summary, forget_upload, keep_handle, release_slot, renew_slot, step
from .base import FlowContext

if TYPE_CHECKING:
    from .eachlabs import EachlabsProvider

__all__ = ["DOWNLOAD_FAILURE", "result"]

DOWNLOAD_FAILURE: Final = "INPUT_DOWNLOAD_ERROR"
"""Eachlabs could not fetch an input file (§2.6): a cached upload it can no longer read is uploaded again."""


def _poll(provider: EachlabsProvider, prediction_id: str, context: FlowContext,
          headers: Mapping[str, str]) -> Flow[PredictionSnapshot]:
    request = HttpRequest("GET", api_url(provider, f"/v1/prediction/{prediction_id}"), PROVIDER, headers,
                          timeout=provider.polling.request_timeout)
    snapshot: PredictionSnapshot = yield from step(
        request, context, provider=PROVIDER, what="status poll", request_id=prediction_id,
        parse=lambda response: parse_prediction(response, prediction_id))
    return snapshot


def result(provider: EachlabsProvider, handle: JobHandle, context: FlowContext) -> Flow[PhotoMakerResult]:
    """Poll each prediction of ``handle`` on the adaptive schedule until all succeed, then assemble one result.

    * A failed prediction cancels its unfinished siblings and its error is raised; one that could not download a
      cached upload makes the client forget that upload (the next call uploads it again).
    * A poll that keeps failing (after the retry policy's tries) raises its error; under ``generate``
      (``cancel_on_deadline``) the unfinished predictions are cancelled first, otherwise they are left running
      for a later ``resume``.
    * At the deadline: under ``generate`` cancel; a prediction whose cancel is refused because it had already
      finished is collected (within the clean-up grace) and, when every prediction is then in, the result is
      returned after all. Otherwise :class:`GenerationTimeoutError` says what became of each and carries the
      handle.
    * Abandoned (the caller's task cancelled, ``on_event`` raising) under ``generate``: nobody will collect the
      unfinished predictions, so they are cancelled (in the background when the flow is being closed).
    """
    headers = provider.headers()
    account, limits = provider.account(), provider.limits()
    ids = list(handle.request_ids)
    estimate = provider.estimate()
    resumed = handle.details.get("resumed") is True
    offsets = handle.details.get("created_after")
    age = (datetime.datetime.now(datetime.UTC) - handle.submitted_at).total_seconds()
    now = context.clock()
    origins: dict[str, float] = {}
    timers: dict[str, PollTimer] = {}
    for index, prediction_id in enumerate(ids):
        offset = offsets[index] if isinstance(offsets, list) and index < len(offsets) else 0.0
        origins[prediction_id] = now - max(age - float(offset), 0.0)
        timers[prediction_id] = PollTimer(provider.polling, estimate.seconds, cold=not estimate.known)
        if resumed:
            timers[prediction_id].next_at = 0.0
    snapshots: dict[str, PredictionSnapshot] = {}
    phases: dict[str, str] = {}
    failed_job = False

    def unfinished() -> list[str]:
        return [prediction_id for prediction_id in ids if prediction_id not in snapshots]

    try:
        while len(snapshots) < len(ids):
            prediction_id = min(unfinished(), key=lambda each: origins[each] + timers[each].next_at)
            timer = timers[prediction_id]
            delay = origins[prediction_id] + timer.next_at - context.clock()
            if delay > 0:
                yield Wait(delay)
            sent = context.clock() - origins[prediction_id]
            try:
                snapshot = yield from _poll(provider, prediction_id, context, headers)
            except ProviderError as error:
                # A 2xx answer that is an error is the prediction's own failure (§2.6).
                failed_job = error.status is not None and 200 <= error.status < 300
                if failed_job:
                    yield from release_slot(account, limits, request_id=prediction_id)
                    if error.code == DOWNLOAD_FAILURE:
                        for key, url in dict(handle.details.get("uploads") or {}).items():
                            yield from forget_upload(str(key), str(url))
                raise
            elapsed = context.clock() - origins[prediction_id]
            if phases.get(prediction_id) != snapshot.phase:
                phases[prediction_id] = snapshot.phase
                kind = {"queued": "queued", "running": "running", "succeeded": "completed"}[snapshot.phase]
                yield Event(kind, PROVIDER, prediction_id)
            if not snapshot.finished:
                yield from renew_slot(account, limits, prediction_id)
                timer.pending(elapsed, started=snapshot.phase == "running", sent=sent)
                continue
            snapshots[prediction_id] = snapshot
            yield from release_slot(account, limits, request_id=prediction_id)
            if not resumed:
                estimate.update(duration_sample(timer.last_pending, elapsed, snapshot.predict_time))
        collected = assemble_result([snapshots[prediction_id] for prediction_id in ids], handle,
                                    total_seconds=context.clock() - context.started_at)
    except DeadlineReached:
        left = unfinished()
        if not context.cancel_on_deadline:
            raise GenerationTimeoutError(
                f"the deadline passed before {len(left)} of {len(ids)} Eachlabs prediction(s) finished (still "
                f"running; resume with request id {','.join(ids)})", provider=PROVIDER,
                request_id=left[0] if left else None, handle=handle) from None
        outcomes = yield from cancel_ids(provider, left, context, headers)
        late = yield from _collect_finished(provider, outcomes, context, headers)
        snapshots.update(late)
        if len(snapshots) == len(ids):
            # Every prediction had finished after all: the caller paid for it, so it gets the result.
            return assemble_result([snapshots[prediction_id] for prediction_id in ids], handle,
                                   total_seconds=context.clock() - context.started_at)
        raise GenerationTimeoutError(
            f"the deadline passed before {len(left)} of {len(ids)} Eachlabs prediction(s) finished "
            f"({cancel_summary(outcomes)})", provider=PROVIDER, request_id=left[0] if left else None,
            handle=handle) from None
    except ProviderError as error:
        left = unfinished()
        cancelled: tuple[CancelOutcome, ...] = ()
        running: list[str] = []
        if failed_job:
            # A failed prediction fails the whole job: its siblings would never be collected.
            cancelled = yield from cancel_ids(provider, [each for each in left if each != error.request_id],
                                              context, headers)
        elif context.cancel_on_deadline:
            # A poll that keeps failing under generate: nobody will collect the job either (§2.8).
            cancelled = yield from cancel_ids(provider, left, context, headers)
            keep_handle(error, handle, cancelled)
        else:
            running = left  # result()/resume(): the job may still be collected later with its handle
            keep_handle(error, handle, running=bool(running))
        add_note(error, _job_note(ids, failed=error.request_id, outcomes=cancelled, running=running))
        yield Event("failed", PROVIDER, error.request_id, message=str(error))
        raise
    except GeneratorExit:
        if context.cancel_on_deadline:
            cancel_in_background(provider, unfinished(), headers)
        raise
    except Exception:  # on_event raised: the call ends here, and under generate nobody will collect
        if context.cancel_on_deadline:
            yield from cancel_ids(provider, unfinished(), context, headers)
        raise
    return collected


def _collect_finished(provider: EachlabsProvider, outcomes: Sequence[CancelOutcome], context: FlowContext,
                      headers: Mapping[str, str]) -> Flow[dict[str, PredictionSnapshot]]:
    """The snapshots of predictions whose cancel said they had already finished, when they succeeded."""
    found: dict[str, PredictionSnapshot] = {}
    for outcome in outcomes:
        if outcome.state != "already_finished":
            continue
        with contextlib.suppress(ProviderError, DeadlineReached):
            snapshot = yield from _poll(provider, outcome.request_id, context, headers)
            if snapshot.finished:
                found[outcome.request_id] = snapshot
    return found


def _job_note(ids: Sequence[str], *, failed: str | None, outcomes: Sequence[CancelOutcome],
              running: Sequence[str]) -> str:
    """What became of a job's predictions, for the message of the error that ends the call: ProviderError has
    no handle, so every id is named once (``failed`` is already the error's ``request_id``)."""
    parts = [cancel_summary(outcomes)] if outcomes else []
    if running:
        parts.append(f"still running, resume with request id {','.join(ids)}")
    else:
        named = {outcome.request_id for outcome in outcomes}
        others = [each for each in ids if each != failed and each not in named]
        if others:
            parts.append(f"also in this job: {', '.join(others)}")
    return "; ".join(filter(None, parts))
