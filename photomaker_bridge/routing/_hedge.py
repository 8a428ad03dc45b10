"""Tied hedging (docs/routing.md, "Hedging"): one attempt and, while it is still queued past the hedge delay, the
same request on the next candidate; the first success wins.

"The Tail at Scale" (Dean & Barroso, CACM 2013, https://research.google/pubs/the-tail-at-scale/) hedges a request
outstanding longer than the 95th-percentile latency, and *ties* the copies so that the one that starts first
cancels the other. For paid jobs that tie is what keeps hedging cheap:

* a hedge goes out only while the primary's job is accepted and not yet running (``submitted``/``queued``), and
  only when its worst-case cost fits the hedge spend cap (``ReserveHedge``) and the call's budget;
* when either job starts running, the other is cancelled if it is still queued (removed from the queue: free);
* when one succeeds, the other is cancelled (or, when its provider cannot cancel — Runware — or it already runs,
  collected) and its cost is booked; a loser still running when the clean-up grace has passed is stopped (it
  cancels its job where it can) and booked at its estimate;
* the hedge spend of a race is what it spent beyond what its primary alone would have cost (the primary's result,
  or its estimate): a hedge that wins at a higher price costs the difference, one that wins cheaper costs nothing,
  a billed loser costs what it was billed. It can never pass the hedge's own cost, which is what is reserved.

Both attempts count towards ``max_attempts``. The race ends with the winner, or with an error when both failed or
one failed with an error whose policy is ``stop`` (the other is then cancelled).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import attrs

from .._http import CLEANUP_GRACE_SECONDS, Event, Flow
from ..errors import GenerationTimeoutError, StateUnavailableError
from ..jobs import CancelOutcome
from ..result import Attempt, Cost
from ._numbers import SEED_SECONDS
from ._operations import CancelDone, CancelJobs, Finished, NextSignal, Progress, StartAttempt, StopAttempt
from ._policy import policy_for
from ._state import ProviderNumbers, ReadNumbers, SettleSpend

if TYPE_CHECKING:
    from ._choose import Choice
    from ._flow import RouteRun

__all__ = ["hedge_delay", "race"]

_MIN_SAMPLES = 5
"""Learned queue waits needed before ``after="p95"`` uses them (fewer: the provider's p95 total time, or its seed)."""

_PENDING = frozenset({"submitted", "queued"})
"""States of a job accepted and not yet running: the only ones a hedge is sent for, or a tied cancel removes."""


@attrs.define
class _Runner:
    key: int
    choice: Choice
    state: str = "starting"
    ids: list[str] = attrs.field(factory=list)
    submitted_at: float | None = None
    ran: bool = False
    finished: Finished | None = None
    cancel_sent: bool = False
    stop_sent: bool = False
    abandoned: bool = False
    outcomes: tuple[CancelOutcome, ...] = ()
    why: str | None = None
    """Why it was cancelled or stopped."""

    @property
    def provider(self) -> str:
        return self.choice.candidate.provider


def hedge_delay(after: float | str, numbers: ProviderNumbers | None, provider: str) -> float:
    """Seconds a primary may stay queued before a hedge: a fixed number, or the learned 95th percentile of its
    queue wait (falling back to its total time, then to its seed, while too few are known)."""
    if not isinstance(after, str):
        return float(after)
    if numbers is not None and numbers.queue_samples >= _MIN_SAMPLES and numbers.p95_queue_seconds is not None:
        return numbers.p95_queue_seconds
    if numbers is not None and numbers.samples >= _MIN_SAMPLES and numbers.p95_seconds is not None:
        return numbers.p95_seconds
    return SEED_SECONDS.get(provider, 15.0)


def race(run: RouteRun, primary: Choice) -> Flow[tuple[Finished, list[Attempt]]]:
    """Run ``primary`` with a tied hedge; answers the winning (or last failing) attempt's :class:`Finished` and the
    trail lines of every attempt of the race, in the order they started."""
    hedge = run.route.hedge
    assert hedge is not None
    numbers = yield ReadNumbers((primary.candidate.provider,))
    delay = hedge_delay(hedge.after, numbers.get(primary.candidate.provider), primary.candidate.provider)
    runners: dict[int, _Runner] = {}
    first = yield from _start(run, primary, runners, "attempt")
    hedge_token: str | None = None
    hedging_over = False
    winner: _Runner | None = None
    stopper: Finished | None = None
    ended_at: float | None = None
    clock = run.call.clock
    while True:
        active = [runner for runner in runners.values() if runner.finished is None and not runner.abandoned]
        if winner is None and stopper is None and not active:
            break
        if (winner is not None or stopper is not None) and ended_at is not None:
            if not active:
                break
            if clock() >= ended_at + CLEANUP_GRACE_SECONDS:
                for runner in active:
                    yield from _stop(runner)
                    runner.abandoned = True
                break
        waits: list[float] = []
        if winner is None and stopper is None and not hedging_over:
            if first.ran or first.finished is not None or run.made >= run.route.max_attempts:
                hedging_over = True
            elif first.state in _PENDING and first.submitted_at is not None:
                due = first.submitted_at + delay
                if clock() >= due:
                    hedging_over = True
                    choice = yield from _hedge_choice(run, first)
                    if choice is not None:
                        hedge_token = choice.hedge_token
                        waited = clock() - first.submitted_at
                        choice = attrs.evolve(choice, reason=f"hedge: {first.provider} still {first.state} after "
                                                             f"{waited:.2f} s")
                        yield from _start(run, choice, runners, "hedge")
                    continue
                waits.append(due - clock())
        if ended_at is not None:
            waits.append(ended_at + CLEANUP_GRACE_SECONDS - clock())
        signal = yield NextSignal(max(min(waits), 0.0) if waits else None)
        if signal is None:
            continue
        runner = runners[signal.key]
        if isinstance(signal, Progress):
            yield from _progress(runner, signal.event, runners, clock())
        elif isinstance(signal, CancelDone):
            runner.outcomes = signal.outcomes
        elif isinstance(signal, Finished):
            runner.finished = signal
            if runner.abandoned:
                continue
            if signal.error is None and winner is None and stopper is None:
                winner, ended_at = runner, clock()
                for other in runners.values():
                    if other is not runner and other.finished is None:
                        yield from _cancel(other, f"{runner.provider} finished first")
            elif (signal.error is not None and winner is None and stopper is None and not runner.cancel_sent
                  and not runner.stop_sent and policy_for(signal.error, run.route.policies).action == "stop"):
                stopper, ended_at = signal, clock()
                for other in runners.values():
                    if other.finished is None:
                        yield from _cancel(other, f"{runner.provider} failed with {type(signal.error).__name__}")
    return (yield from _settle(run, runners, winner, stopper, hedge_token))


def _hedge_choice(run: RouteRun, first: _Runner) -> Flow[Choice | None]:
    """The hedge's candidate, or ``None``. A hedge is optional: when the shared state cannot answer the questions
    that admit it (numbers, spend, the hedge cap, the breaker), the primary — which a provider may have accepted
    already — goes on alone rather than the call failing with it (docs/scaling.md, "When Redis fails")."""
    try:
        choice: Choice | None = yield from run.choose(wait=False, exclude=frozenset({first.provider}),
                                                      hedge_of=first.choice.candidate)
    except StateUnavailableError as error:
        others = [name for name in run.route.providers if name != first.provider]
        yield from run.skip(others[0] if others else first.provider,
                            f"hedge: not started, the shared state ({error.backend}) did not answer; "
                            f"{first.provider} goes on alone")
        return None
    return choice


def _start(run: RouteRun, choice: Choice, runners: dict[int, _Runner], kind: str) -> Flow[_Runner]:
    key = next(run.keys)
    runner = _Runner(key, choice)
    runners[key] = runner
    plan = choice.candidate.plan
    assert plan is not None, "a refusing candidate is never sent"
    yield from run.announce(kind, choice)
    yield StartAttempt(key, choice.candidate.provider, plan)
    return runner


def _progress(runner: _Runner, event: Event, runners: dict[int, _Runner], now: float) -> Flow[None]:
    if event.kind == "submitted":
        if event.request_id and event.request_id not in runner.ids:
            runner.ids.append(event.request_id)
        if runner.submitted_at is None:
            runner.submitted_at = now
        if runner.state not in ("running", "queued"):
            runner.state = "submitted"
    elif event.kind == "queued" and runner.state != "running":
        runner.state = "queued"
    elif event.kind == "running":
        runner.state, runner.ran = "running", True
        # Tied: the first to run cancels the other while it still waits in the queue (removed there: free).
        for other in runners.values():
            if other is not runner and other.finished is None and other.state in _PENDING:
                yield from _cancel(other, f"{runner.provider} started running first")


def _cancel(runner: _Runner, why: str) -> Flow[None]:
    """Cancel a loser's jobs (or, before it has any, stop it: it then cancels what it submits)."""
    if runner.cancel_sent or runner.finished is not None:
        return
    runner.cancel_sent = True
    runner.why = why
    if runner.ids:
        yield CancelJobs(runner.key, runner.provider, tuple(runner.ids))
    else:
        yield from _stop(runner)


def _stop(runner: _Runner) -> Flow[None]:
    if not runner.stop_sent:
        runner.stop_sent = True
        yield StopAttempt(runner.key)


def _settle(run: RouteRun, runners: dict[int, _Runner], winner: _Runner | None, stopper: Finished | None,
            hedge_token: str | None) -> Flow[tuple[Finished, list[Attempt]]]:
    """Every attempt of the race accounted for: spend settled, state taught, one trail line each; and the hedge
    spend booked: what the race spent beyond what its primary alone would have cost."""
    entries: list[Attempt] = []
    spent = Decimal(0)
    last_failure: Finished | None = None
    ordered = sorted(runners.values(), key=lambda item: item.key)
    for runner in ordered:
        choice = runner.choice
        estimate = choice.candidate.estimate
        finished = runner.finished
        why = runner.why
        if finished is not None and isinstance(finished.error, GenerationTimeoutError):
            run.handles += [handle for handle in finished.error.handles if handle not in run.handles]
        if runner is winner:
            assert finished is not None
            entry = yield from run.account(choice, finished)
            amount = run.cost_of(choice, finished)
        elif finished is None:
            # Still running when the call returned: it was stopped (it cancels where it can) and may be billed.
            amount = estimate or Decimal(0)
            if choice.token is not None:
                yield SettleSpend(choice.token, amount)
            entry = Attempt(choice.candidate.provider, "hedged", request_ids=tuple(runner.ids),
                            cost=None if estimate is None else Cost(estimate, "USD", "estimated"),
                            reason=f"{why or 'lost the race'}; still running when the call returned, stopped (it "
                                   "may be billed)")
        elif finished.error is None:
            # A loser that finished anyway (its provider cannot cancel, or it had already run): billed, collected.
            entry = yield from run.account(choice, finished, outcome="hedged",
                                           reason=f"{why or 'lost the race'}; collected (billed)")
            amount = run.cost_of(choice, finished)
        elif runner.cancel_sent or runner.stop_sent:
            entry, amount = yield from _cancelled(run, runner, finished, why or "lost the race")
        else:
            entry = yield from run.account(choice, finished)
            amount = run.cost_of(choice, finished)
            if last_failure is None or getattr(last_failure.error, "handle", None) is None:
                # A failure whose job runs on (its error carries the handle) is the one the route decides on: it
                # stops the route, and the caller can still collect that job. Each failed job's ids are in the trail.
                last_failure = finished
        spent += amount
        entries.append(entry)
    # What the route would have spent without the hedge: its primary's result, or the primary's estimate.
    primary = ordered[0]
    alone = (run.cost_of(primary.choice, primary.finished) if primary.finished is not None
             and primary.finished.error is None else primary.choice.candidate.estimate or Decimal(0))
    yield from run.settle_hedge(hedge_token, max(spent - alone, Decimal(0)), alone)
    if winner is not None:
        assert winner.finished is not None
        return winner.finished, entries
    failure = stopper or last_failure
    assert failure is not None, "a race ends with a winner or a failure"
    return failure, entries


def _cancelled(run: RouteRun, runner: _Runner, finished: Finished, why: str) -> Flow[tuple[Attempt, Decimal]]:
    """A loser whose jobs were cancelled: free when it was never seen running and the provider took the cancel
    (fal removes a queued request, Eachlabs a prediction that has not started: docs/routing.md), else booked at
    its estimate (the provider may bill the seconds it ran)."""
    choice = runner.choice
    states = {outcome.state for outcome in runner.outcomes}
    free = not runner.ran and states <= {"cancelled", "cancel_requested", "not_found"}
    amount = Decimal(0) if free else choice.candidate.estimate or Decimal(0)
    run.committed += amount - (choice.candidate.estimate or Decimal(0))
    if choice.token is not None:
        yield SettleSpend(choice.token, amount)
    said = ", ".join(sorted(states)) or "stopped before it was accepted"
    entry = run.entry(choice, finished, outcome="cancelled",
                      reason=f"{why}; cancelled ({said}){'' if free else ', may be billed'}")
    return attrs.evolve(entry, cost=Cost(amount, "USD", "estimated")), amount
