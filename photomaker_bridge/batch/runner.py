"""The batch runner: many jobs through one client, a bounded number at a time, every step in the journal.

A job sent to one provider is generated (``AsyncBridge.generate(keep_running=True)``, :mod:`.direct`), its handle
written to the journal from the call's ``handle`` event; a routed job is submitted along its route
(``AsyncBridge.submit``), its handle written the moment a provider accepts it, then collected
(``AsyncBridge.result``). Either way its images are saved and its outcome written. When a routed job's accepted
job fails, the route goes on (``submit(..., after=error)``: its policy decides, its attempts count) from a new
intent line. A fixed set of workers pulls jobs from the caller's iterable one at a time, so a batch of any size
holds only the jobs in flight; nothing about a finished job stays in memory (the summary reads the journal back
as a stream).

Interruption: when the run is cancelled (Ctrl-C under ``asyncio.run``, or the caller cancelling the task),
submissions already on their way are given ``BatchOptions.submit_grace`` seconds to be accepted and journaled,
and collections stop at once (the jobs keep running at the provider; their handles are in the journal). The
next run over the same output folder skips finished keys, collects accepted jobs by handle, and never submits
a job twice: see :mod:`.journal` for the one case it cannot decide alone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ..client import AsyncBridge
from ..errors import BridgeError, ConfigurationError, GenerationTimeoutError, ProviderError
from ..jobs import JobHandle
from ..providers.base import Provider
from .direct import run_direct
from .jobs import BatchJob, JobLabels
from .journal import JOURNAL_NAME, JournalState, JournalWriter, PendingJob, now_iso, scan_journal
from .options import BatchOptions, shard_of
from .output import prepare_output, save_images
from .progress import BatchEvent, BatchEventKind
from .records import JobTiming, attempt_dicts, counted_under, failure_record, success_record
from .routes import ROUTE_LABEL

if TYPE_CHECKING:
    from ..state import State

__all__ = ["BatchOptions", "BatchOutcome", "EventCallback", "arun_batch", "run_batch", "shard_of", "submit_job"]
# BatchOptions and shard_of live in .options and are re-exported here, where callers have always found them.

EventCallback = Callable[[BatchEvent], Any]
"""Receives every :class:`BatchEvent` (on the runner's event-loop thread; keep it quick)."""

_T = TypeVar("_T")
_MINIMUM_COLLECT_SECONDS = 1.0
"""A collection always gets at least this long, even when the submission used up the job's timeout."""


@attrs.frozen
class BatchOutcome:
    """What one run did."""

    out: Path
    """The output folder."""
    journal: Path
    """The journal file."""
    succeeded: int
    """Jobs that finished with images in this run."""
    failed: int
    """Jobs that finished with an error in this run (a passed deadline included)."""
    skipped: int
    """Jobs finished by an earlier run."""
    resumed: int
    """Jobs accepted in an earlier run and collected (or tried) in this one."""
    left: tuple[str, ...]
    """Keys this run leaves unfinished: undecided submissions of an earlier run, unexpected failures, and
    deadlines passed while the provider still ran the job. A later run picks up the resumable ones."""

    @property
    def finished(self) -> int:
        """Jobs finished in this run, either way."""
        return self.succeeded + self.failed


async def submit_job(bridge: AsyncBridge, job: BatchJob, *, timeout: float | None, strict: bool,
                     after: ProviderError | None = None) -> JobHandle:
    """Send ``job`` to its provider, or along its route, and return the accepted job's handle (for a route, that of
    the provider that accepted it, carrying the decision trail). ``after``: the error of a routed job's earlier
    accepted job, from which its route goes on."""
    if after is None:
        return await bridge.submit(job.request, job.provider, timeout=timeout, strict=strict)
    return await bridge.submit(job.request, job.provider, timeout=timeout, strict=strict, after=after)


@attrs.frozen
class _Resume:
    pending: PendingJob
    job: BatchJob | None = None
    """The job again, for a handle journaled before the provider answered: sent if the provider never had it."""


@attrs.frozen
class _Submit:
    job: BatchJob


class _Run:
    """One run over one output folder."""

    def __init__(self, bridge: AsyncBridge, out: Path, options: BatchOptions, on_event: EventCallback | None,
                 state: JournalState, journal: JournalWriter) -> None:
        self.bridge = bridge
        self.out = out
        self.options = options
        self.on_event = on_event
        self.state = state
        self.journal = journal
        self.seen: set[str] = set()
        self.unconfirmed: dict[str, PendingJob] = {}
        """Handles journaled before the provider answered: collected when their job comes up in the input."""
        self.left: list[str] = []
        self.counts = {"succeeded": 0, "failed": 0, "skipped": 0, "resumed": 0}

    def emit(self, kind: BatchEventKind, key: str, provider: str, record: dict[str, Any] | None = None,
             message: str | None = None) -> None:
        if self.on_event is not None:
            self.on_event(BatchEvent(kind, key, provider, record=record, message=message))

    def work(self, jobs: Iterable[BatchJob]) -> Iterator[_Resume | _Submit]:
        """What to do, lazily: first collect what earlier runs left accepted, then the caller's jobs — a job whose
        handle was journaled before the provider answered (``"accepted": false``) when its key comes up, so that it
        can be sent if the provider never got it; such handles whose keys are no longer in the input come last."""
        for key in [key for key in self.state.pending if not self.options.owns(key)]:
            del self.state.pending[key]  # another shard's to collect
        for key in [key for key in self.state.unknown if not self.options.owns(key)]:
            del self.state.unknown[key]
        for key in [key for key, pending in self.state.pending.items() if not pending.accepted]:
            self.unconfirmed[key] = self.state.pending.pop(key)
        while self.state.pending:
            key, pending = next(iter(self.state.pending.items()))
            del self.state.pending[key]
            self.seen.add(key)
            yield _Resume(pending)
        for job in jobs:
            if not self.options.owns(job.key):
                continue
            if job.key in self.seen:
                self.emit("duplicate", job.key, job.label, message="this key was already given; the first runs")
                continue
            self.seen.add(job.key)
            if job.key in self.state.finished:
                self.counts["skipped"] += 1
                self.emit("skipped", job.key, self.state.ran_by.get(job.key, job.label))
                continue
            if job.key in self.unconfirmed:
                yield _Resume(self.unconfirmed.pop(job.key), job)
                continue
            if job.key in self.state.unknown and not self.options.resubmit_unknown:
                self.left.append(job.key)
                self.emit("unknown", job.key, job.label, message=(
                    "an earlier run was stopped while submitting this job, so the provider may have accepted it; "
                    "it is not sent again (check the provider's dashboard, or resubmit it explicitly)"))
                continue
            yield _Submit(job)
        for key in [key for key in self.unconfirmed if key not in self.seen]:  # no longer in the input
            self.seen.add(key)
            yield _Resume(self.unconfirmed.pop(key))
        for key, (provider, _labels) in self.state.unknown.items():
            if key not in self.seen:  # undecided jobs no longer in the input are still reported
                self.left.append(key)
                self.emit("unknown", key, provider, message="an earlier run was stopped while submitting this job")

    async def worker(self, work: Iterator[_Resume | _Submit]) -> None:
        for item in work:
            if isinstance(item, _Resume):
                await self.resume(item.pending, item.job)
            else:
                await self.submit(item.job)

    def finish(self, record: dict[str, Any]) -> None:
        self.journal.write(record)
        if record["outcome"] == "success":
            self.counts["succeeded"] += 1
        else:
            self.counts["failed"] += 1
            if record.get("resumable"):
                self.left.append(record["key"])
        self.emit("finished", record["key"], record["provider"], record=record)

    async def submit(self, job: BatchJob) -> None:
        if job.route is None:  # one provider: generate, its handle journaled as it comes (.direct)
            await run_direct(self, job)
            return
        started_at, started = now_iso(), time.monotonic()
        deadline = None if self.options.timeout is None else started + self.options.timeout
        previous: ProviderError | None = None
        while True:  # once for one provider; for a route, again after each accepted job that failed
            handle = await self._submit_once(job, started_at, started, deadline, previous)
            if handle is None:
                return
            previous = await self.collect(job.key, job.label, job.labels, handle, started_at, started, deadline,
                                          resumed=False, route=job.route_record())
            if previous is None:
                return

    async def _submit_once(self, job: BatchJob, started_at: str, started: float, deadline: float | None,
                           previous: ProviderError | None) -> JobHandle | None:
        """Journal the intent, submit, journal the handle; ``None`` when the job ended (journaled) or was left."""
        route = job.route_record()
        self.journal.intent(job.key, job.label, job.labels, route=route,
                            attempts=attempt_dicts(previous.attempts) if previous is not None else ())
        self.emit("submitting", job.key, job.label)
        timeout = (self.options.timeout if previous is None or deadline is None else
                   max(_MINIMUM_COLLECT_SECONDS, deadline - time.monotonic()))
        submission = asyncio.ensure_future(submit_job(self.bridge, job, timeout=timeout, strict=self.options.strict,
                                                      after=previous))
        try:
            handle = await asyncio.shield(submission)
        except asyncio.CancelledError:
            await self._settle(job, submission)
            raise
        except ConfigurationError:
            self.journal.withdrawn(job.key)  # raised before any request: nothing can exist at the provider
            raise
        except BridgeError as error:
            timing = JobTiming(started_at, round(time.monotonic() - started, 6))
            self.finish(failure_record(job.key, counted_under(job.label, error, None), job.labels, error, timing,
                                       route=route))
            return None
        except Exception as error:  # a bug, not a provider's answer: the job may exist, so it stays undecided
            self.left.append(job.key)
            self.emit("error", job.key, job.label, message=f"{type(error).__name__}: {error}")
            return None
        self._accepted(job, handle)
        self.emit("submitted", job.key, handle.provider)
        return handle

    def _accepted(self, job: BatchJob, handle: JobHandle) -> None:
        """Journal an accepted job's handle under the provider that accepted it (with a route's trail so far)."""
        self.journal.submitted(job.key, handle.provider, handle.to_dict(), job.labels, route=job.route_record(),
                               attempts=attempt_dicts(handle.attempts))

    async def _settle(self, job: BatchJob, submission: asyncio.Future[JobHandle]) -> None:
        """The run was cancelled while ``job`` was being submitted: let the submission end (within the grace)
        so that an accepted job's handle reaches the journal."""
        try:
            handle = await asyncio.wait_for(submission, self.options.submit_grace)
        except GenerationTimeoutError as error:
            if error.handle is not None:
                self._accepted(job, error.handle)
            else:
                self.journal.withdrawn(job.key)
            return
        except BridgeError as error:
            if not getattr(error, "may_have_accepted", False):  # refused: nothing was accepted, a run may send it
                self.journal.withdrawn(job.key)
            return
        except (Exception, asyncio.CancelledError):  # out of time or a bug: the intent stays undecided
            return
        self._accepted(job, handle)

    async def resume(self, pending: PendingJob, job: BatchJob | None = None) -> None:
        started_at, started = now_iso(), time.monotonic()
        self.counts["resumed"] += 1
        self.emit("resuming", pending.key, pending.provider)
        try:
            handle = JobHandle.from_dict(pending.handle)
        except Exception as error:  # a damaged handle: keep it for a person to look at
            self.left.append(pending.key)
            self.emit("error", pending.key, pending.provider, message=f"unreadable handle in the journal: {error}")
            return
        deadline = None if self.options.timeout is None else started + self.options.timeout
        label = pending.provider if pending.route is None else ROUTE_LABEL
        never = await self.collect(pending.key, label, pending.labels, handle, started_at, started, deadline,
                                   resumed=True, route=pending.route, unconfirmed=not pending.accepted)
        if never is None:
            return
        # The provider never had the job (its request was lost before it arrived): nothing ran, nothing is billed.
        if job is not None:
            await self.submit(job)
            return
        self.left.append(pending.key)
        self.emit("unknown", pending.key, pending.provider, message=(
            "the provider never received this job's request, and the job is no longer in the input: not sent"))

    async def collect(self, key: str, label: str, labels: JobLabels, handle: JobHandle, started_at: str,
                      started: float, deadline: float | None, *, resumed: bool,
                      route: Mapping[str, Any] | None, unconfirmed: bool = False) -> ProviderError | None:
        """Collect ``handle`` and journal the outcome; for a routed job submitted in this run whose accepted job
        failed, return the error instead, for the route to go on from (``label``: the job's provider or route label);
        for an ``unconfirmed`` handle whose provider never had the job (``never_accepted``), return that error, for
        the job to be sent."""
        self.emit("collecting", key, handle.provider)
        left = None if deadline is None else max(_MINIMUM_COLLECT_SECONDS, deadline - time.monotonic())
        try:
            result = await self.bridge.result(handle, timeout=left, download=self.options.download)
        except ConfigurationError:
            raise
        except BridgeError as error:
            if unconfirmed and isinstance(error, ProviderError) and error.never_accepted:
                return error  # a handle journaled before the provider answered, for a request that never arrived
            if (route is not None and not resumed and isinstance(error, ProviderError)
                    and not isinstance(error, GenerationTimeoutError) and error.handle is None):
                return error  # a job still running (an error with its handle) ends here: the route would stop
            total = None if resumed else round(time.monotonic() - started, 6)
            record = failure_record(key, counted_under(label, error, handle), labels, error,
                                    JobTiming(started_at, total, resumed), handle=handle, route=route)
            if record.get("resumable") and unconfirmed:
                record["accepted"] = False  # still unconfirmed: the next run checks Runware took the tasks
            self.finish(record)
            return None
        except Exception as error:  # a bug: the handle is in the journal, so a later run can collect the job
            self.left.append(key)
            self.emit("error", key, handle.provider, message=f"{type(error).__name__}: {error}")
            return None
        total = None if resumed else round(time.monotonic() - started, 6)
        paths = save_images(result.images, self.out, key) if self.options.download else [None] * len(result.images)
        self.finish(success_record(key, labels, result, paths, JobTiming(started_at, total, resumed), route=route))
        return None

    async def run(self, jobs: Iterable[BatchJob]) -> BatchOutcome:
        self.journal.run_started()
        work = self.work(jobs)
        workers = [asyncio.ensure_future(self.worker(work)) for _ in range(self.options.concurrency)]
        try:
            await asyncio.gather(*workers)
        except BaseException as error:
            self.emit("stopping", "", "", message=(
                f"stopping: submissions on the wire get up to {self.options.submit_grace:g} s to be accepted and "
                "journaled; accepted jobs keep running and are collected by the next run"))
            if not isinstance(error, asyncio.CancelledError):
                # One worker failed (a missing key): gather leaves the others running, so stop them once. When
                # the run itself is cancelled, gather has already cancelled each worker, and cancelling again
                # would cut short the grace a worker gives its submission on the wire.
                for task in workers:
                    task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        return BatchOutcome(out=self.out, journal=self.journal.path, succeeded=self.counts["succeeded"],
                            failed=self.counts["failed"], skipped=self.counts["skipped"],
                            resumed=self.counts["resumed"], left=tuple(self.left))


async def arun_batch(jobs: Iterable[BatchJob], out: Path | str, *, bridge: AsyncBridge | None = None,
                     providers: Iterable[Provider] | None = None, options: BatchOptions | None = None,
                     on_event: EventCallback | None = None, state: State | None = None) -> BatchOutcome:
    """Run ``jobs`` through ``bridge`` (or a new ``AsyncBridge(providers, state=state)``: with a ``RedisState``,
    the shards of a batch share provider limits and breakers; docs/scaling.md), journaling into ``out``.

    ``out`` is created if needed and checked before anything is sent; its ``journal.jsonl`` decides what an
    earlier run already did (see the module docstring). Images go to ``out/images/``. Returns counts; the
    summary and report are written by :func:`~photomaker_bridge.batch.write_outputs`.
    """
    options = options or BatchOptions()
    folder = prepare_output(out)
    journaled = scan_journal(folder / JOURNAL_NAME)
    if bridge is None:
        async with AsyncBridge(providers=providers, state=state) as own:
            return await arun_batch(jobs, folder, bridge=own, options=options, on_event=on_event)
    with JournalWriter(folder / JOURNAL_NAME, fsync=options.fsync) as journal:
        return await _Run(bridge, folder, options, on_event, journaled, journal).run(jobs)


def run_in_new_loop(make: Callable[[], Awaitable[_T]]) -> _T:
    """Run the coroutine ``make()`` on a fresh event loop: in this thread when no loop runs here (Ctrl-C then
    cancels it gracefully, as ``asyncio.run`` does), else in a helper thread."""
    async def main() -> _T:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


def run_batch(jobs: Iterable[BatchJob], out: Path | str, *, providers: Iterable[Provider] | None = None,
              options: BatchOptions | None = None, on_event: EventCallback | None = None,
              state: State | None = None) -> BatchOutcome:
    """The sync entry point of :func:`arun_batch`: the same run on a private event loop, through an
    ``AsyncBridge`` over ``providers`` (default: every provider, keys from the environment) and ``state``.

    Ctrl-C stops it gracefully (submissions in flight are journaled) and raises ``KeyboardInterrupt``.
    """
    return run_in_new_loop(lambda: arun_batch(jobs, out, providers=providers, options=options,
                                              on_event=on_event, state=state))
