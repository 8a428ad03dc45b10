"""One provider's circuit breaker, as a value and pure transitions: closed → open → half-open → closed.

A :class:`RouterState` keeps one :class:`Breaker` per provider and applies :func:`admit` and :func:`record` to it
atomically (in memory under a lock; a shared backend in one round trip), so the rules live here once.

* **closed**: every call goes through. It opens after ``failures`` consecutive counted failures, or when at least
  ``minimum_calls`` outcomes in the last ``window`` seconds include a ``failure_rate`` share of failures. A busy
  provider's window holds only its most recent outcomes (:data:`KEPT_OUTCOMES`, or ``minimum_calls`` if more):
  the share is then that of the latest calls, as in a count-based sliding window (Resilience4j's
  ``COUNT_BASED``), and a shared backend moves a bounded breaker on every call however busy the account is.
* **open**: calls are skipped without a request until ``cooldown`` seconds have passed; then the first call to ask
  becomes the one **probe** and the breaker is half-open.
* **half-open**: only the probe goes through; others are skipped until it ends (or until its lease of
  ``probe_lease`` seconds expires, when a caller that never reported back is assumed gone and a new probe may go).
  Its success closes the breaker; its failure opens it again with a fresh cool-down.
* **disabled**: an authentication or credit failure (the ``cooldown`` policy action): skipped until reset.

Times are wall-clock seconds (``time.time()``), so that several processes sharing one state agree on them. A
failure reported while open (a call admitted before it opened) keeps the cool-down it has: only a failed probe
starts a new one. Any success closes the breaker.

Why our own: ``purgatory`` (sync + async, Redis) pins ``redis<6``; ``pybreaker`` has no asyncio; ``aiobreaker`` is
unmaintained since 2021; none keeps its state behind an interface shared with the router's statistics and
spend, which one backend must hold together (docs/routing.md, "Circuit breakers").
"""

from __future__ import annotations

import bisect
import math
from typing import Literal

import attrs

from ..errors import ConfigurationError

__all__ = ["KEPT_OUTCOMES", "Admission", "Breaker", "BreakerSettings", "BreakerStatus", "admit", "record"]

BreakerStatus = Literal["closed", "open", "half_open", "disabled"]


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"BreakerSettings.{attribute.name} must be a finite number above 0, got {value!r}")


def _count(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"BreakerSettings.{attribute.name} must be an integer of at least 1, got {value!r}")


