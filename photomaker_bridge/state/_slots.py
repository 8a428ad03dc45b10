"""Provider slots kept in a shared state: the client coordinator's slot questions, asked of a ``State``.

Uploads stay in the client (``Coordinator``'s own single-flight); slots become leases in the state, named
uniquely across processes. A call that finds the account full is told to ask again a moment later (a jittered
poll, ``POLL_SECONDS``) instead of waiting on a local future: the release that frees a slot may happen in
another process, which cannot wake this one (docs/scaling.md, "Waiting for a slot").
"""

from __future__ import annotations

import itertools
import random
import uuid
from typing import TYPE_CHECKING, Any, Final

from .._coordination import Coordinator
from .._coordination_operations import (
    DEFAULT_LEASE_SECONDS,
    AcquireSlot,
    BindSlot,
    Busy,
    CoordinationOperation,
    Lease,
    ReleaseSlot,
    RenewSlot,
)
from ..routing._state import StateOperation
from ._operations import BindLease, CountLeases, ReleaseLease, RenewLease, TakeSlots

if TYPE_CHECKING:
    import concurrent.futures

    from ._interface import State

__all__ = ["POLL_SECONDS", "SharedCoordinator"]

POLL_SECONDS: Final = (0.02, 0.25)
"""A waiting call asks again after a uniform draw within this range (seconds): jitter keeps waiters of several
processes from asking together, and the upper bound keeps a freed slot idle for at most a quarter second."""


class SharedCoordinator(Coordinator):
    """A client's coordinator whose slots live in ``state`` (thread-safe; sync and async)."""

    remote = True

    def __init__(self, state: State) -> None:
        super().__init__()
        self._state = state
        self._instance = uuid.uuid4().hex[:12]
        self._counter = itertools.count(1)
        self._lease_seconds: dict[str, float] = {}
        """account -> lease length, from the limits its slots were taken under (renewals and binds reuse it)."""

    def __repr__(self) -> str:
        return f"SharedCoordinator({self._state!r})"

    def lease_id(self, lease: Lease) -> str:
        """The state's name of ``lease``: unique across processes and clients."""
        return f"{self._instance}-{lease.number}"

    # -- the slot questions, as operations ----------------------------------------------------------------------

    def _operation(self, operation: CoordinationOperation) -> tuple[StateOperation, list[Lease]]:
        if isinstance(operation, AcquireSlot):
            self._lease_seconds[operation.account] = operation.limits.lease_seconds
            leases = [Lease(operation.account, next(self._counter)) for _ in range(operation.count)]
            return TakeSlots(operation.account, operation.limits,
                             tuple(self.lease_id(lease) for lease in leases)), leases
        if isinstance(operation, BindSlot):
            lease = operation.lease
            return BindLease(lease.account, self.lease_id(lease), operation.request_id,
                             self._lease_seconds.get(lease.account, DEFAULT_LEASE_SECONDS)), []
        if isinstance(operation, RenewSlot):
            return RenewLease(operation.account, operation.request_id,
                              self._lease_seconds.get(operation.account, DEFAULT_LEASE_SECONDS)), []
        assert isinstance(operation, ReleaseSlot)
        lease_id = None if operation.lease is None else self.lease_id(operation.lease)
        return ReleaseLease(operation.account, request_id=operation.request_id, lease_id=lease_id), []

    def _answer(self, operation: CoordinationOperation, leases: list[Lease], answer: Any) -> Any:
        if not isinstance(operation, AcquireSlot):
            return None
        if answer is True:
            return tuple(leases)
        assert isinstance(answer, Busy)
        if answer.retry_in is None:
            return Busy(answer.reason, random.uniform(*POLL_SECONDS))
        return answer

    def slot(self, operation: CoordinationOperation) -> Any:
        """Answer a slot operation (sync)."""
        question, leases = self._operation(operation)
        return self._answer(operation, leases, self._state.perform(question))

    async def aslot(self, operation: CoordinationOperation) -> Any:
        """Answer a slot operation (async)."""
        question, leases = self._operation(operation)
        return self._answer(operation, leases, await self._state.aperform(question))

    # -- the coordinator's sync entry points (Scope), now asking the state ----------------------------------------

    def try_acquire(self, operation: AcquireSlot,
                    ) -> tuple[Lease, ...] | Busy | concurrent.futures.Future[tuple[Lease, ...]]:
        """Leases now, or :class:`Busy` with when to ask again (never a future: see the module docstring)."""
        answer: tuple[Lease, ...] | Busy = self.slot(operation)
        return answer

    def bind(self, lease: Lease, request_id: str) -> None:
        """``lease`` now belongs to the job ``request_id``."""
        self.slot(BindSlot(lease, request_id))

    def renew(self, account: str, request_id: str) -> None:
        """The job ``request_id`` is still running: its lease starts over (in whichever process took it)."""
        self.slot(RenewSlot(account, request_id))

    def release(self, account: str, *, request_id: str | None = None, lease: Lease | None = None) -> None:
        """Give back the slot of the job ``request_id`` (taken by any process) or ``lease``."""
        self.slot(ReleaseSlot(account, request_id=request_id, lease=lease))

    def in_flight(self, account: str) -> int:
        """Slots of ``account`` taken now by every process sharing the state."""
        count: int = self._state.perform(CountLeases(account))
        return count
