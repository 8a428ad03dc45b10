"""The lines of a decision trail and the records that teach the router state, built the same way wherever an
attempt ends: in a route flow, in a hedge race, or in ``result()`` collecting a routed submit's job."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ProviderError
from ..plan import Plan
from ..result import Attempt, AttemptOutcome, Cost, PhotoMakerResult
from ._breaker import BreakerSettings
from ._numbers import unit_price_of
from ._policy import Action, policy_for
from ._state import Record

__all__ = ["error_attempt", "failure_record", "success_record"]


def error_attempt(provider: str, error: BaseException, *, seconds: float | None, reason: str | None,
                  request_ids: Sequence[str] | None = None, outcome: AttemptOutcome = "error",
                  cost: Cost | None = None) -> Attempt:
    """The trail line of an attempt that ended with ``error`` (its job ids from the error unless given)."""
    if request_ids is None:
        request_ids = ()
        if isinstance(error, ProviderError) and error.handle is not None:  # a job still running: all its ids
            request_ids = tuple(error.handle.request_ids)
        elif isinstance(error, ProviderError) and error.request_id:
            request_ids = (error.request_id,)
    return Attempt(provider, outcome, error_type=type(error).__name__,
                   message=error.message if isinstance(error, ProviderError) else str(error),
                   status=getattr(error, "status", None), code=getattr(error, "code", None),
                   request_ids=request_ids, seconds=None if seconds is None else round(seconds, 6), cost=cost,
                   reason=reason)


def failure_record(provider: str, error: BaseException, settings: BreakerSettings, now: float,
                   overrides: Mapping[str, Action] | None = None) -> Record:
    """What an attempt's ``error`` teaches the state: a breaker failure or not, or the provider disabled until
    ``reset_provider`` (the ``cooldown`` action)."""
    policy = policy_for(error, overrides)
    disable = None
    if policy.action == "cooldown":
        message = error.message if isinstance(error, ProviderError) else str(error)
        disable = f"{type(error).__name__}: {message}; skipped until reset_provider({provider!r})"
    return Record(provider, now, settings, ok=False, counts=policy.breaker, disable=disable)


def success_record(provider: str, value: Any, settings: BreakerSettings, now: float, *, seconds: float,
                   plan: Plan | None = None) -> Record:
    """What a successful attempt teaches the state: its total time, queue wait and (with its plan) its price per
    unit of work."""
    total = queue = unit = None
    if isinstance(value, PhotoMakerResult):
        total = value.timings.total_seconds or seconds
        queue = value.timings.queue_seconds
        if plan is not None and value.cost is not None and value.cost.currency == "USD":
            unit = unit_price_of(value.cost.amount, plan)
    return Record(provider, now, settings, ok=True, total_seconds=total, queue_seconds=queue, unit_price=unit)