def _rate(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ConfigurationError(f"BreakerSettings.failure_rate must be within (0, 1], got {value!r}")


@attrs.frozen
class BreakerSettings:
    """When a provider's circuit breaker opens and how long it stays open (``Bridge(breaker=...)``)."""

    failures: int = attrs.field(default=5, validator=_count)
    """Consecutive counted failures that open the breaker."""
    failure_rate: float = attrs.field(default=0.5, validator=_rate)
    """The share of failures among the outcomes of the last ``window`` seconds that opens it..."""
    window: float = attrs.field(default=60.0, validator=_positive)
    """...over this many seconds..."""
    minimum_calls: int = attrs.field(default=10, validator=_count)
    """...once there are at least this many outcomes in the window."""
    cooldown: float = attrs.field(default=30.0, validator=_positive)
    """Seconds an open breaker skips its provider before letting one probe through."""
    probe_lease: float = attrs.field(default=600.0, validator=_positive)
    """Seconds a probe may take before another caller may probe instead (a probe whose caller vanished)."""


KEPT_OUTCOMES = 100
"""The most outcomes a breaker keeps within its window (the latest; ``minimum_calls`` if that is more)."""


@attrs.frozen
class Breaker:
    """One provider's breaker at one moment."""

    status: BreakerStatus = "closed"
    consecutive: int = 0
    """Counted failures in a row."""
    outcomes: tuple[tuple[float, bool], ...] = ()
    """``(time, ok)`` of the counted outcomes within the window (at most the latest :data:`KEPT_OUTCOMES`), oldest
    first."""
    retry_at: float | None = None
    """Open: when a probe may go. Half-open: when the probe's lease expires. Else ``None``."""
    reason: str = ""
    """Why it is open or disabled, for the trail."""


@attrs.frozen
class Admission:
    """The answer to "may a call go to this provider now?"."""

    allowed: bool
    probe: bool = False
    """Whether this call is the half-open probe."""
    status: BreakerStatus = "closed"
    """The breaker's status when asked."""
    retry_at: float | None = None
    """When denied: the earliest time asking again may succeed (``None``: not before a reset)."""
    reason: str = ""
    """When denied: why, in words."""


def admit(breaker: Breaker, now: float, settings: BreakerSettings) -> tuple[Breaker, Admission]:
    """Whether a call may go now, and the breaker after the question (an open one whose cool-down is over becomes
    half-open, with this call as its probe)."""
    if breaker.status == "closed":
        return breaker, Admission(True)
    if breaker.status == "disabled":
        return breaker, Admission(False, status="disabled", reason=breaker.reason)
    due = breaker.retry_at if breaker.retry_at is not None else now
    if now < due:
        waiting = "its probe is running" if breaker.status == "half_open" else "cooling down"
        return breaker, Admission(False, status=breaker.status, retry_at=due,
                                  reason=f"circuit open ({breaker.reason}); {waiting}")
    probing = attrs.evolve(breaker, status="half_open", retry_at=now + settings.probe_lease)
    return probing, Admission(True, probe=True, status="half_open")


def record(breaker: Breaker, now: float, settings: BreakerSettings, *, ok: bool, counts: bool = True,
           disable: str | None = None) -> Breaker:
    """The breaker after an outcome: ``ok``; ``counts`` (whether a failure is the provider's fault); ``disable``
    (a reason to take the provider out until reset)."""
    if disable is not None:
        return Breaker(status="disabled", reason=disable)
    if ok:
        return Breaker(outcomes=_added(_recent(breaker.outcomes, now, settings), now, settings, ok=True))
    if not counts:
        return breaker
    recent = _added(_recent(breaker.outcomes, now, settings), now, settings, ok=False)
    consecutive = breaker.consecutive + 1
    if breaker.status == "half_open":
        return Breaker(status="open", consecutive=consecutive, outcomes=recent, retry_at=now + settings.cooldown,
                       reason="its half-open probe failed")
    if breaker.status == "open":
        return attrs.evolve(breaker, consecutive=consecutive, outcomes=recent)
    failed = sum(1 for _, good in recent if not good)
    if consecutive >= settings.failures:
        reason = f"{consecutive} failures in a row"
    elif len(recent) >= settings.minimum_calls and failed / len(recent) >= settings.failure_rate:
        reason = f"{failed} of the last {len(recent)} calls failed within {settings.window:g} s"
    else:
        return Breaker(consecutive=consecutive, outcomes=recent)
    return Breaker(status="open", consecutive=consecutive, outcomes=recent, retry_at=now + settings.cooldown,
                   reason=reason)


def _recent(outcomes: tuple[tuple[float, bool], ...], now: float,
            settings: BreakerSettings) -> tuple[tuple[float, bool], ...]:
    # Oldest first: a binary search finds the window's start, so a busy provider (thousands of outcomes a
    # minute) costs a slice per call rather than a Python-level scan of the whole window.
    start = bisect.bisect_right(outcomes, now - settings.window, key=_time)
    return outcomes[start:]


def _added(outcomes: tuple[tuple[float, bool], ...], now: float, settings: BreakerSettings, *,
           ok: bool) -> tuple[tuple[float, bool], ...]:
    """``outcomes`` with ``(now, ok)`` in time order (threads may record a moment out of order), the latest
    :data:`KEPT_OUTCOMES` (or ``minimum_calls``) kept."""
    at = bisect.bisect_right(outcomes, now, key=_time)
    added = (*outcomes[:at], (now, ok), *outcomes[at:])
    return added[-max(KEPT_OUTCOMES, settings.minimum_calls):]


def _time(item: tuple[float, bool]) -> float:
    return item[0]
