"""Eachlabs' protocol, written once as generators: upload, create, poll, cancel (docs/protocols/eachlabs.md §2).

::

    POST /v1/upload/presign        once per distinct local reference image, then PUT the bytes (§2.11)
    POST /v1/prediction/           {"model", "version", "input": {...}} -> predictionID (§2.1–2.3)
    GET  /v1/prediction/{id}       until success | error | cancelled (§2.4–2.7)
    POST /v1/prediction/{id}/cancel      when nobody will collect it: deadline of generate, failure, abandon (§2.8)

Every step goes through :func:`~photomaker_bridge.providers._steps.step` (retried as the client's policy allows;
a create only when Eachlabs provably refused it) and every create takes a slot of the account's limit of
predictions in flight (§2.3: 10 on small balances), released when the prediction ends. An accepted prediction is
never left running unreported: it ends as a result, an error naming it, or a cancel.
"""

from __future__ import annotations

import contextlib
import datetime
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from .._http import CLEANUP_GRACE_SECONDS, DeadlineReached, Event, Flow, HttpRequest, HttpResponse, Wait
from .._retry import may_have_created
from .._transports import RequestsTransport
from ..errors import GenerationTimeoutError, ProviderError, ProviderRejectedError
from ..jobs import CancelOutcome, JobHandle
from ..plan import Plan, UploadPlaceholder
from ..result import PhotoMakerResult
from ._eachlabs_parsing import (
    PROVIDER,
    PredictionSnapshot,
    http_error,
    parse_create,
    parse_prediction,
    parse_presign,
    upload_error,
)
from ._eachlabs_result import assemble_result
from ._polling import PollTimer, duration_sample
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

if TYPE_CHECKING:
    from .eachlabs import EachlabsProvider

__all__ = ["cancel", "generate", "result", "submit"]

UNANSWERED_CREATE: Final = ("a create got no readable answer, so Eachlabs may have accepted a prediction whose id "
                            "it never told us (it cannot be cancelled or collected from here)")
_DOWNLOAD_FAILURE: Final = "INPUT_DOWNLOAD_ERROR"
"""Eachlabs could not fetch an input file (§2.6): a cached upload it can no longer read is uploaded again."""
_ALREADY_FINISHED_STATUSES: Final = frozenset({400, 409, 422})
"""A cancel refused with one of these: the prediction had already ended (§2.8: "accepted only while
non-terminal"; the refusal's exact status is not documented)."""


def _url(provider: EachlabsProvider, path: str) -> str:
    return provider.base_url + path


# -- upload -----------------------------------------------------------------------------------------------------


def _check_put(response: HttpResponse) -> None:
    if not 200 <= response.status < 300:
        raise upload_error(response)


def _upload(provider: EachlabsProvider, upload: UploadPlaceholder, context: FlowContext,
            headers: Mapping[str, str]) -> Flow[tuple[str, bool]]:
    """The public URL of one local image: presign, then PUT the bytes (§2.11) — once per content per client."""

    def send() -> Flow[str]:
        presign = HttpRequest.json("POST", _url(provider, "/v1/upload/presign"), PROVIDER,
                                   {"content_type": upload.content_type, "file_type": "image"},
                                   headers=headers, timeout=provider.polling.request_timeout)
        presigned = yield from step(presign, context, provider=PROVIDER, what="upload presign", parse=parse_presign)
        # The PUT goes to storage (S3), signed by its URL: the Content-Type named at presign and the
        # required_headers, never the API key (§2.11).
        put_headers = {"Content-Type": upload.content_type, **presigned.required_headers}
        put = HttpRequest("PUT", presigned.presigned_url, PROVIDER, put_headers, upload.data,
                          timeout=provider.polling.request_timeout)
        yield from step(put, context, provider=PROVIDER, what="upload", parse=_check_put)
        return presigned.public_url

    uploaded: tuple[str, bool] = yield from upload_once(f"{PROVIDER}:{upload.sha256}", PROVIDER,
                                                        upload.description, send)
    return uploaded


# -- submit -----------------------------------------------------------------------------------------------------


