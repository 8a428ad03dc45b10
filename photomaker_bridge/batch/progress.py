"""What the runner tells its caller as it goes (:class:`BatchEvent`), and a tally of it (:class:`BatchProgress`)
that a display draws: per provider done / failed / in flight, spend so far, elapsed and estimated time left.

Pure: the tally is fed events and a clock reading; it never reads the journal or the clock itself.

A routed job moves between rows: it is in flight under ``route`` while its route is choosing, under the provider
that accepted it once one has (the event's ``provider`` says which), back under ``route`` when that job failed and
the route goes on, and it finishes under the provider its journal line names. Its expected place in the totals
moves with it, so every row's bar still counts towards its own jobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

import attrs

__all__ = ["BatchEvent", "BatchEventKind", "BatchProgress", "ProviderProgress"]

BatchEventKind = Literal["skipped", "duplicate", "submitting", "submitted", "resuming", "collecting", "finished",
                         "unknown", "error", "stopping"]


@attrs.frozen
class BatchEvent:
    """One step of one job.

    ``kind``: ``skipped`` (finished in an earlier run), ``duplicate`` (a key given twice: the first one runs),
    ``submitting`` (``provider`` is ``"route"`` for a routed job), ``submitted`` (``provider`` accepted it),
    ``resuming`` (an earlier run's accepted job, collected by its handle), ``collecting`` (waiting for the
    result), ``finished`` (``record`` is its journal line), ``unknown`` (its submission was interrupted in an
    earlier run, so it may or may not exist; it is not sent again), ``error`` (an unexpected failure; the job
    stays in the journal to resume, ``message`` says what happened), ``stopping`` (the run was cancelled;
    ``key`` and ``provider`` are empty, ``message`` says what happens to the jobs in flight).
    """

    kind: BatchEventKind
    key: str
    provider: str
    record: Mapping[str, Any] | None = None
    """The ``finished`` journal line, for ``finished`` events."""
    message: str | None = None
    """For ``duplicate``, ``unknown``, ``error`` and ``stopping``: why, or what happens now."""


@attrs.define
class ProviderProgress:
    """One provider's counts so far."""

    total: int | None = None
    """Jobs expected for this provider (``None`` when the caller did not say)."""
    succeeded: int = 0
    failed: int = 0
    in_flight: int = 0
    skipped: int = 0
    """Already finished in an earlier run."""
    left: int = 0
    """Jobs this run leaves unfinished: unknown submissions and unexpected failures (both resumable)."""
    images: int = 0
    spend_reported: Decimal = Decimal(0)
    """Sum of costs the provider reported, this run."""
    spend_estimated: Decimal = Decimal(0)
    """Sum of costs estimated from price tables, this run."""
    currency: str = "USD"

    @property
    def done(self) -> int:
        """Finished this run, either way."""
        return self.succeeded + self.failed

    @property
    def remaining(self) -> int | None:
        """Jobs not yet finished (``None`` without a total)."""
        if self.total is None:
            return None
        return max(0, self.total - self.done - self.skipped - self.left)


@attrs.define
class BatchProgress:
    """A running tally of :class:`BatchEvent` per provider; ``started`` is a ``time.monotonic()`` reading."""

    started: float
    providers: dict[str, ProviderProgress] = attrs.field(factory=dict)
    _where: dict[str, str] = attrs.field(factory=dict, init=False)
    """Each job in flight → the row it is counted in (only the jobs in flight: at most the run's concurrency)."""

    def expect(self, provider: str, total: int) -> None:
        """Say how many jobs ``provider`` has in all (what the bars count towards)."""
        self._provider(provider).total = total

    def _provider(self, name: str) -> ProviderProgress:
        return self.providers.setdefault(name, ProviderProgress())

    def update(self, event: BatchEvent) -> None:
        """Count ``event``."""
        if event.kind == "stopping":
            return
        tally = self._provider(event.provider)
        if event.kind == "skipped":
            tally.skipped += 1
        elif event.kind in ("submitting", "resuming", "submitted", "collecting"):
            self._move(event.key, event.provider)
        elif event.kind == "unknown":
            tally.left += 1
        elif event.kind == "error":
            self._land(event.key, event.provider)
            tally.left += 1
        elif event.kind == "finished" and event.record is not None:
            self._land(event.key, event.provider)
            self._count_finished(tally, event.record)

    def _move(self, key: str, to: str) -> None:
        """Count job ``key`` in flight under ``to`` (from the row it was in, with its place in the totals)."""
        before = self._where.get(key)
        if before == to:
            return
        self._where[key] = to
        self._provider(to).in_flight += 1
        if before is not None:
            self._shift(before, to)
            self._provider(before).in_flight = max(0, self._provider(before).in_flight - 1)

    def _land(self, key: str, at: str) -> None:
        """Job ``key`` left the jobs in flight, counted under ``at``."""
        before = self._where.pop(key, at)
        self._provider(before).in_flight = max(0, self._provider(before).in_flight - 1)
        if before != at:
            self._shift(before, at)

    def _shift(self, source: str, target: str) -> None:
        """One expected job moves from ``source``'s total to ``target``'s (when ``source`` has one)."""
        tally = self._provider(source)
        if tally.total is not None and tally.total > 0:
            tally.total -= 1
            destination = self._provider(target)
            destination.total = (destination.total or 0) + 1

    @staticmethod
    def _count_finished(tally: ProviderProgress, record: Mapping[str, Any]) -> None:
        if record.get("outcome") == "success":
            tally.succeeded += 1
            tally.images += len(record.get("images") or ())
        else:
            tally.failed += 1
        cost = record.get("cost")
        if isinstance(cost, Mapping):
            amount = Decimal(str(cost.get("amount", "0")))
            tally.currency = str(cost.get("currency", tally.currency))
            if cost.get("source") == "estimated":
                tally.spend_estimated += amount
            else:
                tally.spend_reported += amount

    def elapsed(self, now: float) -> float:
        """Seconds since the start."""
        return max(0.0, now - self.started)

    def eta(self, now: float) -> float | None:
        """Seconds left at this run's pace so far; ``None`` before the first job finishes or without totals."""
        done = sum(tally.done for tally in self.providers.values())
        remaining = [tally.remaining for tally in self.providers.values()]
        if done == 0 or any(value is None for value in remaining):
            return None
        left = sum(value for value in remaining if value is not None)
        return left * self.elapsed(now) / done
