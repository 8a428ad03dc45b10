"""How a routed call chooses its next candidate: the checks of each candidate in its rank order, cheapest first and
the breaker last (a probe handed out must be used), the skip lines of the trail, the wait for a half-open breaker,
and the error when nothing is left (``_flow`` runs the attempts)."""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Literal

import attrs

from .._http import Event, Flow, Wait
from ..errors import (
    BridgeError,
    BudgetExceededError,
    GenerationTimeoutError,
    InvalidRequestError,
    ProviderError,
    ProviderUnavailableError,
    StateUnavailableError,
)
from ..jobs import JobHandle
from ..plan import Plan
from ..providers.base import Provider
from ..request import PhotoMakerRequest
from ..result import Attempt
from ._breaker import Admission, BreakerSettings
from ._choice import Candidate, make_candidate, order
from ._route import Route
from ._state import (
    Admit,
    ProviderNumbers,
    ReadNumbers,
    ReserveHedge,
    ReserveSpend,
    SettleHedge,
    SettleSpend,
)

__all__ = ["Choice", "RouteCall", "RouteChoices"]

Scope = Literal["call", "client"]

_MAX_WAIT_SLICE = 1.0
"""Seconds between two looks at the breakers while every candidate's is open (another call's probe may close
one sooner than its cool-down says)."""


@attrs.frozen
class RouteCall:
    """Everything one routed call needs, from the client."""

    route: Route
    request: PhotoMakerRequest
    adapters: Mapping[str, Provider]
    strict: bool = False
    mode: Literal["generate", "submit"] = "generate"
    direct: bool = False
    """A plain provider name: one attempt, no breaker, no routing events."""
    deadline: float | None = None
    """``clock()`` instant the whole call must end by."""
    breaker: BreakerSettings = attrs.field(factory=BreakerSettings)
    client_budget: Decimal | None = None
    after: ProviderError | None = None
    """A routed ``submit`` continuing after the failure of an earlier attempt's job."""
    webhook_url: str | None = None
    """Where every candidate's provider is asked to POST the outcome; a provider with no webhook drops out."""
    random: Callable[[], float] = random.random
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time


@attrs.frozen
class Choice:
    """The candidate an attempt goes to, with what was reserved for it."""

    candidate: Candidate
    token: str | None = None
    """The client-budget reservation."""
    hedge_token: str | None = None
    """The hedge-allowance reservation (a hedge only)."""
    probe: bool = False
    reason: str = ""


