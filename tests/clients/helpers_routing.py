"""Shared helpers of the routing tests: faults aimed at a provider's submit, what each emulator accepted, and the
trail read back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from helpers_bridge import JOB_COUNTER, SUBMIT_FAULT_TARGET, event_kinds

from photomaker_bridge import Attempt, ProgressEvent
from photomaker_bridge.emulators import Emulators, Fault

__all__ = ["accepted", "attempted", "kinds", "refuse_submits", "requests_seen", "routing_events", "trail"]

ROUTING_KINDS = ("attempt", "fallback", "skipped", "hedge")


def refuse_submits(emu: Emulators, provider: str, status: int = 503, **fields: Any) -> None:
    """Every job-submitting request to ``provider`` is answered ``status`` (the provider accepts nothing)."""
    emu[provider].settings.faults.append(Fault("status", status=status, **SUBMIT_FAULT_TARGET[provider], **fields))


def accepted(emu: Emulators, provider: str) -> int:
    """How many jobs ``provider``'s emulator accepted."""
    return emu[provider].counters[JOB_COUNTER[provider]]


def requests_seen(emu: Emulators) -> dict[str, int]:
    """How many requests each emulator received so far."""
    return {name: len(emu[name].log) for name in ("runware", "fal", "eachlabs")}


def trail(attempts: Sequence[Attempt]) -> list[tuple[str, str, str | None]]:
    """``(provider, outcome, error type)`` of each line of a trail."""
    return [(entry.provider, entry.outcome, entry.error_type) for entry in attempts]


def attempted(attempts: Sequence[Attempt]) -> list[str]:
    """The providers of the trail's attempts (skips left out), in order."""
    return [entry.provider for entry in attempts if entry.outcome != "skipped"]


def routing_events(events: Sequence[ProgressEvent]) -> list[tuple[str, str]]:
    """``(kind, provider)`` of the routing events among ``events``."""
    return [(event.kind, event.provider) for event in events if event.kind in ROUTING_KINDS]


def kinds(events: Sequence[ProgressEvent]) -> list[str]:
    """Every event's kind."""
    return event_kinds(events)
