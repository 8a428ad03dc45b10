"""The end of a fal request: fetch a completed request's result (fal.md §1.6), and assemble one
:class:`~photomaker_bridge.PhotoMakerResult` from a call's requests, or say what the deadline interrupted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from .._http import DeadlineReached, Flow
from .._retry import is_transient
from ..errors import GenerationFailedError, ProviderError
from ..jobs import CancelOutcome, JobHandle
from ..pricing import estimate_cost
from ..result import BridgeWarning, PhotoMakerResult, Timings
from ._fal_operations import FalFetch, JobTracker
from ._fal_parse import PROVIDER, FalStatus, parse_output, total_inference_time, unreadable_archive
from ._fal_progress import RequestProgress, now
from ._steps import add_note, cancel_summary, forget_upload, step
from .base import FlowContext

__all__ = ["assemble", "deadline_message", "fetch", "fetch_finished"]


def fetch_finished(running: Sequence[RequestProgress], outcomes: Sequence[CancelOutcome],
                   pending: list[RequestProgress], application: str, jobs: JobTracker | None, context: FlowContext,
                   handle: JobHandle) -> Flow[None]:
    """Fetch the requests whose cancel fal refused because they had completed: they are billed, so their
    images are delivered after all (those fetched are no longer pending)."""
    for item, outcome in zip(running, outcomes, strict=True):
        if outcome.state != "already_finished":
            continue
        with contextlib.suppress(ProviderError, DeadlineReached):
            yield from fetch(item, application, jobs, context, handle)
            if item.output is not None:
                item.final = item.final or FalStatus("COMPLETED")
                pending.remove(item)


def fetch(item: RequestProgress, application: str, jobs: JobTracker | None, context: FlowContext,
          handle: JobHandle) -> Flow[None]:
    """Fetch a completed request's result into ``item`` (its output, or its own error)."""
    try:
        body: Any = yield from step(FalFetch(application, item.request_id, jobs=jobs), context, provider=PROVIDER,
                                what="result fetch", request_id=item.request_id)
        item.output = parse_output(body, request_id=item.request_id)
    except ProviderError as error:
        if is_transient(error):
            # The fetch itself kept failing (after the retries): the request completed and is billed.
            add_note(error, f"fal request {item.request_id} completed, but its result could not be fetched: "
                             f"collect it soon with resume({item.request_id!r})")
            raise
        # The request's own answer was an error (422 ...): it failed, the others may not.
        item.error = error
        if unreadable_archive(error):
            for key, url in dict(handle.details.get("uploads") or {}).items():
                yield from forget_upload(str(key), str(url))


def deadline_message(pending: Sequence[RequestProgress], outcomes: Sequence[CancelOutcome],
                     context: FlowContext) -> str:
    """What the deadline interrupted: requests still running (cancelled by ``generate``, kept by
    ``result``), and requests that completed but whose result was not fetched in time. Those are not
    cancelled (fal answers ``ALREADY_COMPLETED``, fal.md §1.7) and are already billed; fal keeps their
    result for 6 minutes to an hour (fal.md §1.6), so the handle can still collect it."""
    running = [item.request_id for item in pending if item.final is None]
    finished = [item.request_id for item in pending if item.final is not None]
    parts: list[str] = []
    if running and outcomes:
        parts.append(f"fal request(s) {', '.join(running)} did not finish before the deadline "
                     f"({cancel_summary(outcomes)})")
    elif running:
        outcome = "cancelled" if context.cancel_on_deadline else "still running; collect it later with resume()"
        parts.append(f"fal request(s) {', '.join(running)} did not finish before the deadline ({outcome})")
    if finished:
        parts.append(f"fal request(s) {', '.join(finished)} finished, but the deadline passed while fetching "
                     "the result (not cancelled; collect it soon with result() or resume())")
    return "; ".join(parts) or "the deadline passed while collecting the fal result"


def assemble(handle: JobHandle, progress: Sequence[RequestProgress], application: str,
             context: FlowContext) -> PhotoMakerResult:
    """One result from the requests of ``handle``: the images of those that succeeded (a warning names the
    images missing), or the first request's error when every request failed."""
    succeeded = [item for item in progress if item.output is not None]
    failed = [item for item in progress if item.error is not None]
    if not succeeded:
        # Every request failed: raise the first one's error (the others are on the result of none).
        assert failed[0].error is not None
        raise failed[0].error
    images = [image for item in succeeded if item.output is not None for image in item.output.images]
    if not images:
        raise GenerationFailedError("fal completed the request but returned no images", provider=PROVIDER,
                                    request_id=succeeded[0].request_id, retryable=True,
                                    raw=[item.output.raw for item in succeeded if item.output is not None])
    warnings = list(handle.warnings)
    requested = handle.requested_images
    if requested is not None and len(images) < requested:
        details = [f"{item.request_id}: {len(item.output.images)} of {item.asked}" for item in succeeded
                   if item.output is not None and item.asked is not None and len(item.output.images) < item.asked]
        details += [f"{item.request_id} failed ({item.error})" for item in failed]
        warnings.append(BridgeWarning(field="num_images", asked=requested, sent=len(images), provider=PROVIDER,
                                      reason=f"fal returned {len(images)} of {requested} images: "
                                             + "; ".join(details)))
    queue_times = [item.queue_seconds for item in succeeded if item.queue_seconds is not None]
    finals = [item.final for item in succeeded]
    run_seconds = total_inference_time(finals)
    upload_seconds = handle.details.get("upload_seconds")
    first = succeeded[0].output
    assert first is not None
    return PhotoMakerResult(
        images=images,
        provider=PROVIDER,
        request_ids=tuple(handle.request_ids),
        seed=first.seed,
        # fal reports no cost: estimate it from the billed inference seconds (fal.md §4.3; failed
        # requests are not billed, D-PRICE), or None when fal did not report them.
        cost=estimate_cost(PROVIDER, application,
                           seconds=[None if item is None else item.inference_time for item in finals]),
        timings=Timings(
            total_seconds=round(context.clock() - context.started_at, 6),
            upload_seconds=float(upload_seconds) if isinstance(upload_seconds, int | float) else None,
            queue_seconds=round(max(queue_times), 6) if queue_times else None,
            run_seconds=run_seconds,
        ),
        warnings=warnings,
        raw=[item.output.raw for item in succeeded if item.output is not None],
        requested_images=requested,
        created_at=now(),
    )