class RouteChoices:
    """What a routed call knows while it chooses (its trail, what it tried and committed), and the choosing."""

    def __init__(self, call: RouteCall) -> None:
        self.call = call
        self.route = call.route
        self.trail: list[Attempt] = []
        self.tried: Counter[str] = Counter()
        self.made = 0
        """Attempts started (skips are not attempts)."""
        self.committed = Decimal(0)
        """This call's spend: settled costs plus the estimates of attempts still running."""
        self.prefer: str | None = None
        self.next_reason = "first choice"
        self.last_error: ProviderError | None = None
        self.keys = itertools.count(1)
        self.skipped_now: set[str] = set()
        """Providers given a skip line since the last attempt (one line per provider per wait)."""
        self.handles: list[JobHandle] = []
        """Accepted jobs that may still deliver, for a GenerationTimeoutError."""
        self.options: dict[str, Plan | InvalidRequestError] = {}
        """Each candidate's plan, or its refusal of the request when that is not a capability."""
        self.refused: dict[str, BridgeError] = {}

    # -- the loop -----------------------------------------------------------------------------------------------

    def remaining(self) -> float | None:
        """Seconds left before the call's deadline (``None``: none)."""
        return None if self.call.deadline is None else self.call.deadline - self.call.clock()

    def release(self, token: str | None) -> Flow[None]:
        """Give back a client-budget reservation that was not used."""
        if token is not None:
            yield SettleSpend(token, Decimal(0))

    def settle_hedge(self, token: str | None, extra: Decimal, base: Decimal) -> Flow[None]:
        """Book a hedged route's call: what its result cost, what its hedge losers cost."""
        yield SettleHedge(token, extra, base)

    def failed(self, error: BaseException) -> BaseException:
        """``error`` with the trail (and, for a deadline, every accepted job's handle) attached."""
        if isinstance(error, BridgeError):
            error.attempts = tuple(self.trail)
        if isinstance(error, GenerationTimeoutError):
            handles = [*error.handles, *[handle for handle in self.handles if handle not in error.handles]]
            error.handles = tuple(handles)
            if error.handle is None and handles:
                error.handle = handles[0]
        return error

    # -- choosing ---------------------------------------------------------------------------------------------

    def choose(self, *, wait: bool, exclude: frozenset[str] = frozenset(),
               hedge_of: Candidate | None = None) -> Flow[Choice | None]:
        """The next candidate that passes every check, or — when none does — a wait for the earliest half-open
        breaker within the deadline (``wait``), ``None`` (not ``wait``: a hedge), or the error that ends the call."""
        announced = False
        while True:
            numbers: Mapping[str, ProviderNumbers] = {} if self._needs_no_numbers() else (
                yield ReadNumbers(tuple(self.options)))
            candidates = [make_candidate(name, option, numbers.get(name), self.call.adapters[name])
                          for name, option in self.options.items() if name not in exclude
                          and (hedge_of is None or not isinstance(option, BridgeError))]
            denied: list[tuple[str, Admission]] = []
            over_budget: list[tuple[Candidate, Scope]] = []
            for candidate in order(self.route, candidates, self.tried, self.call.random, self.prefer):
                found = yield from self._admit(candidate, hedge_of, denied, over_budget)
                if found is not None:
                    self.prefer = None
                    return found
            if not wait:
                return None
            due = [(admission.retry_at, name) for name, admission in denied if admission.retry_at is not None]
            if due:
                retry_at, name = min(due)
                seconds = max(retry_at - self.call.wall(), 0.0)
                left = self.remaining()
                if left is None or seconds < left:
                    if not announced:
                        announced = True
                        yield Event("waiting", name, message=f"every candidate is skipped; {name}'s circuit "
                                                             f"breaker lets a probe through in {seconds:.1f} s")
                    yield Wait(min(max(seconds, 0.001), _MAX_WAIT_SLICE))
                    continue
            raise self.failed(self._nothing_left(denied, over_budget))

    def _needs_no_numbers(self) -> bool:
        """A direct ``generate`` with no budget to check uses no learned number: one candidate (no ranking), no
        breaker, and its trail line carries the result's own cost (or none, for an error), never an estimate."""
        return (self.call.direct and self.call.mode == "generate" and self.route.budget is None
                and self.call.client_budget is None)

    def _admit(self, candidate: Candidate, hedge_of: Candidate | None, denied: list[tuple[str, Admission]],
               over_budget: list[tuple[Candidate, Scope]]) -> Flow[Choice | None]:
        """The checks of one candidate, cheapest first, the breaker last (a probe handed out must be used)."""
        name, estimate = candidate.provider, candidate.estimate
        if candidate.refusal is not None:
            return Choice(candidate, reason=self.next_reason)
        budget = self.route.budget
        if budget is not None and (estimate is None or self.committed + estimate > budget):
            why = (f"budget: no cost estimate for {name}" if estimate is None else
                   f"budget: an estimated {estimate} USD would take this call's spend ({self.committed} USD) past "
                   f"its budget of {budget} USD")
            over_budget.append((candidate, "call"))
            yield from self.skip(name, why)
            return None
        token = None
        limit = self.call.client_budget
        if limit is not None:
            if estimate is not None:
                token = yield ReserveSpend(estimate, limit)
            if token is None:
                over_budget.append((candidate, "client"))
                yield from self.skip(name, f"budget: an estimated {estimate} USD would pass the client's budget of "
                                           f"{limit} USD" if estimate is not None else
                                     f"budget: no cost estimate for {name} to check the client's budget")
                return None
        hedge_token = None
        try:
            if hedge_of is not None:
                hedge_token = yield from self._hedge_allowance(candidate, hedge_of)
                if hedge_token is None:
                    yield from self.release(token)
                    return None
            admission = Admission(True) if self.call.direct else (
                yield Admit(name, self.call.wall(), self.call.breaker))
        except StateUnavailableError:  # what was reserved before the state failed goes back (once it answers)
            yield from self.release(token)
            if hedge_token is not None:
                yield from self.settle_hedge(hedge_token, Decimal(0), Decimal(0))
            raise
        if not admission.allowed:
            yield from self.release(token)
            if hedge_token is not None:
                yield from self.settle_hedge(hedge_token, Decimal(0), Decimal(0))
            denied.append((name, admission))
            yield from self.skip(name, admission.reason)
            return None
        reason = self.next_reason if hedge_of is None else f"hedge of {hedge_of.provider}"
        if admission.probe:
            reason += "; half-open probe"
        return Choice(candidate, token, hedge_token, admission.probe, reason)

    def _hedge_allowance(self, candidate: Candidate, primary: Candidate) -> Flow[str | None]:
        """Reserve what a hedge on ``candidate`` may add to the call's spend at worst — its own cost (whichever job
        wins, the primary's cost would have been paid anyway) — within the hedge spend cap."""
        hedge = self.route.hedge
        assert hedge is not None
        if candidate.estimate is None:
            yield from self.skip(candidate.provider, "hedge: no cost estimate to check the hedge spend cap")
            return None
        token: str | None = yield ReserveHedge(candidate.estimate, hedge.max_extra_spend,
                                               primary.estimate or Decimal(0))
        if token is None:
            yield from self.skip(candidate.provider, f"hedge: up to {candidate.estimate} USD more would pass the hedge "
                                                     f"spend cap ({hedge.max_extra_spend:%} of hedged routes' spend)")
        return token

    def skip(self, provider: str, reason: str) -> Flow[None]:
        """A trail line (and a ``skipped`` event) saying why ``provider`` was passed over, once per wait."""
        if provider in self.skipped_now:
            return
        self.skipped_now.add(provider)
        self.trail.append(Attempt(provider, "skipped", reason=reason))
        if not self.call.direct:
            yield Event("skipped", provider, message=reason)

    def _nothing_left(self, denied: list[tuple[str, Admission]],
                      over_budget: list[tuple[Candidate, Scope]]) -> BridgeError:
        if over_budget:
            candidate, scope = min(over_budget, key=lambda item: item[0].estimate or Decimal("Infinity"))
            limit = self.route.budget if scope == "call" else self.call.client_budget
            assert limit is not None
            return BudgetExceededError(
                f"no attempt fits the {scope}'s budget of {limit} USD: the cheapest candidate, "
                f"{candidate.provider}, is estimated at {candidate.estimate} USD "
                f"({'spent so far: ' + str(self.committed) + ' USD' if scope == 'call' else 'see the trail'})",
                budget=limit, estimate=candidate.estimate, spent=self.committed, scope=scope,
                provider=candidate.provider)
        if denied:
            name = denied[0][0]
            reasons = "; ".join(f"{each}: {found.reason}" for each, found in denied)
            return ProviderUnavailableError(
                f"no provider of the route can be tried now ({reasons})", provider=name, code="circuit_open",
                retryable=any(found.retry_at is not None for _, found in denied))
        return self.last_error or self._no_attempt_error()

    def _no_attempt_error(self) -> BridgeError:
        return ProviderUnavailableError("the route made no attempt", provider=self.route.providers[0],
                                        code="circuit_open")
