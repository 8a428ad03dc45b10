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

from decimal import Decimal
from typing import Any

import attrs

from .._http import Event, Flow
from ..errors import GenerationTimeoutError, InvalidRequestError, ProviderError
from ..jobs import JobHandle
from ..result import Attempt, AttemptOutcome, Cost, PhotoMakerResult
from ._choice import Candidate, is_capability, plan_candidates
from ._choose import Choice, RouteCall, RouteChoices
from ._operations import Finished, RunAttempt
from ._policy import policy_for
from ._state import SettleSpend
from ._trail import error_attempt, failure_record, success_record

__all__ = ["RouteCall", "RouteRun", "route_flow"]


def route_flow(call: RouteCall) -> Flow[Any]:
    """The routed call: a :class:`PhotoMakerResult` (``generate``) or a :class:`JobHandle` (``submit``) carrying
    the trail, or the error that ended the call carrying it."""
    run = RouteRun(call)
    value: Any = yield from run.go()
    return value


class RouteRun(RouteChoices):
    """One routed call: the loop, each attempt's accounting, and the decision after it (used by the flow and by the
    hedge race)."""

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
        plans, refused = plan_candidates(self.route, self.call.request, self.call.strict, self.call.adapters,
                                         webhook_url=self.call.webhook_url)
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
        if (value is not None or isinstance(error, GenerationTimeoutError)
                or getattr(error, "may_have_accepted", False) or getattr(error, "handle", None) is not None):
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
        # A job that may still deliver (its error carries the handle) is never abandoned for another provider,
        # which would pay twice (docs/routing.md, "No job paid twice").
        still_running = isinstance(error, ProviderError) and error.handle is not None
        if policy.action == "stop" or self.made >= self.route.max_attempts or self.call.direct or still_running:
            raise self.failed(error)
        name = type(error).__name__
        if policy.action == "retry" and isinstance(error, ProviderError):
            self.prefer = provider
            self.next_reason = f"retry after {provider}: {name}"
        else:
            self.next_reason = f"fallback after {provider}: {name}"
        message = error.message if isinstance(error, ProviderError) else str(error)
        yield Event("fallback", provider, message=f"{name}: {message} ({policy.action})")

    def deliver(self, value: Any) -> Any:
        """The result (or handle) with the trail."""
        return attrs.evolve(value, attempts=tuple(self.trail))
