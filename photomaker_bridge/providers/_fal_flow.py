"""fal's protocol, written once as generators: upload the zip, submit, poll, fetch, cancel (fal.md §1, §3).

The flows yield the operations below (plus :class:`~photomaker_bridge._http.Wait` and ``Event``); the
performers in ``providers/fal.py`` run them with one ``fal_client.SyncClient`` or ``AsyncClient`` and hand
back plain values (:class:`FalSubmission`, :class:`FalStatus`, the result JSON) or throw our typed errors in.
Nothing here imports ``fal_client``.

Polling is the bridge's own (``_polling``): each request is polled on a schedule that tightens around the
time fal requests are expected to take, learned from completed ones; ``fal_client``'s ``get()``/``subscribe()``
loops (10 polls a second, fal.md §1.8) are never used.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import attrs

from .._coordination import Lease, Limits
from .._http import DeadlineReached, Event, Flow, Wait
from .._retry import is_transient, may_have_created
from ..errors import GenerationFailedError, GenerationTimeoutError, ProviderError, ProviderRejectedError
from ..jobs import CancelOutcome, JobHandle
from ..plan import Plan, UploadPlaceholder
from ..pricing import estimate_cost
from ..result import BridgeWarning, PhotoMakerResult, Timings
from ._fal_parse import (
    PROVIDER,
    FalOutput,
    FalStatus,
    FalSubmission,
    error_for_completed,
    parse_output,
    total_inference_time,
)
from ._polling import DurationEstimate, PollPolicy, PollTimer, duration_sample
from ._steps import (
    acquire_slots,
    bind_slot,
    cancel_summary,
    check_fits,
    forget_upload,
    in_waves,
    release_slot,
    renew_slot,
    step,
    upload_once,
)
from .base import FlowContext, fill_placeholders

__all__ = [
    "FalCancel",
    "FalFetch",
    "FalFlows",
    "FalStatusCheck",
    "FalSubmit",
    "FalUpload",
    "JobTracker",
]

AbandonHook = Callable[[Sequence[tuple[str, str]]], None]
"""Sends a cancel for each ``(application, request_id)`` in the background (set by a performer)."""


@attrs.define(eq=False)
class JobTracker:
    """The requests one ``generate`` call submitted and has not yet seen finish.

    If the call is abandoned before it ends (the caller's task is cancelled, the flow is closed), nobody will
    collect those requests, so they are cancelled in the background through the performer's hook: a flow
    cannot yield once it is being closed. The performer binds the hook at the first submit.
    """

    outstanding: dict[str, str] = attrs.field(factory=dict)
    """request_id -> application, in submit order."""
    hook: AbandonHook | None = None
    closed: bool = False
    """Set once the flow ended (normally, or after cleaning up itself): nothing is left to abandon."""
    on_close: Callable[[], None] | None = None
    """Set by the async performer watching the caller's task: stops watching once the flow is over."""

    def add(self, application: str, request_id: str) -> None:
        """Record a submitted request."""
        self.outstanding[request_id] = application

    def finish(self, request_id: str) -> None:
        """The request completed (or was cancelled by the flow): it needs no cancel."""
        self.outstanding.pop(request_id, None)

    def abandon(self) -> None:
        """Cancel every outstanding request in the background, once."""
        if self.closed:
            return
        pending = list(self.outstanding.items())
        self.close()
        if pending and self.hook is not None:
            self.hook([(application, request_id) for request_id, application in pending])

    def close(self) -> None:
        """The flow is over and left nothing behind."""
        self.closed = True
        self.outstanding.clear()
        on_close, self.on_close = self.on_close, None
        if on_close is not None:
            on_close()


@attrs.frozen
class _Operation:
    jobs: JobTracker | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)
    """The tracker of the ``generate`` call this operation belongs to, when it cancels on abandonment."""


@attrs.frozen
class FalUpload(_Operation):
    """Upload bytes to fal storage (``fal_client`` ``upload``); the performer returns the file's URL."""

    data: bytes = attrs.field(repr=False)
    content_type: str
    file_name: str


