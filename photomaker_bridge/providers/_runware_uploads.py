"""Runware's reference-image uploads (docs/protocols/runware.md §5.4): every local image not yet uploaded by this
client goes up in one ``imageUpload`` array, one upload per distinct content even across concurrent calls; the
returned imageUUIDs replace the plan's placeholders and are cached per content hash, and forgotten when Runware
says one is gone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._coordination import Busy, ClaimUpload, FinishUpload, ForgetUpload, UploadTicket
from .._http import Event, Flow
from ..errors import ProviderError, ProviderUnavailableError
from ..images import build_data_uri
from ..plan import Plan, UploadPlaceholder
from ..result import PhotoMakerResult
from ._runware_common import STALE_UPLOAD_CODES, post_tasks, read_answer, stamp, tasks_of
from ._runware_parsing import PROVIDER, RunwareAnswer
from ._runware_wire import image_upload_task
from ._steps import step
from .base import FlowContext, fill_placeholders, new_uuid

if TYPE_CHECKING:
    from .runware import RunwareProvider

__all__ = ["forget_stale", "prepare_tasks", "upload_flow"]

def upload_flow(provider: RunwareProvider, uploads: Sequence[UploadPlaceholder], context: FlowContext,
                ) -> Flow[tuple[dict[str, str], bool]]:
    """Upload what this client has not; returns ``({sha256: imageUUID}, whether anything was sent)``.

    Content another call is uploading right now is waited for, not uploaded again; what this call must upload
    goes up in one ``imageUpload`` array.
    """
    resolved: dict[str, str] = {}
    tickets: dict[str, UploadTicket] = {}
    pending: list[UploadPlaceholder] = []
    distinct = {upload.sha256: upload for upload in uploads}
    for upload in distinct.values():
        claimed = yield ClaimUpload(f"{PROVIDER}:{upload.sha256}", wait=False)
        if isinstance(claimed, str):
            resolved[upload.sha256] = claimed
        elif isinstance(claimed, UploadTicket):
            tickets[upload.sha256] = claimed
        else:
            pending.append(upload)
    sent = False
    while tickets or pending:
        if tickets:
            yield from _upload_batch(provider, [distinct[sha] for sha in tickets], tickets, resolved, context)
            sent = True
            tickets = {}
        waiting, pending = pending, []
        for upload in waiting:
            yield Event("waiting", PROVIDER, message=f"{upload.description}: another call is uploading it")
            claimed = yield ClaimUpload(f"{PROVIDER}:{upload.sha256}", wait=True)
            if isinstance(claimed, str):
                resolved[upload.sha256] = claimed
            elif isinstance(claimed, UploadTicket):
                tickets[upload.sha256] = claimed  # the other call's upload failed: this one uploads it
            elif isinstance(claimed, Busy) or claimed is None:
                pending.append(upload)
    return resolved, sent


def _upload_batch(provider: RunwareProvider, uploads: Sequence[UploadPlaceholder],
                  tickets: Mapping[str, UploadTicket], resolved: dict[str, str], context: FlowContext) -> Flow[None]:
    tasks: list[dict[str, Any]] = []
    for upload in uploads:
        yield Event("uploading", PROVIDER, message=upload.description)
        tasks.append(image_upload_task(new_uuid(), build_data_uri(upload.data, upload.content_type)))
    first_id = str(tasks[0]["taskUUID"])
    finished: set[str] = set()
    try:
        try:
            answer: RunwareAnswer = yield from step(post_tasks(provider, tasks), context, provider=PROVIDER,
                                                    what="image upload",
                                                    parse=lambda reply: read_answer(reply, first_id))
        except ProviderError as error:
            raise stamp(error, first_id) from None
        for upload, task in zip(uploads, tasks, strict=True):
            task_uuid = str(task["taskUUID"])
            failures = answer.failures_for(task_uuid)
            if failures:
                raise failures[0]
            candidates = [item.image_uuid for item in answer.items_for(task_uuid) if item.image_uuid]
            if not candidates and len(tasks) == 1:
                # §5.4 [CONFLICT]: one docs version answers {"data": {...}}; accept a lone item without taskUUID.
                candidates = [item.image_uuid for item in answer.items if item.image_uuid]
            if not candidates:
                raise ProviderUnavailableError(
                    f"Runware's imageUpload answer has no imageUUID for {upload.description}", provider=PROVIDER,
                    status=answer.status, code="invalid_response", request_id=task_uuid, raw=answer.body)
            resolved[upload.sha256] = candidates[0]
            finished.add(upload.sha256)
            yield FinishUpload(tickets[upload.sha256], candidates[0])
    except GeneratorExit:
        raise  # the driver's scope finishes the tickets (as failed)
    except BaseException:
        for upload in uploads:
            if upload.sha256 not in finished:
                yield FinishUpload(tickets[upload.sha256], None)
        raise


def prepare_tasks(provider: RunwareProvider, plans: Sequence[Plan], context: FlowContext,
             ) -> Flow[tuple[list[list[dict[str, Any]]], float | None, dict[str, str]]]:
    """Each plan's tasks with uploaded imageUUIDs in place of the placeholders, the upload time, and the imageUUID
    of every upload (by cache key)."""
    provider.require_key()
    tasks_by_plan = [tasks_of(plan) for plan in plans]
    uploads = [upload for plan in plans for upload in plan.uploads]
    started = context.clock()
    uuids, sent = yield from upload_flow(provider, uploads, context)
    upload_seconds = context.clock() - started if sent else None
    replacements = {upload.placeholder: uuids[upload.sha256] for upload in uploads}
    used = {f"{PROVIDER}:{upload.sha256}": uuids[upload.sha256] for upload in uploads}
    return ([[fill_placeholders(task, replacements) for task in tasks] for tasks in tasks_by_plan], upload_seconds,
            used)


def forget_stale(error: PhotoMakerResult | ProviderError, used: Mapping[str, str]) -> Flow[bool]:
    """When ``error`` says an input imageUUID is gone, drop this client's cached uploads; whether it said so."""
    if not isinstance(error, ProviderError) or error.code not in STALE_UPLOAD_CODES or not used:
        return False
    for key, image_uuid in used.items():
        yield ForgetUpload(key, image_uuid)
    return True
