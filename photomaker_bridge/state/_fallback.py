"""What ``RedisState`` keeps in this process for the times Redis does not answer (docs/scaling.md, "When Redis
fails"): the :class:`~photomaker_bridge.state.MemoryState` that answers in Redis's place, the names it answered
(so their follow-ups stay with it), and the *undo queue*.

A question whose answer was lost may still have run in Redis: a lease taken, a reservation made, a key claimed.
Their names are the client's own (lease ids, spend tokens, per-call claimers), so what each took can be given
back by name once Redis answers again; bookkeeping that could not be written (a release, a settle, a dropped
claim, a recorded handle) is written then too. Every queued operation is safe to run twice (``_scripts``).

Thread-safe: a ``Bridge`` shared by threads asks from all of them at once.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Final

import attrs

from ..routing._state import ReserveHedge, ReserveSpend, SettleHedge, SettleSpend, StateOperation
from ._memory import MemoryState
from ._operations import BindLease, ClaimJob, DropJob, ReleaseLease, RenewLease, TakeSlots, UpdateJob

__all__ = ["Fallback"]

UNDO_KEPT: Final = 10_000
"""Operations the undo queue holds at most (the oldest go first: what they took expires in Redis anyway)."""

_PRUNE_AT: Final = 4096
"""Local names kept before those past their time are dropped."""

_WRITTEN_LATER: Final = (BindLease, ReleaseLease, SettleSpend, SettleHedge, DropJob, UpdateJob)
"""Bookkeeping written to Redis once it answers again when it could not be written at once (a lease bound late
is still released by its job; one released meanwhile is not bound again)."""


class Fallback:
    """This process's side of a ``RedisState`` (see the module docstring)."""

    def __init__(self, *, reservation_seconds: float, journal_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.local = MemoryState()
        """Answers what Redis could not."""
        self._reservation_seconds = reservation_seconds
        self._journal_seconds = journal_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._names: dict[str, float] = {}
        """Lease ids, job ids, spend tokens and journal keys answered locally -> when to forget them."""
        self._bound: dict[str, str] = {}
        """Job id -> its local lease id (a release by job forgets both)."""
        self._undo: collections.deque[StateOperation] = collections.deque(maxlen=UNDO_KEPT)
        self._incidents = 0

    def incidents(self) -> int:
        """Questions Redis could not answer so far."""
        with self._lock:
            return self._incidents

    def count(self) -> None:
        """One more question Redis could not answer."""
        with self._lock:
            self._incidents += 1

    def is_local(self, operation: StateOperation) -> bool:
        """Whether ``operation`` follows up something answered locally (it then stays local)."""
        with self._lock:
            if not self._names:
                return False
            now = self._clock()
            for field in ("lease_id", "request_id", "token", "key"):
                name = getattr(operation, field, None)
                if name is not None and self._names.get(name, 0.0) > now:
                    return True
            return False

    def answer(self, operation: StateOperation, accounts: Callable[[str], str] | None) -> Any:
        """Answer ``operation`` from this process's memory, remembering what its follow-ups must find here."""
        answer = self.local.perform(operation, accounts)
        with self._lock:
            self._incidents += 1
            now = self._clock()
            if isinstance(operation, TakeSlots) and answer is True:
                for lease_id in operation.lease_ids:
                    self._names[lease_id] = now + operation.limits.lease_seconds
            elif isinstance(operation, BindLease | RenewLease):
                held = operation.lease_id if isinstance(operation, BindLease) else self._bound.get(operation.request_id)
                if held is not None and held in self._names:  # a job of a lease held in Redis stays there
                    self._bound[operation.request_id] = held
                    self._names[held] = self._names[operation.request_id] = now + operation.lease_seconds
            elif isinstance(operation, ReserveSpend | ReserveHedge) and answer is not None:
                self._names[answer] = now + self._reservation_seconds
            elif isinstance(operation, ClaimJob):
                self._names[operation.key] = now + self._journal_seconds
            elif isinstance(operation, ReleaseLease):
                released = operation.lease_id or self._bound.pop(operation.request_id or "", None)
                for name in (released, operation.request_id):
                    self._names.pop(name or "", None)
            elif isinstance(operation, SettleSpend | SettleHedge):
                self._names.pop(operation.token or "", None)
            elif isinstance(operation, DropJob):
                self._names.pop(operation.key, None)
            if len(self._names) > _PRUNE_AT:
                self._names = {name: until for name, until in self._names.items() if until > now}
                self._bound = {job: lease for job, lease in self._bound.items() if job in self._names}
        return answer

    def queue_undo(self, operation: StateOperation, made: Sequence[str], *, raised: bool) -> None:
        """``operation`` was sent to Redis but its answer was lost: queue what gives back what it may have taken
        there (``made``: the tokens its program named), or the bookkeeping itself to write later. A claim is given
        back only when the caller was refused (``raised``): a call that went on locally keeps it, so that a later
        call with its key waits for it instead of paying again."""
        undo: list[StateOperation] = []
        if isinstance(operation, TakeSlots):
            undo = [ReleaseLease(operation.account, lease_id=lease_id) for lease_id in operation.lease_ids]
        elif isinstance(operation, ReserveSpend) and made:
            undo = [SettleSpend(made[0], Decimal(0))]
        elif isinstance(operation, ReserveHedge) and made:
            undo = [SettleHedge(made[0], Decimal(0), Decimal(0))]
        elif isinstance(operation, ClaimJob) and raised and operation.replace_round is None:
            undo = [DropJob(operation.key, operation.owner)]
        elif isinstance(operation, SettleHedge) and operation.token is None and made:
            undo = [attrs.evolve(operation, token=made[0])]  # the same write, under the token already sent
        elif isinstance(operation, _WRITTEN_LATER):
            undo = [operation]
        if undo:
            with self._lock:
                self._undo.extend(undo)

    def take_undo(self) -> list[StateOperation]:
        """Everything queued (the caller sends it, and puts back what Redis did not take)."""
        with self._lock:
            pending = list(self._undo)
            self._undo.clear()
            return pending

    def has_undo(self) -> bool:
        """Whether something waits to be written to Redis."""
        return bool(self._undo)

    def put_back(self, operations: Sequence[StateOperation]) -> None:
        """Queue ``operations`` again, ahead of what was queued meanwhile."""
        with self._lock:
            self._undo.extendleft(reversed(operations))

    def after_fork(self) -> None:
        """In a forked child: new lock; the parent's local answers and undo queue stay the parent's."""
        self._lock = threading.Lock()
        self._names, self._bound = {}, {}
        self._undo.clear()
        self.local.after_fork()