@attrs.frozen
class FalSubmit(_Operation):
    """Submit one payload to the queue (``fal_client`` ``submit``); returns a :class:`FalSubmission`."""

    creates_job: ClassVar[bool] = True
    """Tells the drivers that this step creates a billed job: it is not cut at the deadline but may run into
    the clean-up grace, so that a submit fal has (or is about to have) accepted comes back with its id and
    the flow can cancel it or hand out its handle, instead of leaving a job running that nobody knows of."""

    application: str
    arguments: Mapping[str, Any] = attrs.field(repr=False)
    options: Mapping[str, Any] = attrs.field(factory=dict)
    """fal_client ``submit`` keywords: ``webhook_url``, ``priority``, ``hint``, ``start_timeout`` (the plan's
    ``submit_options``)."""


@attrs.frozen
class FalStatusCheck(_Operation):
    """One status call (``fal_client`` ``status``); returns a :class:`FalStatus`."""

    application: str
    request_id: str
    with_logs: bool


@attrs.frozen
class FalFetch(_Operation):
    """Fetch a completed request's result (its response URL, through ``fal_client``'s HTTP client); returns the
    JSON body."""

    application: str
    request_id: str


@attrs.frozen
class FalCancel(_Operation):
    """Cancel a request (``PUT`` its cancel URL through ``fal_client``'s HTTP client); returns the answer's
    ``status`` (``CANCELLATION_REQUESTED`` ...) or ``None``."""

    application: str
    request_id: str


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _offset(timestamp: str | None, handle: JobHandle, origin: float) -> float | None:
    """Seconds from ``origin`` (seconds after the handle's submit time) to a log line's ISO 8601 ``timestamp``
    (fal.md §1.4; UTC when it names no zone), or ``None`` when it cannot be read or the submit time is not
    known."""
    if not timestamp or not handle.details.get("submitted_at_known", False):
        return None
    try:
        at = datetime.datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=datetime.UTC)
    return (at - handle.submitted_at).total_seconds() - origin


@attrs.define
class _Progress:
    """What the result flow learned about one request while polling it."""

    request_id: str
    asked: int | None
    queued: bool = False
    queue_position: int | None = None
    running: bool = False
    log_keys: set[tuple[str | None, str]] = attrs.field(factory=set)
    queue_seconds: float | None = None
    first_log: float | None = None
    """Seconds from ``origin`` to the earliest log line's timestamp seen (the run had started by then)."""
    last_log: float | None = None
    """Seconds from ``origin`` to the latest log line's timestamp seen (the request was not done before)."""
    last_queued: float = 0.0
    """Seconds from ``origin`` to the last poll that found the request IN_QUEUE (its run started later)."""
    origin: float = 0.0
    """When fal accepted this request, in seconds after the handle's submit time: its times count from there."""
    timer: PollTimer | None = None
    state: str | None = None
    """The status last seen (IN_QUEUE, IN_PROGRESS, COMPLETED)."""
    final: FalStatus | None = None
    output: FalOutput | None = None
    error: ProviderError | None = None


