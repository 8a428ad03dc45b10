"""What every Runware flow shares: the task POST, reading its answer, and building handles, results and timeout
errors (docs/protocols/runware.md §2, §4)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from .._http import HttpRequest, HttpResponse
from ..errors import ConfigurationError, GenerationTimeoutError, InvalidRequestError, ProviderError
from ..jobs import JobHandle
from ..plan import Plan
from ..result import BridgeWarning, PhotoMakerResult, Timings
from ._runware_parsing import PROVIDER, RunwareAnswer, parse_answer
from ._runware_tasks import Summary, TaskInfo
from .base import FlowContext, error_for_status

if TYPE_CHECKING:
    from .runware import RunwareProvider

__all__ = ["STALE_UPLOAD_CODES", "TRANSIENT_STATUSES", "UNKNOWN_TASK_CODES", "make_handle", "make_result", "now",
           "number_results", "post_tasks", "read_answer", "stamp", "tasks_of", "timeout_error"]

TRANSIENT_STATUSES: Final = frozenset({408, 409, 429, 500, 502, 503, 504})
"""HTTP statuses that refuse or lose a whole request, whatever code the error item carries."""


UNKNOWN_TASK_CODES: Final = frozenset({"taskNotFound", "taskFailedOrNotFound", "taskExpired"})
"""getResponse codes for a taskUUID Runware does not know (§4.2)."""


STALE_UPLOAD_CODES: Final = frozenset({"mediaNotFound"})
"""A task refused because an input imageUUID names no stored image: Runware deletes uploads unused for 30 days
(§5.4), so a cached imageUUID can go stale."""


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def post_tasks(provider: RunwareProvider, tasks: list[dict[str, Any]], *, creates_job: bool = False) -> HttpRequest:
    # §2.1: the body is always a JSON array of tasks, authenticated by the Bearer header. A task POST creates
    # jobs, but its taskUUIDs are ours: cut at the deadline, the tasks stay known, so it needs no grace.
    return HttpRequest.json("POST", provider.base_url, PROVIDER, tasks, headers=provider.headers(),
                            creates_job=creates_job, outlives_deadline=False)


def read_answer(response: HttpResponse, request_id: str) -> RunwareAnswer:
    """:func:`parse_answer`, raising when a transient status (408, 409, 429, 5xx) refused or lost the whole
    request (no result, no error naming a task): then the failure is transient whatever code its error item
    carries. An error naming a task is that task's own outcome (a failed generation), not the request's."""
    answer = parse_answer(response, request_id=request_id)
    scoped = any(uuid is not None for uuid, _ in answer.failures)
    if answer.status in TRANSIENT_STATUSES and not answer.items and not scoped:
        first = answer.failures[0][1] if answer.failures else None
        raise error_for_status(answer.status, first.message if first else f"Runware answered HTTP {answer.status}",
                               provider=PROVIDER, code=first.code if first else None, request_id=request_id,
                               raw=answer.body, retry_after=response.header("retry-after"))
    return answer


def tasks_of(plan: Plan) -> list[dict[str, Any]]:
    if plan.provider != PROVIDER:
        raise ConfigurationError(f"a {plan.provider!r} plan cannot be sent to Runware; plan it for 'runware'")
    tasks = [dict(task) for payload in plan.payloads for task in payload]
    if not tasks:
        raise InvalidRequestError("plan", plan.target, "a plan with at least one Runware task")
    return tasks


def stamp(error: ProviderError, request_id: str) -> ProviderError:
    # A transport failure knows no taskUUID; the first task's is the request's id (it may have run at Runware).
    if error.request_id is None:
        error.request_id = request_id
    return error


def number_results(task: Mapping[str, Any]) -> int:
    value = task.get("numberResults", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def make_handle(tasks: Sequence[Mapping[str, Any]], warnings: Sequence[BridgeWarning], *, delivery: str,
            upload_seconds: float | None) -> JobHandle:
    infos = [TaskInfo.from_task(task) for task in tasks]
    counts = [info.number_results or 1 for info in infos]
    return JobHandle(provider=PROVIDER, request_ids=[info.task_uuid for info in infos], submitted_at=now(),
                     requested_images=sum(counts), images_per_request=counts, warnings=tuple(warnings),
                     details={"delivery": delivery, "upload_seconds": upload_seconds,
                              "tasks": {info.task_uuid: info.to_details() for info in infos}})


def timeout_error(handle: JobHandle | None, what: str) -> GenerationTimeoutError:
    if handle is None:
        return GenerationTimeoutError(f"the deadline passed while {what}; nothing was submitted to Runware",
                                      provider=PROVIDER, handle=None)
    # Runware has no cancel API (§4): the tasks keep running and stay collectable with result(handle).
    return GenerationTimeoutError(
        f"the deadline passed while {what}; Runware has no cancel API, so tasks {', '.join(handle.request_ids)} "
        "keep running: collect them later with result(handle)",
        provider=PROVIDER, request_id=handle.request_id, handle=handle)


def make_result(tasks: Sequence[Mapping[str, Any]], summary: Summary, warnings: Sequence[BridgeWarning],
            bodies: Sequence[Any], requested: int | None, upload_seconds: float | None,
            context: FlowContext) -> PhotoMakerResult:
    return PhotoMakerResult(
        images=summary.images, provider=PROVIDER, request_ids=[str(task["taskUUID"]) for task in tasks],
        seed=summary.images[0].seed if summary.images else None, cost=summary.cost,
        timings=Timings(total_seconds=context.clock() - context.started_at, upload_seconds=upload_seconds),
        warnings=(*warnings, *summary.warnings), raw=tuple(bodies), requested_images=requested,
        created_at=now(),
    )