def submit(provider: EachlabsProvider, plan: Plan, context: FlowContext, *, keep_slots: bool = True,
           ) -> Flow[JobHandle]:
    """Upload the plan's local images (once per client, by content hash), then create its predictions back to
    back, each in a slot of the account's limit. Returns the handle of all of them.

    ``keep_slots``: the predictions keep their slots after this run (a handle handed to the caller) until a
    result flow sees them end or the slots expire; ``False`` (``generate``) frees them when the run ends.

    An accepted prediction is never left running unreported: a create in flight at the deadline may finish
    within the clean-up grace, created predictions are cancelled when the call cannot hand them over (deadline of
    ``generate``, a later create failing, the call abandoned), and every error names them.
    """
    headers = provider.headers()
    account, limits = provider.account(), provider.limits()
    if keep_slots:
        check_fits(plan, limits, PROVIDER)
    began = context.clock()
    created: list[tuple[str, datetime.datetime]] = []
    uploads: dict[str, str] = {}
    reused: list[str] = []
    upload_seconds: float | None = None
    creating = False
    try:
        urls: dict[str, str] = {}
        for upload in plan.uploads:
            url, fresh = yield from _upload(provider, upload, context, headers)
            urls[upload.placeholder] = url
            uploads[f"{PROVIDER}:{upload.sha256}"] = url
            if not fresh:
                reused.append(f"{PROVIDER}:{upload.sha256}")
        if plan.uploads:
            upload_seconds = context.clock() - began
        leases = yield from acquire_slots(context, PROVIDER, account, limits, len(plan.payloads))
        for index, payload in enumerate(plan.payloads):
            body = fill_placeholders(payload, urls)
            lease = leases[index] if leases else None
            creating = True
            create = HttpRequest.json("POST", _url(provider, "/v1/prediction/"), PROVIDER, body, headers=headers,
                                      timeout=provider.polling.request_timeout, creates_job=True)
            try:
                prediction_id = yield from step(create, context, provider=PROVIDER, what="create", parse=parse_create)
            except (ProviderError, DeadlineReached) as error:
                if lease is not None and (not isinstance(error, ProviderError) or may_have_created(error)):
                    # A prediction may exist that we cannot name: its slot stays taken until it expires.
                    yield from bind_slot(lease, f"unanswered-create-{lease.number}", keep=True)
                raise
            creating = False
            created.append((prediction_id, datetime.datetime.now(datetime.UTC)))
            yield from bind_slot(lease, prediction_id, keep=keep_slots)
            yield Event("submitted", PROVIDER, prediction_id)
    except DeadlineReached as reached:
        ids = [prediction_id for prediction_id, _ in created]
        handle = _handle(provider, plan, created, upload_seconds, uploads, reused) if created else None
        outcome = ""
        if ids and context.cancel_on_deadline:
            outcomes = yield from cancel_ids(provider, ids, context, headers)
            outcome = f" ({cancel_summary(outcomes)})"
        elif ids:
            outcome = f" (still running; collect them with the handle: {', '.join(ids)})"
        what = "while creating the predictions" if created or not plan.uploads else "while uploading"
        if creating and reached.__cause__ is not None:
            what += "; " + UNANSWERED_CREATE
        raise GenerationTimeoutError(f"the deadline passed {what}{outcome}", provider=PROVIDER, handle=handle,
                                     request_id=ids[0] if ids else None) from None
    except GeneratorExit:
        cancel_in_background(provider, [prediction_id for prediction_id, _ in created], headers)
        raise
    except Exception as error:  # a refused create, or on_event raising: no handle will be returned
        ids = [prediction_id for prediction_id, _ in created]
        outcomes = (yield from cancel_ids(provider, ids, context, headers)) if ids else ()
        notes = [cancel_summary(outcomes)]
        if creating and isinstance(error, ProviderError) and may_have_created(error):
            notes.append(UNANSWERED_CREATE)
            error.may_have_accepted = True
        add_note(error, "; ".join(filter(None, notes)))
        raise
    return _handle(provider, plan, created, upload_seconds, uploads, reused)


def _handle(provider: EachlabsProvider, plan: Plan, created: list[tuple[str, datetime.datetime]],
            upload_seconds: float | None, uploads: Mapping[str, str], reused: Sequence[str]) -> JobHandle:
    submitted_at = created[0][1]
    counts = list(plan.images_per_payload[: len(created)])
    details: dict[str, Any] = {
        "model": provider.model,
        # Seconds between the first create and each create: polling times each prediction from its own.
        "created_after": [(when - submitted_at).total_seconds() for _, when in created],
        "uploads": dict(uploads),
        "reused_uploads": list(reused),
    }
    if upload_seconds is not None:
        details["upload_seconds"] = upload_seconds
    return JobHandle(provider=PROVIDER, request_ids=tuple(prediction_id for prediction_id, _ in created),
                     submitted_at=submitted_at, requested_images=sum(counts) or None,
                     images_per_request=tuple(counts), warnings=tuple(plan.warnings), details=details)


# -- cancel -----------------------------------------------------------------------------------------------------


def _cancel_outcome(prediction_id: str) -> Any:
    def parse(response: HttpResponse) -> CancelOutcome:
        if 200 <= response.status < 300:
            return CancelOutcome(PROVIDER, prediction_id, "cancelled", "Eachlabs cancelled the prediction")
        if response.status in _ALREADY_FINISHED_STATUSES:
            return CancelOutcome(PROVIDER, prediction_id, "already_finished", response.text()[:200])
        if response.status == 404:
            return CancelOutcome(PROVIDER, prediction_id, "not_found", response.text()[:200])
        raise http_error(response, request_id=prediction_id)

    return parse