@attrs.frozen
class FalFlows:
    """The fal flows for one adapter's settings."""

    application: str
    """The queue application, e.g. ``fal-ai/photomaker``."""
    polling: PollPolicy
    """The shape of the polling schedule."""
    estimate: DurationEstimate
    """Submit-to-completion seconds, learned from completed requests (shared by the adapter's calls)."""
    with_logs: bool
    """Whether status calls ask for logs (turned into ``log`` events)."""
    account: str = "fal"
    """How shared state names the adapter's account (the provider and a hash of its key)."""
    limits: Limits = attrs.field(factory=Limits)
    """The account's client-side limits (none by default)."""

    # -- submit ---------------------------------------------------------------------------------------------

    def submit(self, plan: Plan, context: FlowContext, jobs: JobTracker | None, *,
               keep_slots: bool = True) -> Flow[JobHandle]:
        """Upload the plan's zip (once per distinct content per client, even across concurrent calls), then
        submit every payload back to back, each in a slot of the account's limits. Returns the handle of all
        submissions. ``keep_slots``: the requests keep their slots past this run (a handle handed over)."""
        if keep_slots:
            check_fits(plan, self.limits, PROVIDER)
        urls: dict[str, str] = {}
        uploads: dict[str, str] = {}
        reused: list[str] = []
        upload_seconds: float | None = None
        for upload in plan.uploads:
            key = f"{PROVIDER}:{upload.sha256}"
            started = context.clock()

            def send(upload: UploadPlaceholder = upload) -> Flow[str]:
                url: Any = yield from step(FalUpload(upload.data, upload.content_type, upload.file_name, jobs=jobs),
                                      context, provider=PROVIDER, what="upload")
                if not isinstance(url, str) or not url:
                    raise GenerationFailedError(f"fal storage returned no URL for {upload.description}",
                                                provider=PROVIDER, raw=url)
                return url

            try:
                url, fresh = yield from upload_once(key, PROVIDER, upload.description, send)
            except DeadlineReached as reached:
                raise GenerationTimeoutError(f"the deadline passed while uploading the {upload.description} to fal "
                                             "(nothing was submitted)", provider=PROVIDER) from reached
            if fresh:
                upload_seconds = (upload_seconds or 0.0) + (context.clock() - started)
            else:
                reused.append(key)
            urls[upload.placeholder] = uploads[key] = url
        submitted_at = _now()
        request_ids: list[str] = []
        accepted_after: list[float] = []

        def handle() -> JobHandle:
            details: dict[str, Any] = {"application": self.application, "submitted_at_known": True,
                                       "uploads": dict(uploads), "reused_uploads": list(reused)}
            if upload_seconds is not None:
                details["upload_seconds"] = round(upload_seconds, 6)
            if accepted_after:
                details["accepted_after"] = list(accepted_after)
            return JobHandle(provider=PROVIDER, request_ids=tuple(request_ids), submitted_at=submitted_at,
                             requested_images=sum(plan.images_per_payload),
                             images_per_request=tuple(plan.images_per_payload[: len(request_ids)]),
                             warnings=tuple(plan.warnings), details=details)

        leases: tuple[Lease, ...] = ()
        for index, payload in enumerate(plan.payloads):
            lease = None
            try:
                if index == 0:
                    leases = yield from acquire_slots(context, PROVIDER, self.account, self.limits,
                                                      len(plan.payloads))
                lease = leases[index] if leases else None
                body = fill_placeholders(payload, urls)
                submission: FalSubmission = yield from step(FalSubmit(self.application, body, plan.submit_options,
                                                                      jobs=jobs), context,
                                                            provider=PROVIDER, what="submit")
            except DeadlineReached as reached:
                if lease is not None and reached.__cause__ is not None:
                    yield from bind_slot(lease, f"unanswered-submit-{lease.number}", keep=True)
                outcome = ""
                if request_ids and context.cancel_on_deadline:
                    outcome = f" ({cancel_summary((yield from self._cancel(request_ids, jobs, context)))})"
                elif request_ids:
                    outcome = (f"; {len(request_ids)} of {len(plan.payloads)} submissions were accepted (still "
                               "running; collect them with the handle)")
                raise GenerationTimeoutError(f"the deadline passed while submitting to fal{outcome}",
                                             provider=PROVIDER, request_id=request_ids[0] if request_ids else None,
                                             handle=handle() if request_ids else None) from reached
            except ProviderError as error:
                notes: list[str] = []
                if may_have_created(error):
                    # The submit may have been accepted although we never learnt its request id.
                    notes.append(UNANSWERED_SUBMIT)
                    error.may_have_accepted = True
                    if lease is not None:
                        yield from bind_slot(lease, f"unanswered-submit-{lease.number}", keep=True)
                # The earlier submissions would run (and be billed) for a call that failed: cancel them.
                outcomes = yield from self._cancel(request_ids, jobs, context)
                notes.append(cancel_summary(outcomes))
                _add_note(error, "; ".join(filter(None, notes)))
                raise
            if jobs is not None:
                jobs.add(self.application, submission.request_id)
            request_ids.append(submission.request_id)
            # Each request's times count from when fal accepted it: on a busy client (many calls at once) a
            # later submit may leave well after submitted_at, and its request's schedule must not start early.
            accepted_after.append(round(max(0.0, (_now() - submitted_at).total_seconds()), 6))
            yield from bind_slot(lease, submission.request_id, keep=keep_slots)
            yield Event("submitted", PROVIDER, request_id=submission.request_id,
                        queue_position=submission.queue_position)
            # The submit's own answer is IN_QUEUE (fal.md §1.3): said at once, since the first status call now
            # waits for its due time and may find the request already running.
            yield Event("queued", PROVIDER, request_id=submission.request_id, queue_position=submission.queue_position)
        return handle()

    def _cancel(self, request_ids: Sequence[str], jobs: JobTracker | None, context: FlowContext,
                application: str | None = None, last_seen: Mapping[str, str | None] | None = None,
                ) -> Flow[tuple[CancelOutcome, ...]]:
        """Cancel each request (fal.md §1.7) and free its slot; a failed cancel is an outcome, never an error.

        fal answers any accepted cancel alike, removing a queued request and signalling a running one, so the
        outcome follows the state last seen (``last_seen``: request id -> fal status).
        """
        outcomes: list[CancelOutcome] = []
        for request_id in request_ids:
            try:
                said: Any = yield from step(FalCancel(application or self.application, request_id, jobs=jobs), context,
                                       provider=PROVIDER, what="cancel", request_id=request_id)
                outcome = _accepted_cancel(request_id, said, (last_seen or {}).get(request_id))
            except ProviderError as error:
                outcome = _refused_cancel(request_id, error)
            except DeadlineReached as reached:
                outcome = CancelOutcome(PROVIDER, request_id, "failed", f"no answer in time ({reached.__cause__})")
            outcomes.append(outcome)
            if jobs is not None:
                jobs.finish(request_id)
            if outcome.state != "failed":
                yield from release_slot(self.account, self.limits, request_id=request_id)
        return tuple(outcomes)

    # -- result ---------------------------------------------------------------------------------------------

    def result(self, handle: JobHandle, context: FlowContext, jobs: JobTracker | None) -> Flow[PhotoMakerResult]:
        """Poll every request of ``handle`` until it completes, fetch each result, and assemble one result.

        At the deadline under ``generate`` the unfinished requests are cancelled; one whose cancel fal refuses
        because it had completed is fetched after all (within the clean-up grace), and when every request is then
        in, the result is returned. Otherwise :class:`GenerationTimeoutError` says what became of each request.
        """
        application = str(handle.details.get("application", self.application))
        asked = list(handle.images_per_request)
        progress = [_Progress(request_id, asked[index] if index < len(asked) else None)
                    for index, request_id in enumerate(handle.request_ids)]
        pending = list(progress)
        # Times are seconds since the submit; a handle rebuilt from a bare id (resume) has no submit time, so
        # it is polled at once and its duration is not learned from.
        known = bool(handle.details.get("submitted_at_known", False))
        accepted_after = handle.details.get("accepted_after")
        for index, item in enumerate(progress):
            if known and isinstance(accepted_after, list) and index < len(accepted_after):
                item.origin = max(0.0, float(accepted_after[index]))
            item.timer = (PollTimer(self.polling, self.estimate.seconds, cold=not self.estimate.known) if known
                          else PollTimer(self.polling, self.polling.min_interval))
        try:
            elapsed = 0.0
            while pending:
                if known:
                    # No status call before a request is due (fal.md §1.4): sleep until the soonest one is.
                    now = self._elapsed(handle)
                    soonest = min(item.origin + item.timer.next_at for item in pending if item.timer is not None)
                    if soonest > now:
                        yield Wait(soonest - now)
                        continue
                    due = [item for item in pending
                           if item.timer is not None and item.origin + item.timer.next_at <= now]
                else:
                    due = list(pending)  # a bare id (resume): poll every request, min_interval apart
                for item in due:
                    sent = self._elapsed(handle) - item.origin if known else elapsed
                    status: FalStatus = yield from step(
                        FalStatusCheck(application, item.request_id, self.with_logs, jobs=jobs), context,
                        provider=PROVIDER, what="status poll", request_id=item.request_id)
                    item.state = status.state
                    yield from self._observe(item, status, handle)
                    elapsed = (self._elapsed(handle) - item.origin if known
                               else elapsed + self.polling.min_interval)
                    assert item.timer is not None
                    if status.state == "IN_QUEUE":
                        item.last_queued = elapsed
                    if status.state != "COMPLETED":
                        yield from renew_slot(self.account, self.limits, item.request_id)
                        item.timer.pending(elapsed, started=status.state == "IN_PROGRESS", sent=sent)
                        continue
                    yield from release_slot(self.account, self.limits, request_id=item.request_id)
                    if known and not status.failed:
                        self.estimate.update(self._duration(item, status, elapsed))
                    # A completed request needs no cancel (fal.md §1.7), but it stays pending until its result
                    # is fetched: a deadline during the fetch must name it, and must not claim to cancel it.
                    if jobs is not None:
                        jobs.finish(item.request_id)
                    item.final = status
                    if status.failed:
                        item.error = error_for_completed(status, request_id=item.request_id)
                    else:
                        # Straight to the response URL: no second status call as fal_client.result() makes.
                        yield from self._fetch(item, application, jobs, context, handle)
                    pending.remove(item)
                    if item.error is not None:
                        yield Event("failed", PROVIDER, request_id=item.request_id, message=str(item.error))
                    else:
                        yield Event("completed", PROVIDER, request_id=item.request_id)
                if pending and not known:
                    yield Wait(self.polling.min_interval)
        except DeadlineReached as reached:
            running = [item for item in pending if item.final is None]
            outcomes: tuple[CancelOutcome, ...] = ()
            if running and context.cancel_on_deadline:
                outcomes = yield from self._cancel([item.request_id for item in running], jobs, context, application,
                                                   {item.request_id: item.state for item in running})
                yield from self._fetch_finished(running, outcomes, pending, application, jobs, context, handle)
            if not pending:
                return self._assemble(handle, progress, application, context)
            raise GenerationTimeoutError(self._deadline_message(pending, outcomes, context), provider=PROVIDER,
                                         request_id=pending[0].request_id, handle=handle) from reached
        except ProviderError as error:
            # A status call failed for good (after the retries): nothing will collect the other requests when the
            # caller asked for a generation. A completed one needs no cancel.
            running = [item for item in pending if item.final is None]
            if context.cancel_on_deadline and running:
                outcomes = yield from self._cancel([item.request_id for item in running], jobs, context,
                                                   application, {item.request_id: item.state for item in running})
                yield from self._fetch_finished(running, outcomes, pending, application, jobs, context, handle)
                if not pending:
                    return self._assemble(handle, progress, application, context)
                _add_note(error, cancel_summary(outcomes))
            elif running:
                _add_note(error, "still running: collect with the handle or resume("
                          + ",".join(item.request_id for item in running) + ")")
            raise
        return self._assemble(handle, progress, application, context)

    def _fetch_finished(self, running: Sequence[_Progress], outcomes: Sequence[CancelOutcome],
                        pending: list[_Progress], application: str, jobs: JobTracker | None, context: FlowContext,
                        handle: JobHandle) -> Flow[None]:
        """Fetch the requests whose cancel fal refused because they had completed: they are billed, so their
        images are delivered after all (those fetched are no longer pending)."""
        for item, outcome in zip(running, outcomes, strict=True):
            if outcome.state != "already_finished":
                continue
            with contextlib.suppress(ProviderError, DeadlineReached):
                yield from self._fetch(item, application, jobs, context, handle)
                if item.output is not None:
                    item.final = item.final or FalStatus("COMPLETED")
                    pending.remove(item)

    def _fetch(self, item: _Progress, application: str, jobs: JobTracker | None, context: FlowContext,
               handle: JobHandle) -> Flow[None]:
        """Fetch a completed request's result into ``item`` (its output, or its own error)."""
        try:
            body: Any = yield from step(FalFetch(application, item.request_id, jobs=jobs), context, provider=PROVIDER,
                                   what="result fetch", request_id=item.request_id)
            item.output = parse_output(body, request_id=item.request_id)
        except ProviderError as error:
            if is_transient(error):
                # The fetch itself kept failing (after the retries): the request completed and is billed.
                _add_note(error, f"fal request {item.request_id} completed, but its result could not be fetched: "
                                 f"collect it soon with resume({item.request_id!r})")
                raise
            # The request's own answer was an error (422 ...): it failed, the others may not.
            item.error = error
            if _unreadable_archive(error):
                for key, url in dict(handle.details.get("uploads") or {}).items():
                    yield from forget_upload(str(key), str(url))

    @staticmethod
    def _deadline_message(pending: Sequence[_Progress], outcomes: Sequence[CancelOutcome],
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

    @staticmethod
    def _elapsed(handle: JobHandle) -> float:
        return max(0.0, (_now() - handle.submitted_at).total_seconds())

    @staticmethod
    def _duration(item: _Progress, status: FalStatus, detected: float) -> float:
        """Submit-to-completion seconds of a request found COMPLETED at ``detected``, for the estimate.

        It ended after the last poll that found it running, after its run (``metrics.inference_time``) and after
        its last log line, and by ``detected``. Where fal says when the run started (the first log line's
        timestamp, else the last poll that found it queued, or the submit) the start plus the run is the answer,
        kept inside those bounds; without ``inference_time``, the middle of them. Never the moment it was noticed:
        that would learn each poll's lag and drift later."""
        assert item.timer is not None
        run = status.inference_time
        lower = max(item.timer.last_pending, run or 0.0, item.last_log or 0.0)
        start = item.first_log if item.first_log is not None else item.last_queued
        measured = None if run is None else start + run
        return duration_sample(min(lower, detected), detected, measured)

    def _observe(self, item: _Progress, status: FalStatus, handle: JobHandle) -> Flow[None]:
        """Events and queue timing from one status."""
        if status.state == "IN_QUEUE":
            if not item.queued or status.queue_position != item.queue_position:
                item.queued, item.queue_position = True, status.queue_position
                yield Event("queued", PROVIDER, request_id=item.request_id, queue_position=status.queue_position)
        elif not item.running:
            item.running = True
            # Queue time: from the submit to the first status that is no longer IN_QUEUE. When the first one
            # seen is COMPLETED, the run time (inference_time) is taken off the time since the submit.
            if handle.details.get("submitted_at_known", False):
                elapsed = max(0.0, (_now() - handle.submitted_at).total_seconds())
                if status.state == "IN_PROGRESS":
                    item.queue_seconds = elapsed
                elif status.inference_time is not None:
                    item.queue_seconds = max(0.0, elapsed - status.inference_time)
            if status.state == "IN_PROGRESS":
                yield Event("running", PROVIDER, request_id=item.request_id)
        for line in status.logs:
            at = _offset(line.timestamp, handle, item.origin)
            if at is not None:
                item.first_log = at if item.first_log is None else min(item.first_log, at)
                item.last_log = at if item.last_log is None else max(item.last_log, at)
            if line.key not in item.log_keys:
                item.log_keys.add(line.key)
                yield Event("log", PROVIDER, request_id=item.request_id, message=line.message)

    def _assemble(self, handle: JobHandle, progress: Sequence[_Progress], application: str,
                  context: FlowContext) -> PhotoMakerResult:
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
            created_at=_now(),
        )

    # -- generate -------------------------------------------------------------------------------------------

    def generate(self, plan: Plan, context: FlowContext) -> Flow[PhotoMakerResult]:
        """Submit then collect. When the call cancels on deadline (``generate``), a call abandoned midway
        (task cancelled, flow closed) cancels its requests in the background: nobody would collect them. When
        fal cannot read an archive this client uploaded earlier, the archive is uploaded and submitted again,
        once."""
        collected: PhotoMakerResult = yield from in_waves(plan, self.limits, PROVIDER,
                                                          lambda part: self._generate(part, context))
        return collected

    def _generate(self, plan: Plan, context: FlowContext) -> Flow[PhotoMakerResult]:
        jobs = JobTracker() if context.cancel_on_deadline else None
        try:
            handle = yield from self.submit(plan, context, jobs, keep_slots=False)
            try:
                result: PhotoMakerResult = yield from self.result(handle, context, jobs)
            except ProviderError as error:
                if not _unreadable_archive(error) or not handle.details.get("reused_uploads"):
                    raise
                yield Event("retrying", PROVIDER, handle.request_id,
                            message="fal could not read the photo archive uploaded earlier; uploading it again")
                handle = yield from self.submit(plan, context, jobs, keep_slots=False)
                result = yield from self.result(handle, context, jobs)
        except GeneratorExit:
            if jobs is not None:
                jobs.abandon()
            raise
        finally:
            if jobs is not None:
                jobs.close()
        return result

    def cancel(self, handle: JobHandle, context: FlowContext) -> Flow[tuple[CancelOutcome, ...]]:
        """Cancel every request of ``handle`` (``Bridge.cancel``)."""
        application = str(handle.details.get("application", self.application))
        outcomes: tuple[CancelOutcome, ...] = yield from self._cancel(list(handle.request_ids), None, context,
                                                                      application)
        return outcomes


