"""``MemoryState``: the state of one process, in memory — today's in-memory pieces behind the state interface.

Provider slots are the client coordinator's (``_coordination.Coordinator``: first come, first served, a waiter
woken by the release it waits for), breakers, numbers and spend are a ``MemoryRouterState``, and the job journal
is a dictionary. Clients given the same ``MemoryState`` share all of it; a client given none has its own, as
before this interface existed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs

from .._coordination import Coordinator
from .._coordination_operations import AcquireSlot, Lease
from ..routing._state import MemoryRouterState, StateOperation
from ._interface import State
from ._operations import (
    BindLease,
    ClaimJob,
    CountLeases,
    DropJob,
    JobEntry,
    ReadJob,
    ReleaseLease,
    RenewLease,
    TakeSlots,
    UpdateJob,
)

__all__ = ["MemoryState"]

_JOURNAL_OPERATIONS = (ClaimJob, UpdateJob, ReadJob, DropJob)
_SLOT_OPERATIONS = (TakeSlots, BindLease, RenewLease, ReleaseLease, CountLeases)


class MemoryState(State):
    """Everything in this process's memory (thread-safe). The default of every client."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.router = MemoryRouterState()
        """Breakers, learned numbers and spend."""
        self.slots = Coordinator(clock)
        """Provider slots (and, for clients using it, their uploads)."""
        self._leases: dict[str, Lease] = {}
        self._jobs: dict[str, tuple[JobEntry, float, float]] = {}
        """idempotency key -> (entry, claim deadline, forget at), in ``clock()`` seconds."""
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"MemoryState(jobs={len(self._jobs)}, {self.router!r})"

    def perform(self, operation: StateOperation, accounts: Callable[[str], str] | None = None) -> Any:
        """Answer ``operation`` atomically (providers are named by their name here: one process, one account
        per provider name)."""
        if isinstance(operation, _SLOT_OPERATIONS):
            return self._slot(operation)
        if isinstance(operation, _JOURNAL_OPERATIONS):
            with self._lock:
                return self._journal(operation)
        return self.router.perform(operation)

    async def aperform(self, operation: StateOperation, accounts: Callable[[str], str] | None = None) -> Any:
        """Answer ``operation`` (nothing here waits, so this never yields to the loop)."""
        return self.perform(operation, accounts)

    def coordinator(self) -> Coordinator:
        """The one coordinator of every client using this state."""
        return self.slots

    def router_state(self, accounts: Callable[[str], str]) -> MemoryRouterState:
        """The in-memory router state itself (it keys providers by name)."""
        return self.router

    def after_fork(self) -> None:
        """In a forked child (once, whichever client asks first): new locks, no slots or reservations of the
        parent's calls; uploads and learned numbers stay known."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._lock = threading.Lock()
        uploads = dict(self.slots.uploads)
        self.slots = Coordinator(self._clock)
        self.slots.uploads.update(uploads)
        self._leases.clear()
        self.router.after_fork()

    # -- answers ----------------------------------------------------------------------------------------------

    def _slot(self, operation: StateOperation) -> Any:
        if isinstance(operation, TakeSlots):
            answer = self.slots.try_acquire(AcquireSlot(operation.account, operation.limits, wait=False,
                                                        count=len(operation.lease_ids)))
            if not isinstance(answer, tuple):
                return answer  # Busy (wait=False never answers a future)
            with self._lock:
                self._leases.update(zip(operation.lease_ids, answer, strict=True))
            return True
        if isinstance(operation, BindLease):
            lease = self._leases.get(operation.lease_id)
            if lease is not None:
                self.slots.bind(lease, operation.request_id)
        elif isinstance(operation, RenewLease):
            self.slots.renew(operation.account, operation.request_id)
        elif isinstance(operation, ReleaseLease):
            with self._lock:
                lease = None if operation.lease_id is None else self._leases.pop(operation.lease_id, None)
            if lease is not None or operation.request_id is not None:
                self.slots.release(operation.account, request_id=operation.request_id, lease=lease)
        elif isinstance(operation, CountLeases):
            return self.slots.in_flight(operation.account)
        return None

    def _journal(self, operation: StateOperation) -> Any:
        now = self._clock()
        self._jobs = {key: value for key, value in self._jobs.items() if value[2] > now} if len(
            self._jobs) > 1024 else self._jobs
        if isinstance(operation, ClaimJob):
            known = self._jobs.get(operation.key)
            job_round = 1
            if known is not None and known[2] > now:
                entry, claim_until, _ = known
                if entry.status == "claimed" and entry.owner == operation.owner:
                    return attrs.evolve(entry, status="new")
                if entry.status != "claimed" and entry.round == operation.replace_round:
                    job_round = entry.round + 1  # taken over from its failed job
                elif entry.status == "claimed" and claim_until <= now:
                    return attrs.evolve(entry, claim_expired=True)
                else:
                    return entry
            claimed = JobEntry("claimed", owner=operation.owner, round=job_round)
            self._jobs[operation.key] = (claimed, now + operation.claim_seconds, now + operation.keep_seconds)
            return attrs.evolve(claimed, status="new")
        if isinstance(operation, UpdateJob):
            previous = self._jobs.get(operation.key)
            old = previous[0] if previous is not None else JobEntry("claimed")
            entry = JobEntry(operation.status, handle=operation.handle if operation.handle is not None else old.handle,
                             cost=operation.cost if operation.cost is not None else old.cost, owner=old.owner,
                             round=old.round)
            self._jobs[operation.key] = (entry, previous[1] if previous else now, now + operation.keep_seconds)
            return None
        if isinstance(operation, ReadJob):
            known = self._jobs.get(operation.key)
            return known[0] if known is not None and known[2] > now else None
        assert isinstance(operation, DropJob)
        known = self._jobs.get(operation.key)
        if known is not None and known[0].owner == operation.owner and known[0].status == "claimed":
            del self._jobs[operation.key]
        return None
