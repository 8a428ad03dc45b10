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

Each step lives in a module of its own: upload and create in ``_eachlabs_submit``, polling until the predictions
end in ``_eachlabs_polling``, cancelling in ``_eachlabs_cancel``; this module puts them together for ``generate``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._http import Event, Flow
from ..errors import ProviderRejectedError
from ..plan import Plan
from ..result import PhotoMakerResult
from ._eachlabs_cancel import cancel
from ._eachlabs_parsing import PROVIDER
from ._eachlabs_polling import DOWNLOAD_FAILURE, result
from ._eachlabs_submit import submit
from ._steps import in_waves
from .base import FlowContext

if TYPE_CHECKING:
    from .eachlabs import EachlabsProvider

__all__ = ["cancel", "generate", "result", "submit"]


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
        if error.code != DOWNLOAD_FAILURE or not handle.details.get("reused_uploads"):
            raise
        yield Event("retrying", PROVIDER, handle.request_id,
                    message="Eachlabs could not download a reference image uploaded earlier; uploading it again")
        handle = yield from submit(provider, plan, context, keep_slots=False)
        collected = yield from result(provider, handle, context)
    return collected
