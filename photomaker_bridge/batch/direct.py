"""A job sent to one provider: one ``generate(keep_running=True)`` call whose handle is journaled the moment it
exists.

Collecting by handle costs time on a provider that answers a synchronous request when the images are done:
Runware's ``submit`` uses async delivery and polls ``getResponse``, which notices a finished task later than the
synchronous POST that ``generate`` waits on (``benchmarks/batch.py``: 1.57× the wall time of ``gather`` over
``generate``). So a job with one provider goes through ``generate`` itself, and the ``handle`` event
(:class:`~photomaker_bridge.Event`) brings the handle to the journal as soon as there is one — after the
provider accepted the job, or, for Runware's synchronous delivery, as the tasks leave with the taskUUIDs the bridge
chose (``"accepted": false`` in the journal; :mod:`.journal`). ``keep_running=True`` leaves the job running at
the deadline or on Ctrl-C, so a later run collects it by that handle, exactly as it would one from ``submit``.

A routed job keeps ``submit`` then ``result`` (:mod:`.runner`): its route goes on from an accepted job's failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from .._http import Event
from ..errors import BridgeError, ConfigurationError, GenerationTimeoutError
from ..jobs import JobHandle
from ..result import PhotoMakerResult
from .jobs import BatchJob
from .journal import now_iso
from .output import save_images
from .records import JobTiming, counted_under, failure_record, success_record

if TYPE_CHECKING:
    from .runner import _Run

__all__ = ["run_direct"]


class _Journaled:
    """The handles of one job's call, journaled as its ``handle`` events arrive."""

    def __init__(self, run: _Run, job: BatchJob) -> None:
        self.run = run
        self.job = job
        self.handles: list[JobHandle] = []
        self.accepted = True
        """Whether the provider confirmed the latest handle (``False``: Runware's, journaled before its answer)."""
        self.known = asyncio.Event()

    def on_event(self, event: Event) -> None:
        if event.kind != "handle" or event.handle is None:
            return
        handle = event.handle
        self.handles.append(handle)
        self.accepted = event.accepted is not False
        self.run.journal.submitted(self.job.key, handle.provider, handle.to_dict(), self.job.labels,
                                   accepted=self.accepted)
        if not self.known.is_set():
            self.known.set()
            self.run.emit("submitted", self.job.key, handle.provider)
            self.run.emit("collecting", self.job.key, handle.provider)

    @property
    def last(self) -> JobHandle | None:
        return self.handles[-1] if self.handles else None


async def run_direct(run: _Run, job: BatchJob) -> None:
    """Journal the intent, generate with the handle journaled on the way, journal the outcome."""
    started_at, started = now_iso(), time.monotonic()
    run.journal.intent(job.key, job.label, job.labels)
    run.emit("submitting", job.key, job.label)
    journaled = _Journaled(run, job)
    call = asyncio.ensure_future(run.bridge.generate(
        job.request, job.label, timeout=run.options.timeout, strict=run.options.strict, keep_running=True,
        on_event=journaled.on_event, download=run.options.download))
    try:
        result = await asyncio.shield(call)
    except asyncio.CancelledError:
        await _settle(run, job, call, journaled, started_at, started)
        raise
    except ConfigurationError:
        if not journaled.handles:
            run.journal.withdrawn(job.key)  # raised before any request: nothing can exist at the provider
        raise
    except BridgeError as error:
        _failed(run, job, error, journaled, started_at, started)
        return
    except Exception as error:  # a bug, not a provider's answer: a journaled handle lets a later run collect it
        run.left.append(job.key)
        run.emit("error", job.key, job.label, message=f"{type(error).__name__}: {error}")
        return
    _succeeded(run, job, result, started_at, started)


def _succeeded(run: _Run, job: BatchJob, result: PhotoMakerResult, started_at: str, started: float) -> None:
    paths = (save_images(result.images, run.out, job.key) if run.options.download
             else [None] * len(result.images))
    run.finish(success_record(job.key, job.labels, result, paths,
                              JobTiming(started_at, round(time.monotonic() - started, 6))))


def _failed(run: _Run, job: BatchJob, error: BridgeError, journaled: _Journaled, started_at: str,
            started: float) -> None:
    handle = journaled.last
    timing = JobTiming(started_at, round(time.monotonic() - started, 6))
    record = failure_record(job.key, counted_under(job.label, error, handle), job.labels, error, timing,
                            handle=handle)
    if record.get("resumable") and not journaled.accepted:
        record["accepted"] = False  # a deadline during Runware's sync POST: the next run checks it was taken
    run.finish(record)


async def _settle(run: _Run, job: BatchJob, call: asyncio.Future[PhotoMakerResult], journaled: _Journaled,
                  started_at: str, started: float) -> None:
    """The run was cancelled during ``job``'s call: give a submission on the wire ``submit_grace`` seconds to
    produce a handle (journaled as it comes), then stop the call; the job keeps running at the provider."""
    if not journaled.known.is_set() and not call.done():
        waiter: asyncio.Future[Any] = asyncio.ensure_future(journaled.known.wait())
        watched: set[asyncio.Future[Any]] = {call, waiter}
        try:
            await asyncio.wait(watched, timeout=run.options.submit_grace, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled again (a second Ctrl-C): stop the call now, the intent stays undecided
            call.cancel()
            raise
        finally:
            waiter.cancel()
    if not call.done():  # a journaled handle lets the next run collect it; without one the intent stays undecided
        call.cancel()
        with contextlib.suppress(BaseException):
            await call
        return
    if call.cancelled():
        return
    error = call.exception()
    if error is None:
        _succeeded(run, job, call.result(), started_at, started)  # it finished within the grace
    elif isinstance(error, BridgeError) and (journaled.handles or
                                             (isinstance(error, GenerationTimeoutError) and error.handle)):
        _failed(run, job, error, journaled, started_at, started)
    elif isinstance(error, BridgeError) and not getattr(error, "may_have_accepted", False):
        run.journal.withdrawn(job.key)  # refused before any handle: nothing was accepted, a later run may send it
    # else: an answer lost on a job-creating request: the provider may have the job, so the intent stays undecided
