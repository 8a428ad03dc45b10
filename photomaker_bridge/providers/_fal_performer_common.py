"""What the two runners of the fal flows' operations share: one ``fal_client`` client per bridge client, sync
(``_fal_sync_performer``) or async (``_fal_async_performer``).

The flows (``_fal_flow``) yield :class:`FalUpload`, :class:`FalSubmit`, :class:`FalStatusCheck`,
:class:`FalStatusStream`, :class:`FalFetch` and :class:`FalCancel`; a performer runs each with its client
(``_fal_client``), bounded by the time the driver says is left, and hands back plain values or raises the bridge's
typed errors. ``fal_client``
does not retry here (its failures come straight back, ``_fal_client``): the flows' steps decide.

A submit cut short by the deadline (past the clean-up grace the driver gives a step that creates a job) may
still be accepted by fal after nobody waits for it: it runs on, and its request is cancelled once fal answers
(docs/protocols/fal.md §1.7), so that no job runs and bills unreported. ``close``/``aclose`` wait for such
background work within the clean-up grace.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Final

import httpx

from ..errors import ProviderUnavailableError
from ._fal_client import mapped_errors
from ._fal_operations import FalCancel, FalFetch, FalStatusCheck, FalStatusStream, FalSubmit, FalUpload
from ._fal_parse import PROVIDER

if TYPE_CHECKING:
    from .fal import FalProvider

__all__ = ["cancel_answer", "check_operation", "deadline_error", "fetched", "operation_errors"]

_OPERATIONS: Final = (FalUpload, FalSubmit, FalStatusCheck, FalStatusStream, FalFetch, FalCancel)


def check_operation(operation: Any) -> None:
    """Refuse anything but a fal operation (a value the flows yield by mistake)."""
    if not isinstance(operation, _OPERATIONS):
        raise TypeError(f"the fal performer cannot run {operation!r}")


def _request_id_of(operation: Any) -> str | None:
    request_id = getattr(operation, "request_id", None)
    return request_id if isinstance(request_id, str) else None


def operation_errors(operation: Any, provider: FalProvider) -> contextlib.AbstractContextManager[None]:
    """Turn ``fal_client``'s failures while running ``operation`` into the bridge's typed errors
    (``_fal_client``)."""
    return mapped_errors(_request_id_of(operation), reads=not isinstance(operation, FalSubmit),
                         handle_for=provider.handle_for)


def fetched(response: httpx.Response) -> Any:
    """A completed request's output. Fetched straight from its response URL once a status call said COMPLETED:
    ``fal_client.result()`` would ask for the status once more first (docs/protocols/fal.md §1.8). An error
    answer never gets here (the client's transport raises it)."""
    return response.json()


def cancel_answer(response: httpx.Response) -> str | None:
    """The ``status`` of a 2xx cancel answer (``CANCELLATION_REQUESTED``, ...), when it has one (fal.md §1.7)."""
    try:
        body = response.json()
    except ValueError:
        return None
    status = body.get("status") if isinstance(body, dict) else None
    return status if isinstance(status, str) else None


def deadline_error(operation: Any, remaining: float) -> ProviderUnavailableError:
    """The error of a call that did not end within the ``remaining`` seconds before the deadline."""
    return ProviderUnavailableError(f"fal did not answer {type(operation).__name__} within the {remaining:.3g} s "
                                    "left before the deadline", provider=PROVIDER, code="timeout",
                                    request_id=_request_id_of(operation))
