"""Cancelling fal requests (fal.md §1.7) and telling in an error what became of them.

A cancel that fails is an outcome, never an error: the flows that cancel are already ending (a deadline, a
failure, ``Bridge.cancel``), and what they report names each request's outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._http import DeadlineReached, Flow
from ..errors import ProviderError
from ..jobs import CancelOutcome
from ._fal_operations import FalCancel, JobTracker
from ._fal_parse import PROVIDER
from ._steps import release_slot, step
from .base import FlowContext

if TYPE_CHECKING:
    from ._fal_flow import FalFlows

__all__ = ["accepted_cancel", "cancel_requests", "refused_cancel"]


def cancel_requests(flows: FalFlows, request_ids: Sequence[str], jobs: JobTracker | None, context: FlowContext,
                    application: str | None = None, last_seen: Mapping[str, str | None] | None = None,
                    ) -> Flow[tuple[CancelOutcome, ...]]:
    """Cancel each request (fal.md §1.7) and free its slot; a failed cancel is an outcome, never an error.

    fal answers any accepted cancel alike, removing a queued request and signalling a running one, so the
    outcome follows the state last seen (``last_seen``: request id -> fal status).
    """
    outcomes: list[CancelOutcome] = []
    for request_id in request_ids:
        try:
            said: Any = yield from step(FalCancel(application or flows.application, request_id, jobs=jobs), context,
                                        provider=PROVIDER, what="cancel", request_id=request_id)
            outcome = accepted_cancel(request_id, said, (last_seen or {}).get(request_id))
        except ProviderError as error:
            outcome = refused_cancel(request_id, error)
        except DeadlineReached as reached:
            outcome = CancelOutcome(PROVIDER, request_id, "failed", f"no answer in time ({reached.__cause__})")
        outcomes.append(outcome)
        if jobs is not None:
            jobs.finish(request_id)
        if outcome.state != "failed":
            yield from release_slot(flows.account, flows.limits, request_id=request_id)
    return tuple(outcomes)


def accepted_cancel(request_id: str, said: Any, last_seen: str | None) -> CancelOutcome:
    """The outcome of a cancel fal accepted (fal.md §1.7): it removes a queued request and signals a running one.
    Its answer says which when it is ``CANCELLATION_REQUESTED``; otherwise the state last seen decides."""
    if said == "CANCELLATION_REQUESTED" and last_seen != "IN_QUEUE":
        return CancelOutcome(PROVIDER, request_id, "cancel_requested", "fal passed the cancel to the runner")
    if last_seen == "IN_QUEUE" or said == "OK":
        return CancelOutcome(PROVIDER, request_id, "cancelled", "fal removed the request from the queue")
    return CancelOutcome(PROVIDER, request_id, "cancel_requested", "fal passed the cancel to the runner")


def refused_cancel(request_id: str, error: ProviderError) -> CancelOutcome:
    """The outcome of a cancel fal refused (fal.md §1.7: 400 ALREADY_COMPLETED, 404 NOT_FOUND)."""
    said = error.raw.get("status") if isinstance(error.raw, Mapping) else None
    if said == "ALREADY_COMPLETED" or (error.status == 400 and said is None):
        return CancelOutcome(PROVIDER, request_id, "already_finished", "fal: the request had already completed")
    if said == "NOT_FOUND" or error.status == 404:
        return CancelOutcome(PROVIDER, request_id, "not_found", "fal does not know the request")
    return CancelOutcome(PROVIDER, request_id, "failed", str(error))