UNANSWERED_SUBMIT = ("the submit got no readable answer, so fal may have accepted a request whose id it never "
                     "told us (it cannot be cancelled or collected from here)")


def _accepted_cancel(request_id: str, said: Any, last_seen: str | None) -> CancelOutcome:
    """The outcome of a cancel fal accepted (fal.md §1.7): it removes a queued request and signals a running one.
    Its answer says which when it is ``CANCELLATION_REQUESTED``; otherwise the state last seen decides."""
    if said == "CANCELLATION_REQUESTED" and last_seen != "IN_QUEUE":
        return CancelOutcome(PROVIDER, request_id, "cancel_requested", "fal passed the cancel to the runner")
    if last_seen == "IN_QUEUE" or said == "OK":
        return CancelOutcome(PROVIDER, request_id, "cancelled", "fal removed the request from the queue")
    return CancelOutcome(PROVIDER, request_id, "cancel_requested", "fal passed the cancel to the runner")


def _refused_cancel(request_id: str, error: ProviderError) -> CancelOutcome:
    """The outcome of a cancel fal refused (fal.md §1.7: 400 ALREADY_COMPLETED, 404 NOT_FOUND)."""
    said = error.raw.get("status") if isinstance(error.raw, Mapping) else None
    if said == "ALREADY_COMPLETED" or (error.status == 400 and said is None):
        return CancelOutcome(PROVIDER, request_id, "already_finished", "fal: the request had already completed")
    if said == "NOT_FOUND" or error.status == 404:
        return CancelOutcome(PROVIDER, request_id, "not_found", "fal does not know the request")
    return CancelOutcome(PROVIDER, request_id, "failed", str(error))


def _unreadable_archive(error: BaseException) -> bool:
    """Whether fal refused the request because it could not download or open the photo archive (fal.md §1.6:
    a 422 ``detail`` item on ``image_archive_url`` of type ``file_download_error``)."""
    if not isinstance(error, ProviderError) or error.status != 422:
        return False
    details = error.errors if isinstance(error, ProviderRejectedError) else []
    return any(isinstance(entry, Mapping) and entry.get("type") == "file_download_error"
               and "image_archive_url" in [str(part) for part in entry.get("loc") or ()] for entry in details)


def _add_note(error: BaseException, note: str) -> None:
    """Append ``note`` to a ProviderError's message, in place."""
    if isinstance(error, ProviderError) and note:
        error.message = f"{error.message} ({note})"
        error.args = (error.message,)
