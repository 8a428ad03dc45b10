"""What the calls of one client share: provider limits (slots for jobs in flight, a per-minute rate) and uploads
done once per distinct content (single-flight).

Flows stay pure: they *yield* the operations below, and the drivers (``_http.py``) hand them to the client's
:class:`Coordinator`, which answers at once or makes the caller wait — a thread of a ``Bridge`` blocks on a
``concurrent.futures.Future``, a task of an ``AsyncBridge`` awaits the same future through
``asyncio.wrap_future`` — so one implementation serves both clients, and a waiter is woken by the release it
waits for, never by polling. Each driver run opens a :class:`Scope`; when the run ends, the scope gives back
what the run took and did not hand over (an upload it never finished, a slot not bound to any job).

Slots are *leases*: a slot taken for a job-creating step is bound to the job's id once the provider accepts it,
and released when the job ends (a flow saw it finish, or cancelled it) — or, if nobody collects the job, when the
lease expires (after a few times the job's expected length: by then the provider has finished it). A lease is
renewed whenever its job is polled. A call takes every slot it needs at once (all or nothing), so that calls
never hold some slots while waiting for more (two such calls would wait for each other); waiters are served
first come, first served. Rates use the moving-window limiter of the ``limits`` library (in memory here; the
same library has Redis storage for several processes).

Why not a library for the slots: ``limits`` and ``pyrate-limiter`` count rates, not jobs in flight; an
``asyncio.Semaphore`` cannot be shared with threads, nor outlive the call that took it (a submitted job holds
its slot until someone collects it), nor expire.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import itertools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from ._coordination_operations import (
    AcquireSlot,
    BindSlot,
    Busy,
    ClaimUpload,
    CoordinationOperation,
    FinishUpload,
    ForgetUpload,
    Lease,
    Limits,
    ReleaseSlot,
    RenewSlot,
    UploadTicket,
)

if TYPE_CHECKING:
    import limits.strategies

__all__ = [
    "AcquireSlot",
    "BindSlot",
    "Busy",
    "ClaimUpload",
    "CoordinationOperation",
    "Coordinator",
    "FinishUpload",
    "ForgetUpload",
    "Lease",
    "Limits",
    "ReleaseSlot",
    "RenewSlot",
    "Scope",
    "UploadTicket",
]

@attrs.define
class _Account:
    name: str
    limits: Limits
    leases: dict[int, float] = attrs.field(factory=dict)
    """lease number -> expiry (monotonic seconds)."""
    bound: dict[str, int] = attrs.field(factory=dict)
    """job id -> lease number."""
    waiters: collections.deque[tuple[concurrent.futures.Future[tuple[Lease, ...]], int]] = attrs.field(
        factory=collections.deque)
    """Calls waiting for slots, with how many each needs, first come first served."""


class Coordinator:
    """The shared state of one client's calls (thread-safe). See the module docstring."""

    remote: bool = False
    """Whether slots live elsewhere (``photomaker_bridge.state``): an async run then asks through :meth:`aslot`."""

    async def aslot(self, operation: CoordinationOperation) -> Any:
        """Answer a slot operation without blocking the event loop (only where :attr:`remote`)."""
        raise TypeError(f"{type(self).__name__} answers slots in memory")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._numbers = itertools.count(1)
        self.uploads: dict[str, str] = {}
        """``"<provider>:<sha256>"`` -> the URL or id its upload returned (lives as long as the client)."""
        self._flights: dict[str, tuple[UploadTicket, concurrent.futures.Future[str | None]]] = {}
        self._accounts: dict[str, _Account] = {}
        self._rates: limits.strategies.MovingWindowRateLimiter | None = None
        """Created on first use: its storage starts a thread, which a client without rate limits does not need."""
        self.peak_in_flight: collections.Counter[str] = collections.Counter()
        """The most slots each account ever had taken at once (for tests and benchmarks)."""

    # -- the answers --------------------------------------------------------------------------------------------

    def scope(self) -> Scope:
        """A new scope for one driver run."""
        return Scope(self)

    def in_flight(self, account: str) -> int:
        """Slots of ``account`` taken now (expired leases are not counted)."""
        with self._lock:
            entry = self._accounts.get(account)
            if entry is None:
                return 0
            self._reap(entry)
            return len(entry.leases)

    def _account(self, account: str, wanted: Limits) -> _Account:
        entry = self._accounts.get(account)
        if entry is None:
            entry = self._accounts[account] = _Account(account, wanted)
        elif entry.limits != wanted:
            entry.limits = wanted
        return entry

    def _reap(self, entry: _Account) -> None:
        now = self._clock()
        expired = [number for number, expiry in entry.leases.items() if expiry <= now]
        for number in expired:
            self._drop(entry, number)

    def _drop(self, entry: _Account, number: int) -> None:
        """Free lease ``number`` and hand its slot to the first waiter still waiting."""
        if entry.leases.pop(number, None) is None:
            return
        for job, bound in list(entry.bound.items()):
            if bound == number:
                del entry.bound[job]
        self._serve(entry)

    def _serve(self, entry: _Account) -> None:
        cap = entry.limits.concurrency
        while entry.waiters:
            waiter, count = entry.waiters[0]
            if waiter.done():
                entry.waiters.popleft()  # gave up meanwhile
                continue
            if cap is not None and len(entry.leases) + count > cap:
                return  # the first in line waits for enough slots; nobody overtakes it
            entry.waiters.popleft()
            if not waiter.set_running_or_notify_cancel():
                continue
            waiter.set_result(self._grant(entry, count))

    def _grant(self, entry: _Account, count: int) -> tuple[Lease, ...]:
        leases = []
        for _ in range(count):
            number = next(self._numbers)
            entry.leases[number] = self._clock() + entry.limits.lease_seconds
            leases.append(Lease(entry.name, number))
        self.peak_in_flight[entry.name] = max(self.peak_in_flight[entry.name], len(entry.leases))
        return tuple(leases)

    def _rate_wait(self, account: str, wanted: Limits, count: int) -> float | None:
        """Seconds until the per-minute window allows ``count`` hits (``None``: it allowed them now, and counted
        them)."""
        if wanted.per_minute is None:
            return None
        # Imported on first use: limits (with its deprecated/wrapt imports) costs ~30 ms, and most clients set
        # no per-minute rate (docs/architecture.md, "Imports").
        import limits
        import limits.storage
        import limits.strategies

        if self._rates is None:
            self._rates = limits.strategies.MovingWindowRateLimiter(limits.storage.MemoryStorage())
        item = limits.RateLimitItemPerSecond(wanted.per_minute, max(1, round(wanted.rate_window)))
        if self._rates.hit(item, account, cost=count):
            return None
        reset, _ = self._rates.get_window_stats(item, account)
        return max(reset - time.time(), 0.01)

    def try_acquire(self, operation: AcquireSlot,
                    ) -> tuple[Lease, ...] | Busy | concurrent.futures.Future[tuple[Lease, ...]]:
        """Leases now, :class:`Busy`, or (``wait=True`` and the account is full) a future granted on release."""
        with self._lock:
            entry = self._account(operation.account, operation.limits)
            self._reap(entry)
            cap = entry.limits.concurrency
            if cap is not None and (len(entry.leases) + operation.count > cap or entry.waiters):
                if not operation.wait:
                    return Busy(f"{len(entry.leases)} jobs in flight (limit {cap})")
                waiter: concurrent.futures.Future[tuple[Lease, ...]] = concurrent.futures.Future()
                entry.waiters.append((waiter, operation.count))
                return waiter
            retry_in = self._rate_wait(operation.account, entry.limits, operation.count)
            if retry_in is not None:
                return Busy(f"{entry.limits.per_minute} job submissions a minute", retry_in)
            return self._grant(entry, operation.count)

    def after_wait(self, operation: AcquireSlot, leases: tuple[Lease, ...]) -> tuple[Lease, ...] | Busy:
        """Slots granted to a waiter still need the per-minute window; when it is full they are given back (the
        caller waits for the window, then asks again)."""
        with self._lock:
            entry = self._account(operation.account, operation.limits)
            retry_in = self._rate_wait(operation.account, entry.limits, operation.count)
            if retry_in is None:
                return leases
            for lease in leases:
                self._drop(entry, lease.number)
            return Busy(f"{entry.limits.per_minute} job submissions a minute", retry_in)

    def withdraw(self, account: str, waiter: concurrent.futures.Future[tuple[Lease, ...]]) -> None:
        """A waiter gave up (deadline, cancellation): forget it, and give back slots granted meanwhile."""
        with self._lock:
            entry = self._accounts.get(account)
            if entry is None:
                return
            if waiter.cancel():
                self._serve(entry)  # it may have been first in line, holding others back
                return
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                for lease in waiter.result():
                    self._drop(entry, lease.number)

    def bind(self, lease: Lease, request_id: str) -> None:
        """``lease`` now belongs to the job ``request_id``; its expiry starts over."""
        with self._lock:
            entry = self._accounts.get(lease.account)
            if entry is None or lease.number not in entry.leases:
                return
            for job, number in list(entry.bound.items()):
                if number == lease.number:
                    del entry.bound[job]
            entry.bound[request_id] = lease.number
            entry.leases[lease.number] = self._clock() + entry.limits.lease_seconds

    def renew(self, account: str, request_id: str) -> None:
        """The job ``request_id`` is still running: its lease starts over."""
        with self._lock:
            entry = self._accounts.get(account)
            number = None if entry is None else entry.bound.get(request_id)
            if entry is not None and number is not None and number in entry.leases:
                entry.leases[number] = self._clock() + entry.limits.lease_seconds

    def release(self, account: str, *, request_id: str | None = None, lease: Lease | None = None) -> None:
        """Give back the slot of the job ``request_id`` (if this client holds one) or ``lease``."""
        with self._lock:
            entry = self._accounts.get(account)
            if entry is None:
                return
            number = lease.number if lease is not None else entry.bound.get(request_id or "")
            if number is not None:
                self._drop(entry, number)

    # -- uploads ----------------------------------------------------------------------------------------------

    def claim(self, key: str) -> str | UploadTicket | concurrent.futures.Future[str | None]:
        """The cached URL, a ticket (this caller uploads), or the future of the upload in flight."""
        with self._lock:
            if key in self.uploads:
                return self.uploads[key]
            flight = self._flights.get(key)
            if flight is not None:
                return flight[1]
            ticket = UploadTicket(key, next(self._numbers))
            self._flights[key] = (ticket, concurrent.futures.Future())
            return ticket

    def finish(self, ticket: UploadTicket, url: str | None) -> None:
        """End the upload of ``ticket``; waiters get ``url`` (or ``None`` when it failed, and try themselves)."""
        with self._lock:
            flight = self._flights.get(ticket.key)
            if flight is None or flight[0].number != ticket.number:
                return
            del self._flights[ticket.key]
            if url is not None:
                self.uploads[ticket.key] = url
        flight[1].set_result(url)

    def forget(self, key: str, url: str) -> None:
        """Drop the cached upload ``key`` if it is still ``url``."""
        with self._lock:
            if self.uploads.get(key) == url:
                del self.uploads[key]


