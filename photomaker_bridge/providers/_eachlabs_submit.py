"""Eachlabs' submit, written once as a generator: upload the local reference images (presign, then PUT, §2.11),
then create the plan's predictions (§2.1–2.3), each in a slot of the account's limit.

An accepted prediction is never left running unreported: a lost answer keeps its slot taken and says so in the
error, and the predictions created before a failure (or the deadline, under ``generate``) are cancelled.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from .._http import DeadlineReached, Event, Flow, HttpRequest, HttpResponse
from .._retry import may_have_created
from ..errors import GenerationTimeoutError, ProviderError
from ..jobs import JobHandle
from ..plan import Plan, UploadPlaceholder
from ._eachlabs_cancel import api_url, cancel_ids, cancel_in_background
from ._eachlabs_parsing import PROVIDER, parse_create, parse_presign, upload_error
from ._steps import acquire_slots, add_note, bind_slot, cancel_summary, check_fits, keep_handle, step, upload_once
from .base import FlowContext, fill_placeholders

if TYPE_CHECKING:
    from .eachlabs import EachlabsProvider

__all__ = ["UNANSWERED_CREATE", "submit"]

UNANSWERED_CREATE: Final = ("a create got no readable answer, so Eachlabs may have accepted a prediction whose id "
                            "it never told us (it cannot be cancelled or collected from here)")


def _check_put(response: HttpResponse) -> None:
    if not 200 <= response.status < 300:
        raise upload_error(response)


def _upload(provider: EachlabsProvider, upload: UploadPlaceholder, context: FlowContext,
            headers: Mapping[str, str]) -> Flow[tuple[str, bool]]:
    """The public URL of one local image: presign, then PUT the bytes (§2.11) — once per content per client."""

    def send() -> Flow[str]:
        presign = HttpRequest.json("POST", api_url(provider, "/v1/upload/presign"), PROVIDER,
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
            create = HttpRequest.json("POST", api_url(provider, "/v1/prediction/"), PROVIDER, body, headers=headers,
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
        handle = _handle(provider, plan, created, upload_seconds, uploads, reused)
        # Inside the try: a caller's on_event failing here must still cancel what nobody will collect.
        yield Event("handle", PROVIDER, handle.request_id, handle=handle, accepted=True)
    except DeadlineReached as reached:
        ids = [prediction_id for prediction_id, _ in created]
        made = _handle(provider, plan, created, upload_seconds, uploads, reused) if created else None
        outcome = ""
        if ids and context.cancel_on_deadline:
            outcomes = yield from cancel_ids(provider, ids, context, headers)
            outcome = f" ({cancel_summary(outcomes)})"
        elif ids:
            outcome = f" (still running; collect them with the handle: {', '.join(ids)})"
        what = "while creating the predictions" if created or not plan.uploads else "while uploading"
        unanswered = creating and reached.__cause__ is not None
        if unanswered:
            what += "; " + UNANSWERED_CREATE
        timeout = GenerationTimeoutError(f"the deadline passed {what}{outcome}", provider=PROVIDER, handle=made,
                                         request_id=ids[0] if ids else None)
        timeout.may_have_accepted = unanswered  # a create cut on the wire may have made a billed prediction
        raise timeout from None
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
        if ids and isinstance(error, ProviderError):  # a cancel that did not happen leaves them running
            keep_handle(error, _handle(provider, plan, created, upload_seconds, uploads, reused), outcomes)
        raise
    return handle


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