def cancel_ids(provider: EachlabsProvider, prediction_ids: Sequence[str], context: FlowContext,
               headers: Mapping[str, str]) -> Flow[tuple[CancelOutcome, ...]]:
    """Cancel each prediction (§2.8) and free its slot; a failed cancel is an outcome, never an exception.

    Closed midway (the caller's task cancelled during the clean-up), it leaves the rest to a background thread.
    """
    outcomes: list[CancelOutcome] = []
    account, limits = provider.account(), provider.limits()
    for index, prediction_id in enumerate(prediction_ids):
        request = HttpRequest("POST", _url(provider, f"/v1/prediction/{prediction_id}/cancel"), PROVIDER,
                              dict(headers), timeout=provider.polling.request_timeout)
        try:
            outcome: CancelOutcome = yield from step(request, context, provider=PROVIDER, what="cancel",
                                                     parse=_cancel_outcome(prediction_id), request_id=prediction_id)
        except (ProviderError, DeadlineReached) as error:
            outcome = CancelOutcome(PROVIDER, prediction_id, "failed", str(error) or type(error).__name__)
        except GeneratorExit:
            cancel_in_background(provider, prediction_ids[index:], headers)
            raise
        outcomes.append(outcome)
        if outcome.state != "failed":
            yield from release_slot(account, limits, request_id=prediction_id)
    return tuple(outcomes)


def cancel(provider: EachlabsProvider, handle: JobHandle, context: FlowContext) -> Flow[tuple[CancelOutcome, ...]]:
    """Cancel every prediction of ``handle`` (``Bridge.cancel``)."""
    outcomes: tuple[CancelOutcome, ...] = yield from cancel_ids(provider, list(handle.request_ids), context,
                                                                provider.headers())
    return outcomes


def cancel_in_background(provider: EachlabsProvider, prediction_ids: Sequence[str],
                         headers: Mapping[str, str]) -> None:
    """Cancel ``prediction_ids`` (§2.8) from a background thread, for a flow being closed: it can no longer
    yield, and Eachlabs has no performer to hand the cancels to (fal's ``JobTracker`` does).

    A thread, for the async client too: an ``asyncio.run`` ending right after the cancelled task would cancel a
    task left on the loop before it sent anything, while the (non-daemon) thread is waited for at interpreter
    exit. Only the key header is sent, within CLEANUP_GRACE_SECONDS in all; nothing is raised.
    """
    if not prediction_ids:
        return
    key = {name: value for name, value in headers.items() if name.lower() != "content-type"}
    requests = [HttpRequest("POST", _url(provider, f"/v1/prediction/{prediction_id}/cancel"), PROVIDER, key)
                for prediction_id in prediction_ids]
    with contextlib.suppress(RuntimeError):  # no new thread at interpreter shutdown: nothing more to do
        threading.Thread(target=_send_quietly, args=(requests,), name="eachlabs-cancel").start()


def _send_quietly(requests: Sequence[HttpRequest]) -> None:
    """Send ``requests`` one after another within CLEANUP_GRACE_SECONDS in all; never raises (a background
    thread's clean-up has nobody to report to)."""
    ends = time.monotonic() + CLEANUP_GRACE_SECONDS
    transport = RequestsTransport()
    try:
        for request in requests:
            left = ends - time.monotonic()
            if left <= 0:
                break
            with contextlib.suppress(Exception):
                transport.send(request.with_timeout(left))
    finally:
        transport.close()


# -- result -----------------------------------------------------------------------------------------------------


def _poll(provider: EachlabsProvider, prediction_id: str, context: FlowContext,
          headers: Mapping[str, str]) -> Flow[PredictionSnapshot]:
    request = HttpRequest("GET", _url(provider, f"/v1/prediction/{prediction_id}"), PROVIDER, headers,
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
                    if error.code == _DOWNLOAD_FAILURE:
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
        else:
            running = left  # result()/resume(): the job may still be collected later with its handle
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


def generate(provider: EachlabsProvider, plan: Plan, context: FlowContext) -> Flow[PhotoMakerResult]:
    """Submit, then collect — in waves when the request needs more predictions than the account may run at once
    (``in_waves``)."""
    collected: PhotoMakerResult = yield from in_waves(plan, provider.limits(), PROVIDER,
                                                      lambda part: _generate(provider, part, context))
    return collected


def _generate(provider: EachlabsProvider, plan: Plan, context: FlowContext) -> Flow[PhotoMakerResult]:
    """Submit, then collect. When Eachlabs cannot download a reference image this client uploaded earlier (the
    file expired or was deleted), the image is uploaded again and the job created again, once."""
    handle = yield from submit(provider, plan, context, keep_slots=False)
    try:
        collected: PhotoMakerResult = yield from result(provider, handle, context)
    except ProviderRejectedError as error:
        if error.code != _DOWNLOAD_FAILURE or not handle.details.get("reused_uploads"):
            raise
        yield Event("retrying", PROVIDER, handle.request_id,
                    message="Eachlabs could not download a reference image uploaded earlier; uploading it again")
        handle = yield from submit(provider, plan, context, keep_slots=False)
        collected = yield from result(provider, handle, context)
    return collected


# -- messages ---------------------------------------------------------------------------------------------------


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


def add_note(error: BaseException, note: str) -> None:
    """Append ``note`` to a ProviderError's message, in place (other exceptions are the caller's own)."""
    if isinstance(error, ProviderError) and note:
        error.message = f"{error.message} ({note})"
        error.args = (error.message,)
