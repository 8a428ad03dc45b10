"""What a route flow asks its driver to do with providers, and what comes back (``_drivers.py`` performs them).

A route is written once, as a generator (like every provider's protocol, docs/architecture.md): it yields these
values, :class:`~photomaker_bridge._http.Event` and :class:`~photomaker_bridge._http.Wait`, and the router
state's operations (``_state.py``). The sync driver runs background attempts in threads, the async one in tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import attrs

from .._http import Event
from ..jobs import CancelOutcome
from ..plan import Plan
from ..result import as_tuple

__all__ = ["CancelDone", "CancelJobs", "Finished", "NextSignal", "Progress", "RunAttempt", "StartAttempt",
           "StopAttempt"]


@attrs.frozen
class RunAttempt:
    """Run one attempt to its end in the caller's own thread or task: ``generate`` (a result) or ``submit`` (a
    handle). Answers :class:`Finished`; its events go straight to the caller's ``on_event``."""

    key: int
    provider: str
    plan: Plan
    mode: Literal["generate", "submit"]


@attrs.frozen
class StartAttempt:
    """Start a ``generate`` attempt in the background (a hedge race). Answers ``None``; its events come back as
    :class:`Progress` signals (and go to the caller's ``on_event``), its end as :class:`Finished`."""

    key: int
    provider: str
    plan: Plan


@attrs.frozen
class CancelJobs:
    """Cancel the jobs ``request_ids`` of the background attempt ``key`` in the background; answers ``None``, and
    :class:`CancelDone` comes back when the provider answered."""

    key: int
    provider: str
    request_ids: Sequence[str] = attrs.field(converter=as_tuple)


@attrs.frozen
class StopAttempt:
    """End the background attempt ``key`` as if its deadline had passed (it cancels its job where the provider
    allows it) and stop waiting for it."""

    key: int


@attrs.frozen
class NextSignal:
    """Wait for the next signal of the background attempts: answers :class:`Progress`, :class:`Finished` or
    :class:`CancelDone`, or ``None`` when ``timeout`` seconds passed first (``None``: no limit)."""

    timeout: float | None


@attrs.frozen
class Progress:
    """A progress event of background attempt ``key``."""

    key: int
    event: Event


@attrs.frozen
class Finished:
    """Attempt ``key`` ended: ``value`` (a result or a handle) or ``error``, after ``seconds``."""

    key: int
    value: Any
    error: BaseException | None
    seconds: float


@attrs.frozen
class CancelDone:
    """The provider's answers to a :class:`CancelJobs` of attempt ``key``."""

    key: int
    outcomes: tuple[CancelOutcome, ...]