class Scope:
    """One driver run's use of the coordinator: performs its operations and, at :meth:`close`, gives back what
    the run took and never handed over (unfinished upload tickets, slots not bound to a job to keep)."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator
        self._tickets: list[UploadTicket] = []
        self._leases: list[Lease] = []

    def perform(self, operation: CoordinationOperation, remaining: float | None) -> Any:
        """Answer ``operation`` (sync), waiting at most ``remaining`` seconds (``None``: no limit)."""
        immediate, future = self._start(operation)
        if future is None:
            return immediate
        try:
            outcome = future.result(timeout=None if remaining is None else max(remaining, 0.0))
        except concurrent.futures.TimeoutError:
            self._give_up(operation, future)
            return None
        except BaseException:
            self._give_up(operation, future)
            raise
        return self._after(operation, outcome)

    async def aperform(self, operation: CoordinationOperation, remaining: float | None) -> Any:
        """Answer ``operation`` (async), waiting at most ``remaining`` seconds (``None``: no limit)."""
        if self.coordinator.remote and isinstance(operation, AcquireSlot | BindSlot | RenewSlot | ReleaseSlot):
            answer = await self.coordinator.aslot(operation)
            self._track(operation, answer)
            return answer
        immediate, future = self._start(operation)
        if future is None:
            return immediate
        try:
            # shield: a timeout or a cancellation must not cancel the shared future itself (for uploads, other
            # calls wait on it too); _give_up settles this caller's part.
            wrapped = asyncio.shield(asyncio.wrap_future(future))
            outcome = await (wrapped if remaining is None else asyncio.wait_for(wrapped, max(remaining, 0.0)))
        except TimeoutError:
            self._give_up(operation, future)
            return None
        except BaseException:
            self._give_up(operation, future)
            raise
        return self._after(operation, outcome)

    def _start(self, operation: CoordinationOperation) -> tuple[Any, concurrent.futures.Future[Any] | None]:
        coordinator = self.coordinator
        if isinstance(operation, ClaimUpload):
            claimed = coordinator.claim(operation.key)
            if isinstance(claimed, concurrent.futures.Future):
                if not operation.wait:
                    return Busy("another call is uploading the same photos"), None
                return None, claimed
            if isinstance(claimed, UploadTicket):
                self._tickets.append(claimed)
            return claimed, None
        if isinstance(operation, FinishUpload):
            coordinator.finish(operation.ticket, operation.url)
            if operation.ticket in self._tickets:
                self._tickets.remove(operation.ticket)
            return None, None
        if isinstance(operation, ForgetUpload):
            coordinator.forget(operation.key, operation.url)
            return None, None
        if isinstance(operation, AcquireSlot):
            answer = coordinator.try_acquire(operation)
            if isinstance(answer, concurrent.futures.Future):
                return None, answer
            self._track(operation, answer)
            return answer, None
        if isinstance(operation, BindSlot):
            coordinator.bind(operation.lease, operation.request_id)
            self._track(operation, None)
            return None, None
        if isinstance(operation, RenewSlot):
            coordinator.renew(operation.account, operation.request_id)
            return None, None
        if isinstance(operation, ReleaseSlot):
            coordinator.release(operation.account, request_id=operation.request_id, lease=operation.lease)
            return None, None
        raise TypeError(f"the coordinator cannot perform {operation!r}")

    def _track(self, operation: CoordinationOperation, answer: Any) -> None:
        """Remember the leases the run took, and forget those handed over with a job."""
        if isinstance(operation, AcquireSlot) and isinstance(answer, tuple):
            self._leases.extend(answer)
        elif isinstance(operation, BindSlot) and operation.keep and operation.lease in self._leases:
            self._leases.remove(operation.lease)

    def _after(self, operation: CoordinationOperation, outcome: Any) -> Any:
        if isinstance(operation, ClaimUpload):
            # The other call's upload ended: its URL, or (it failed) claim again, maybe becoming the uploader.
            return outcome if outcome is not None else self._start(ClaimUpload(operation.key, wait=False))[0]
        assert isinstance(operation, AcquireSlot)
        answer = self.coordinator.after_wait(operation, outcome)
        if isinstance(answer, tuple):
            self._leases.extend(answer)
        return answer

    def _give_up(self, operation: CoordinationOperation, future: concurrent.futures.Future[Any]) -> None:
        if isinstance(operation, AcquireSlot):
            self.coordinator.withdraw(operation.account, future)

    def close(self) -> None:
        """Give back what the run took and did not hand over."""
        for ticket in self._tickets:
            self.coordinator.finish(ticket, None)
        self._tickets.clear()
        for lease in self._leases:
            self.coordinator.release(lease.account, lease=lease)
        self._leases.clear()

    async def aclose(self) -> None:
        """:meth:`close` for an async run: remote slots are given back without blocking the event loop."""
        if self.coordinator.remote:
            leases, self._leases = self._leases, []
            for lease in leases:
                await self.coordinator.aslot(ReleaseSlot(lease.account, lease=lease))
        self.close()
