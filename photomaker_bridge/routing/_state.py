"""What every routed call of one client shares: circuit breakers, learned numbers and spend, behind one small
interface (docs/routing.md, "Router state").

A route never reaches into the state: it *asks*, with the operations below, each answered atomically (a
read-modify-write under one lock here; one script on a shared backend later). ``perform`` answers for the sync
client, ``aperform`` for the async one, so a backend over a network can serve both without a thread per call.

* breakers: :class:`Admit` (may a call go now? an open breaker past its cool-down hands out its one probe),
  :class:`Record` (an outcome: breaker transition, latency, queue wait and price samples), :class:`Reset`;
* numbers: :class:`ReadNumbers` (learned median total time, 95th percentile queue wait, median price per unit of
  work, per provider);
* spend: :class:`ReserveSpend` / :class:`SettleSpend` (the client's budget: reserve an attempt's estimate before
  sending it, settle with what it cost) and :class:`ReserveHedge` / :class:`SettleHedge` (the hedge spend cap).
"""

from __future__ import annotations

import collections
import itertools
import math
import statistics
import threading
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, Protocol

import attrs

from ._breaker import Breaker, BreakerSettings, BreakerStatus, admit, record

__all__ = [
    "Admit",
    "MemoryRouterState",
    "ProviderNumbers",
    "ReadNumbers",
    "Record",
    "ReserveHedge",
    "ReserveSpend",
    "Reset",
    "RouterState",
    "SettleHedge",
    "SettleSpend",
    "StateOperation",
    "numbers_from",
]

SAMPLES = 200
"""Samples of each kind kept per provider (the most recent ones): enough for a stable 95th percentile."""


class StateOperation:
    """Base of the questions a route asks its :class:`RouterState`."""


@attrs.frozen
class Admit(StateOperation):
    """May a call go to ``provider`` at ``now`` (wall seconds)? Answers an ``Admission`` (``_breaker``); a probe
    is handed to one caller only."""

    provider: str
    now: float
    settings: BreakerSettings


@attrs.frozen
class Record(StateOperation):
    """The outcome of one attempt on ``provider``: the breaker's transition (``ok``; a failure ``counts`` against
    it or not; ``disable`` takes the provider out until reset) and, for a success, the samples it teaches. Answers
    the breaker's status afterwards."""

    provider: str
    now: float
    settings: BreakerSettings
    ok: bool
    counts: bool = True
    disable: str | None = None
    total_seconds: float | None = None
    queue_seconds: float | None = None
    unit_price: Decimal | None = None
    """USD per unit of work (image × step × megapixel) this attempt cost."""


@attrs.frozen
class Reset(StateOperation):
    """Forget ``provider``'s breaker (closed again, counts cleared); the learned numbers stay."""

    provider: str


@attrs.frozen
class ProviderNumbers:
    """What the state learned about one provider (``None`` where it has no sample yet)."""

    p50_seconds: float | None = None
    """Median total time of successful attempts."""
    p95_seconds: float | None = None
    """95th percentile of the same."""
    p95_queue_seconds: float | None = None
    """95th percentile of the queue wait results reported."""
    unit_price: Decimal | None = None
    """Median USD per unit of work (image × step × megapixel) of past results' costs."""
    samples: int = 0
    """Successful attempts learned from."""
    queue_samples: int = 0
    """Queue waits learned from."""
    breaker: BreakerStatus = "closed"
    """The breaker's status."""


@attrs.frozen
class ReadNumbers(StateOperation):
    """The :class:`ProviderNumbers` of each of ``providers``: answers ``{name: numbers}``."""

    providers: tuple[str, ...]


@attrs.frozen
class ReserveSpend(StateOperation):
    """Reserve ``amount`` of the client's budget ``limit`` for an attempt about to be sent. Answers a token, or
    ``None`` when the spend so far plus what is reserved plus ``amount`` would pass ``limit``."""

    amount: Decimal
    limit: Decimal


