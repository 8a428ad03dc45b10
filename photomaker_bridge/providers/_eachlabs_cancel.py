"""Cancelling Eachlabs predictions (docs/protocols/eachlabs.md §2.8), from a flow or, for a flow being closed,
from a background thread; and what the Eachlabs flows share: the API's URLs and notes added to an error.

A cancel that fails is an outcome, never an exception: the flows that cancel are already ending (a deadline, a
failure, ``Bridge.cancel``), and what they report names each prediction's outcome.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from .._http import CLEANUP_GRACE_SECONDS, DeadlineReached, Flow, HttpRequest, HttpResponse
from .._transports import RequestsTransport
from ..errors import ProviderError
from ..jobs import CancelOutcome, JobHandle
from ._eachlabs_parsing import PROVIDER, http_error
from ._steps import release_slot, step
from .base import FlowContext

if TYPE_CHECKING:
    from .eachlabs import EachlabsProvider

__all__ = ["api_url", "cancel", "cancel_ids", "cancel_in_background"]

_ALREADY_FINISHED_STATUSES: Final = frozenset({400, 409, 422})
"""A cancel refused with one of these: the prediction had already ended (§2.8: "accepted only while
non-terminal"; the refusal's exact status is not documented)."""


def api_url(provider: EachlabsProvider, path: str) -> str:
    """The URL of an API ``path`` at the provider's ``base_url``."""
    return provider.base_url + path


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
        request = HttpRequest("POST", api_url(provider, f"/v1/prediction/{prediction_id}/cancel"), PROVIDER,
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
    requests = [HttpRequest("POST", api_url(provider, f"/v1/prediction/{prediction_id}/cancel"), PROVIDER, key)
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

