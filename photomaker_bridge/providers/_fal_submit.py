"""fal's submit, written once as a generator: upload the plan's files to fal storage, then submit every payload
to the queue (fal.md §1.3, §3), each in a slot of the account's limits.

A submit that may have been accepted is never forgotten: a lost answer keeps its slot taken and says so in the
error, and the submissions made before a failure (or the deadline, under ``generate``) are cancelled.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any, Final

from .._coordination import Lease
from .._http import DeadlineReached, Event, Flow
from .._retry import may_have_created
from ..errors import GenerationFailedError, GenerationTimeoutError, ProviderError
from ..jobs import JobHandle
from ..plan import Plan, UploadPlaceholder
from ._fal_cancel import cancel_requests
from ._fal_operations import FalSubmit, FalUpload, JobTracker
from ._fal_parse import PROVIDER, FalSubmission
from ._steps import acquire_slots, add_note, bind_slot, cancel_summary, check_fits, keep_handle, step, upload_once
from .base import FlowContext, fill_placeholders

if TYPE_CHECKING:
    from ._fal_flow import FalFlows

__all__ = ["UNANSWERED_SUBMIT", "submit"]

UNANSWERED_SUBMIT: Final = ("the submit got no readable answer, so fal may have accepted a request whose id it "
                            "never told us (it cannot be cancelled or collected from here)")


def submit(flows: FalFlows, plan: Plan, context: FlowContext, jobs: JobTracker | None, *,
           keep_slots: bool = True) -> Flow[JobHandle]:
    """Upload the plan's zip (once per distinct content per client, even across concurrent calls), then
    submit every payload back to back, each in a slot of the account's limits. Returns the handle of all
    submissions. ``keep_slots``: the requests keep their slots past this run (a handle handed over)."""
    if keep_slots:
        check_fits(plan, flows.limits, PROVIDER)
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
    submitted_at = datetime.datetime.now(datetime.UTC)
    request_ids: list[str] = []
    accepted_after: list[float] = []

    def handle() -> JobHandle:
        details: dict[str, Any] = {"application": flows.application, "submitted_at_known": True,
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
                leases = yield from acquire_slots(context, PROVIDER, flows.account, flows.limits,
                                                  len(plan.payloads))
            lease = leases[index] if leases else None
            body = fill_placeholders(payload, urls)
            submission: FalSubmission = yield from step(FalSubmit(flows.application, body, plan.submit_options,
                                                                  jobs=jobs), context,
                                                        provider=PROVIDER, what="submit")
        except DeadlineReached as reached:
            if lease is not None and reached.__cause__ is not None:
                yield from bind_slot(lease, f"unanswered-submit-{lease.number}", keep=True)
            outcome = ""
            if request_ids and context.cancel_on_deadline:
                outcome = f" ({cancel_summary((yield from cancel_requests(flows, request_ids, jobs, context)))})"
            elif request_ids:
                outcome = (f"; {len(request_ids)} of {len(plan.payloads)} submissions were accepted (still "
                           "running; collect them with the handle)")
            timeout = GenerationTimeoutError(f"the deadline passed while submitting to fal{outcome}",
                                             provider=PROVIDER, request_id=request_ids[0] if request_ids else None,
                                             handle=handle() if request_ids else None)
            # The deadline cut a submit on the wire: fal may have accepted (and will bill) a job we cannot name.
            timeout.may_have_accepted = reached.__cause__ is not None
            raise timeout from reached
        except ProviderError as error:
            notes: list[str] = []
            if may_have_created(error):
                # The submit may have been accepted although we never learnt its request id.
                notes.append(UNANSWERED_SUBMIT)
                error.may_have_accepted = True
                if lease is not None:
                    yield from bind_slot(lease, f"unanswered-submit-{lease.number}", keep=True)
            # The earlier submissions would run (and be billed) for a call that failed: cancel them.
            outcomes = yield from cancel_requests(flows, request_ids, jobs, context)
            notes.append(cancel_summary(outcomes))
            add_note(error, "; ".join(filter(None, notes)))
            if request_ids:  # a cancel that did not happen leaves them running: the error says how to collect them
                keep_handle(error, handle(), outcomes)
            raise
        if jobs is not None:
            jobs.add(flows.application, submission.request_id)
        request_ids.append(submission.request_id)
        # Each request's times count from when fal accepted it: on a busy client (many calls at once) a
        # later submit may leave well after submitted_at, and its request's schedule must not start early.
        accepted_since = datetime.datetime.now(datetime.UTC) - submitted_at
        accepted_after.append(round(max(0.0, accepted_since.total_seconds()), 6))
        yield from bind_slot(lease, submission.request_id, keep=keep_slots)
        yield Event("submitted", PROVIDER, request_id=submission.request_id,
                    queue_position=submission.queue_position)
        # The submit's own answer is IN_QUEUE (fal.md §1.3): said at once, since the first status call now
        # waits for its due time and may find the request already running.
        yield Event("queued", PROVIDER, request_id=submission.request_id, queue_position=submission.queue_position)
    accepted = handle()
    yield Event("handle", PROVIDER, request_id=accepted.request_id, handle=accepted, accepted=True)
    return accepted