@attrs.frozen
class SettleSpend(StateOperation):
    """The attempt of ``token`` cost ``amount``: the reservation becomes that spend."""

    token: str
    amount: Decimal


@attrs.frozen
class ReserveHedge(StateOperation):
    """Reserve ``amount`` (what a hedge may cost at worst) of the hedge allowance: allowed while the hedge spend
    so far plus what hedges in flight may cost plus ``amount`` stays within ``ratio`` × what hedged routes spent on
    results (settled, plus the expected result cost of the calls with a hedge in flight, plus ``base``: this call's
    own). Answers a token or ``None``."""

    amount: Decimal
    ratio: Decimal
    base: Decimal


@attrs.frozen
class SettleHedge(StateOperation):
    """A call of a hedged route ended: its result cost ``base``, its hedge losers ``extra``; ``token`` (or
    ``None`` when it sent no hedge) releases its reservation."""

    token: str | None
    extra: Decimal
    base: Decimal


class RouterState(Protocol):
    """Where the routed calls of a client keep what they share. ``MemoryRouterState`` is the default; a shared
    backend implements the same two methods for every operation of this module."""

    def perform(self, operation: StateOperation) -> Any:
        """Answer ``operation`` atomically (sync client)."""

    async def aperform(self, operation: StateOperation) -> Any:
        """Answer ``operation`` atomically (async client)."""


@attrs.define
class _Provider:
    breaker: Breaker = attrs.field(factory=Breaker)
    seconds: collections.deque[float] = attrs.field(factory=lambda: collections.deque(maxlen=SAMPLES))
    queue: collections.deque[float] = attrs.field(factory=lambda: collections.deque(maxlen=SAMPLES))
    prices: collections.deque[Decimal] = attrs.field(factory=lambda: collections.deque(maxlen=SAMPLES))


