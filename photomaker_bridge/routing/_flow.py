"""One routed call, written once as a generator (docs/routing.md): choose a provider, run an attempt, record what
came of it, and decide what next — until a result, a stop, or the end of ``max_attempts``.

Walks down once per attempt: capability (planned once, offline) → ranking (``_choice``) → per-call budget →
client budget (reserved in the router state) → circuit breaker (``Admit``, last, so that a probe handed out is
always used) → the attempt (``RunAttempt``, or a hedge race in ``_hedge``) → ``Record`` and settle the spend →
the policy of the error (``_policy``). Every step leaves a line in the trail, which ends on the result or on the
error raised.

A direct call (a plain provider name) runs the same flow with ``direct=True``: no breaker, no strategy, no routing
events, one attempt; its outcome still teaches the state and counts against the client's budget.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Literal

import attrs

from .._http import Event, Flow, Wait
from ..errors import (
    BridgeError,
    BudgetExceededError,
    GenerationTimeoutError,
    InvalidRequestError,
    ProviderError,
    ProviderUnavailableError,
)
from ..jobs import JobHandle
from ..plan import Plan
from ..providers.base import Provider
from ..request import PhotoMakerRequest
from ..result import Attempt, AttemptOutcome, Cost, PhotoMakerResult
from ._breaker import Admission, BreakerSettings
from ._choice import Candidate, is_capability, make_candidate, order, plan_candidates
from ._operations import Finished, RunAttempt
from ._policy import policy_for
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
from ._trail import error_attempt, failure_record, success_record

__all__ = ["Choice", "RouteCall", "RouteRun", "route_flow"]

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


def route_flow(call: RouteCall) -> Flow[Any]:
    """The routed call: a :class:`PhotoMakerResult` (``generate``) or a :class:`JobHandle` (``submit``) carrying
    the trail, or the error that ended the call carrying it."""
    run = RouteRun(call)
    value: Any = yield from run.go()
    return value


class RouteRun:
    """The bookkeeping of one routed call (used by the flow and by the hedge race)."""

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

    def go(self) -> Flow[Any]:
        from ._hedge import race  # the race uses this class: imported here to keep the modules acyclic

        yield from self._plan()
        if self.call.after is not None:
            yield from self._continue_after(self.call.after)
        while True:
            if self.made >= self.route.max_attempts:
                raise self.failed(self.last_error or self._no_attempt_error())
            self._check_time()
            choice = yield from self.choose(wait=True)
            assert choice is not None
            refusal = choice.candidate.refusal
            if refusal is not None:
                # The request itself must change for this provider: nothing is sent; its policy decides.
                self.tried[choice.candidate.provider] += 1
                self.skipped_now.clear()
                self.trail.append(error_attempt(choice.candidate.provider, refusal, seconds=None,
                                                reason=choice.reason))
                yield from self.decide(refusal, choice.candidate.provider)
                continue
            if self._hedged():
                outcome, entries = yield from race(self, choice)
                self.trail += entries
                if outcome.error is None:
                    return self.deliver(outcome.value)
                yield from self.decide(outcome.error)
                continue
            finished = yield from self.run_one(choice)
            entry = yield from self.account(choice, finished)
            self.trail.append(entry)
            if finished.error is None:
                if self.route.hedge is not None and self.call.mode == "generate":
                    yield from self.settle_hedge(None, Decimal(0), self.cost_of(choice, finished))
                return self.deliver(finished.value)
            yield from self.decide(finished.error)

    def _hedged(self) -> bool:
        return (self.route.hedge is not None and self.call.mode == "generate" and not self.call.direct
                and self.made + 1 < self.route.max_attempts and len(self.options) > 1)

    def _plan(self) -> Flow[None]:
        plans, refused = plan_candidates(self.route, self.call.request, self.call.strict, self.call.adapters)
        self.options = dict(plans)
        for name, error in refused:
            if self.call.direct:
                raise error
            if isinstance(error, InvalidRequestError) and not is_capability(error):
                self.options[name] = error
                continue
            self.refused[name] = error
            yield from self.skip(name, f"cannot take this request as given: {error}")
        if not self.options:
            raise self.failed(next(iter(self.refused.values())))

    def _continue_after(self, error: ProviderError) -> Flow[None]:
        """A routed submit after an earlier attempt's job failed: its trail counts, and its policy decides."""
        self.trail = list(error.attempts)
        for entry in self.trail:
            if entry.outcome != "skipped":
                self.made += 1
                self.tried[entry.provider] += 1
        yield from self.decide(error)

    def _check_time(self) -> None:
        left = self.remaining()
        if left is not None and left <= 0:
            timeout = GenerationTimeoutError("the deadline passed before another attempt could start",
                                             provider=self.last_error.provider if self.last_error else
                                             self.route.providers[0])
            timeout.__cause__ = self.last_error
            raise self.failed(timeout)

    def remaining(self) -> float | None:
        """Seconds left before the call's deadline (``None``: none)."""
        return None if self.call.deadline is None else self.call.deadline - self.call.clock()

    # -- choosing ---------------------------------------------------------------------------------------------

    def choose(self, *, wait: bool, exclude: frozenset[str] = frozenset(),
               hedge_of: Candidate | None = None) -> Flow[Choice | None]:
        """The next candidate that passes every check, or — when none does — a wait for the earliest half-open
        breaker within the deadline (``wait``), ``None`` (not ``wait``: a hedge), or the error that ends the call."""
        announced = False
        while True:
            numbers: Mapping[str, ProviderNumbers] = yield ReadNumbers(tuple(self.options))
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
        if hedge_of is not None:
            hedge_token = yield from self._hedge_allowance(candidate, hedge_of)
            if hedge_token is None:
                yield from self.release(token)
                return None
        admission = Admission(True) if self.call.direct else (
            yield Admit(name, self.call.wall(), self.call.breaker))
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
        hedge = self.route.hedge
        assert hedge is not None
        worst = max(candidate.estimate or Decimal(0), primary.estimate or Decimal(0))
        if candidate.estimate is None:
            yield from self.skip(candidate.provider, "hedge: no cost estimate to check the hedge spend cap")
            return None
        token: str | None = yield ReserveHedge(worst, hedge.max_extra_spend, primary.estimate or Decimal(0))
        if token is None:
            yield from self.skip(candidate.provider, f"hedge: up to {worst} USD more would pass the hedge spend cap "
                                                     f"({hedge.max_extra_spend:%} of hedged routes' spend)")
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

    # -- one attempt ------------------------------------------------------------------------------------------

    def run_one(self, choice: Choice) -> Flow[Finished]:
        """Send one attempt in the caller's own thread or task."""
        key = next(self.keys)
        plan = choice.candidate.plan
        assert plan is not None, "a refusing candidate is never sent"
        yield from self.announce("attempt", choice)
        finished: Finished = yield RunAttempt(key, choice.candidate.provider, plan, self.call.mode)
        return finished

    def announce(self, kind: str, choice: Choice) -> Flow[None]:
        """Count an attempt as started, and say so with an ``attempt`` (or ``hedge``) event."""
        self.made += 1
        self.tried[choice.candidate.provider] += 1
        self.committed += choice.candidate.estimate or Decimal(0)
        self.skipped_now.clear()
        if not self.call.direct:
            estimate = choice.candidate.estimate
            price = f"; estimated {estimate} USD" if estimate is not None else ""
            yield Event(kind, choice.candidate.provider,
                        message=f"{self.made} of {self.route.max_attempts} ({self.route.strategy}): "
                                f"{choice.reason}{price}")

    def cost_of(self, choice: Choice, finished: Finished) -> Decimal:
        """What an attempt cost, for budgets: the reported (or estimated) cost of its result, else its estimate
        when a job may be billed (a handle, a timeout, an unanswered submit), else nothing."""
        value, error = finished.value, finished.error
        if isinstance(value, PhotoMakerResult) and value.cost is not None:
            return value.cost.amount
        if value is not None or isinstance(error, GenerationTimeoutError) or getattr(error, "may_have_accepted",
                                                                                       False):
            return choice.candidate.estimate or Decimal(0)
        return Decimal(0)

    def account(self, choice: Choice, finished: Finished, *, outcome: AttemptOutcome | None = None,
                reason: str | None = None) -> Flow[Attempt]:
        """Settle an ended attempt's spend, teach the state, and make its trail line."""
        amount = self.cost_of(choice, finished)
        self.committed += amount - (choice.candidate.estimate or Decimal(0))
        if choice.token is not None:
            yield SettleSpend(choice.token, amount)
        yield from self.record(choice.candidate, finished)
        return self.entry(choice, finished, outcome=outcome, reason=reason)

    def release(self, token: str | None) -> Flow[None]:
        """Give back a client-budget reservation that was not used."""
        if token is not None:
            yield SettleSpend(token, Decimal(0))

    def settle_hedge(self, token: str | None, extra: Decimal, base: Decimal) -> Flow[None]:
        """Book a hedged route's call: what its result cost, what its hedge losers cost."""
        yield SettleHedge(token, extra, base)

    def record(self, candidate: Candidate, finished: Finished) -> Flow[None]:
        """Teach the state what came of an attempt (breaker, time, queue wait, price)."""
        settings, now = self.call.breaker, self.call.wall()
        if finished.error is None:
            yield success_record(candidate.provider, finished.value, settings, now, seconds=finished.seconds,
                                 plan=candidate.plan)
        else:
            yield failure_record(candidate.provider, finished.error, settings, now, self.route.policies)

    def entry(self, choice: Choice, finished: Finished, *, outcome: AttemptOutcome | None = None,
              reason: str | None = None) -> Attempt:
        """The trail line of an ended attempt."""
        value, error = finished.value, finished.error
        provider, why = choice.candidate.provider, reason or choice.reason
        if error is None:
            ids = tuple(value.request_ids) if isinstance(value, PhotoMakerResult | JobHandle) else ()
            cost = value.cost if isinstance(value, PhotoMakerResult) else self.estimate_cost(choice)
            return Attempt(provider, outcome or "ok", request_ids=ids, seconds=round(finished.seconds, 6), cost=cost,
                           reason=why)
        return error_attempt(provider, error, seconds=finished.seconds, reason=why, outcome=outcome or "error",
                             cost=self.estimate_cost(choice) if outcome in ("hedged", "cancelled") else None)

    @staticmethod
    def estimate_cost(choice: Choice) -> Cost | None:
        """The attempt's estimate as a Cost (``None`` when unknown)."""
        estimate = choice.candidate.estimate
        return None if estimate is None else Cost(estimate, "USD", "estimated")

    # -- after an attempt -------------------------------------------------------------------------------------

    def decide(self, error: BaseException, provider: str | None = None) -> Flow[None]:
        """What the route does after ``error`` (of ``provider``): raise it (stop, no attempts left) or say where
        it goes next."""
        if not isinstance(error, ProviderError | InvalidRequestError):
            raise self.failed(error)
        provider = provider or getattr(error, "provider", None) or self.route.providers[0]
        if isinstance(error, ProviderError):
            self.last_error = error
        if isinstance(error, GenerationTimeoutError):
            self.handles += [handle for handle in error.handles if handle not in self.handles]
        policy = policy_for(error, self.route.policies)
        if policy.action == "stop" or self.made >= self.route.max_attempts or self.call.direct:
            raise self.failed(error)
        name = type(error).__name__
        if policy.action == "retry" and isinstance(error, ProviderError):
            self.prefer = provider
            self.next_reason = f"retry after {provider}: {name}"
        else:
            self.next_reason = f"fallback after {provider}: {name}"
        message = error.message if isinstance(error, ProviderError) else str(error)
        yield Event("fallback", provider, message=f"{name}: {message} ({policy.action})")

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

    def deliver(self, value: Any) -> Any:
        """The result (or handle) with the trail."""
        return attrs.evolve(value, attempts=tuple(self.trail))
