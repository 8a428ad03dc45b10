"""fal's protocol, written once as generators: upload the zip, submit, poll, fetch, cancel (fal.md §1, §3).

:class:`FalFlows` holds one adapter's settings and drives the steps, each in a module of its own: the submit
(``_fal_submit``), polling until each request completes (``_fal_polling``, with what it learns about each
request in ``_fal_progress``), fetching and assembling the result (``_fal_result``) and cancelling
(``_fal_cancel``). They yield the operations of ``_fal_operations`` (plus :class:`~photomaker_bridge._http.Wait`
and ``Event``); the performers (``_fal_sync_performer``, ``_fal_async_performer``) run them with one
``fal_client.SyncClient`` or ``AsyncClient`` and hand back plain values (:class:`FalSubmission`,
:class:`FalStatus`, the result JSON) or throw our typed errors in. Nothing here imports ``fal_client``.
"""

from __future__ import annotations

import attrs

from .._coordination import Limits
from .._http import Event, Flow
from ..errors import ProviderError
from ..jobs import CancelOutcome, JobHandle
from ..plan import Plan
from ..result import PhotoMakerResult
from . import _fal_polling, _fal_submit
from ._fal_cancel import cancel_requests
from ._fal_operations import FalCancel, FalFetch, FalStatusCheck, FalSubmit, FalUpload, JobTracker, StreamSlots
from ._fal_parse import PROVIDER, unreadable_archive
from ._polling import DurationEstimate, PollPolicy
from ._steps import in_waves
from .base import FlowContext

__all__ = [
    "FalCancel",
    "FalFetch",
    "FalFlows",
    "FalStatusCheck",
    "FalSubmit",
    "FalUpload",
    "JobTracker",
]


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
    streams: StreamSlots | None = None
    """The adapter's status-stream slots, for requests whose length is not known yet (``None``: always poll)."""

    def submit(self, plan: Plan, context: FlowContext, jobs: JobTracker | None, *,
               keep_slots: bool = True) -> Flow[JobHandle]:
        """Upload the plan's zip (once per distinct content per client, even across concurrent calls), then
        submit every payload back to back, each in a slot of the account's limits. Returns the handle of all
        submissions. ``keep_slots``: the requests keep their slots past this run (a handle handed over)
        (``_fal_submit.submit``)."""
        return _fal_submit.submit(self, plan, context, jobs, keep_slots=keep_slots)

    def result(self, handle: JobHandle, context: FlowContext, jobs: JobTracker | None) -> Flow[PhotoMakerResult]:
        """Poll every request of ``handle`` until it completes, fetch each result, and assemble one result
        (``_fal_polling.result``)."""
        return _fal_polling.result(self, handle, context, jobs)

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
                if not unreadable_archive(error) or not handle.details.get("reused_uploads"):
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
        outcomes: tuple[CancelOutcome, ...] = yield from cancel_requests(self, list(handle.request_ids), None,
                                                                         context, application)
        return outcomes