def percentile(values: Iterable[float], fraction: float) -> float | None:
    """The nearest-rank percentile of ``values`` (``fraction`` in (0, 1]), or ``None`` without values."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


class MemoryRouterState:
    """The router state of one process, in memory (thread-safe; the default of every client).

    :meth:`seed` teaches it numbers up front (tests, or numbers measured elsewhere).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._providers: dict[str, _Provider] = collections.defaultdict(_Provider)
        self._spent = Decimal(0)
        self._reserved: dict[str, Decimal] = {}
        self._hedge_base = Decimal(0)
        self._hedge_extra = Decimal(0)
        self._hedge_reserved: dict[str, tuple[Decimal, Decimal]] = {}
        """token -> (worst-case extra, expected result cost) of the hedges in flight."""
        self._tokens = itertools.count(1)

    def __repr__(self) -> str:
        return f"MemoryRouterState(spent={self._spent}, providers={sorted(self._providers)!r})"

    # -- the interface ------------------------------------------------------------------------------------------

    def perform(self, operation: StateOperation) -> Any:
        """Answer ``operation`` atomically."""
        with self._lock:
            return self._answer(operation)

    async def aperform(self, operation: StateOperation) -> Any:
        """Answer ``operation`` atomically (in memory nothing waits, so this never yields to the loop)."""
        return self.perform(operation)

    # -- conveniences for people ------------------------------------------------------------------------------

    def seed(self, provider: str, *, seconds: Iterable[float] = (), queue_seconds: Iterable[float] = (),
             unit_prices: Iterable[Decimal | float | str] = ()) -> None:
        """Teach ``provider``'s numbers as if results had reported them: total seconds, queue waits, USD per unit
        of work (image × step × megapixel)."""
        with self._lock:
            numbers = self._providers[provider]
            numbers.seconds.extend(float(value) for value in seconds)
            numbers.queue.extend(float(value) for value in queue_seconds)
            numbers.prices.extend(Decimal(str(value)) for value in unit_prices)

    def numbers(self, provider: str) -> ProviderNumbers:
        """What is known of ``provider`` now."""
        return self.perform(ReadNumbers((provider,)))[provider]  # type: ignore[no-any-return]

    def breaker(self, provider: str) -> Breaker:
        """``provider``'s breaker now."""
        with self._lock:
            return self._providers[provider].breaker

    @property
    def spent(self) -> Decimal:
        """What the client's calls spent (settled costs; estimates where no cost was reported)."""
        with self._lock:
            return self._spent

    @property
    def hedge_spend(self) -> tuple[Decimal, Decimal]:
        """``(extra, base)``: what hedge losers cost, and what the results of hedged routes cost."""
        with self._lock:
            return self._hedge_extra, self._hedge_base

    def after_fork(self) -> None:
        """In a forked child: a new lock, and no reservations of the parent's calls (they do not run here)."""
        self._lock = threading.Lock()
        self._reserved.clear()
        self._hedge_reserved.clear()

    # -- answers ----------------------------------------------------------------------------------------------

    def _answer(self, operation: StateOperation) -> Any:
        if isinstance(operation, Admit):
            state = self._providers[operation.provider]
            state.breaker, admission = admit(state.breaker, operation.now, operation.settings)
            return admission
        if isinstance(operation, Record):
            return self._record(operation)
        if isinstance(operation, Reset):
            self._providers[operation.provider].breaker = Breaker()
            return None
        if isinstance(operation, ReadNumbers):
            return {name: self._numbers(name) for name in operation.providers}
        if isinstance(operation, ReserveSpend):
            if self._spent + sum(self._reserved.values(), Decimal(0)) + operation.amount > operation.limit:
                return None
            return self._reserve(self._reserved, operation.amount)
        if isinstance(operation, SettleSpend):
            self._reserved.pop(operation.token, None)
            self._spent += operation.amount
            return None
        if isinstance(operation, ReserveHedge):
            pending = list(self._hedge_reserved.values())
            allowance = operation.ratio * (self._hedge_base + sum((base for _, base in pending), operation.base))
            held = self._hedge_extra + sum((amount for amount, _ in pending), Decimal(0))
            if held + operation.amount > allowance:
                return None
            token = f"r{next(self._tokens)}"
            self._hedge_reserved[token] = (operation.amount, operation.base)
            return token
        if isinstance(operation, SettleHedge):
            if operation.token is not None:
                self._hedge_reserved.pop(operation.token, None)
            self._hedge_extra += operation.extra
            self._hedge_base += operation.base
            return None
        raise TypeError(f"MemoryRouterState cannot answer {operation!r}")

    def _reserve(self, into: dict[str, Decimal], amount: Decimal) -> str:
        token = f"r{next(self._tokens)}"
        into[token] = amount
        return token


    def _record(self, operation: Record) -> BreakerStatus:
        state = self._providers[operation.provider]
        state.breaker = record(state.breaker, operation.now, operation.settings, ok=operation.ok,
                               counts=operation.counts, disable=operation.disable)
        if operation.ok:
            if operation.total_seconds is not None:
                state.seconds.append(operation.total_seconds)
            if operation.queue_seconds is not None:
                state.queue.append(operation.queue_seconds)
            if operation.unit_price is not None:
                state.prices.append(operation.unit_price)
        return state.breaker.status

    def _numbers(self, name: str) -> ProviderNumbers:
        state = self._providers[name]
        return numbers_from(state.breaker, state.seconds, state.queue, state.prices)


def numbers_from(breaker: Breaker, seconds: Sequence[float], queue: Sequence[float],
                 prices: Sequence[Decimal]) -> ProviderNumbers:
    """A provider's :class:`ProviderNumbers` from its breaker and its samples (every backend computes them here)."""
    ordered = sorted(prices)
    return ProviderNumbers(
        p50_seconds=statistics.median(seconds) if seconds else None,
        p95_seconds=percentile(seconds, 0.95), p95_queue_seconds=percentile(queue, 0.95),
        unit_price=ordered[(len(ordered) - 1) // 2] if ordered else None, samples=len(seconds),
        queue_samples=len(queue), breaker=breaker.status)
