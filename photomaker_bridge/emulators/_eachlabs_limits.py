"""Eachlabs' two admission limits on creating predictions, and the ``Retry-After`` each one answers with.

* **Concurrency**: at most ``settings.max_in_flight`` unfinished predictions per key (eachlabs.md §2.3: "accounts
  with a balance of $10.00 or less are limited to 10 concurrent executions").
* **Rate**: at most ``settings.per_minute`` predictions created per key in any 60-second window (the model's API
  page: "Rate limit: 60 requests/minute", eachlabs.md §2.3, §6.4).

Eachlabs says ``Retry-After`` is "endpoint-dependent" (eachlabs.md §1) and documents no value for either 429,
so the emulator sends the honest one: the seconds until the refused create would be admitted — until the
oldest create leaves the window, or until the first unfinished prediction is due to end (rounded up, at
least 1). A prediction that never ends (a ``stuck_job`` fault) gives no such moment; then
``EachlabsOptions.concurrency_retry_after`` is sent.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

import attrs

from ._eachlabs_predictions import Prediction

__all__ = ["RATE_WINDOW_SECONDS", "CreationWindow", "retry_after_header", "seconds_until_a_slot_frees"]

RATE_WINDOW_SECONDS = 60.0
"""The per-minute limit counts creates in a sliding window of this many seconds."""


def retry_after_header(seconds: float) -> dict[str, str]:
    """``Retry-After`` as delta-seconds (RFC 9110 §10.2.3: a non-negative integer), at least 1."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def seconds_until_a_slot_frees(in_flight: Iterable[Prediction], now: float) -> float | None:
    """Seconds until the first of ``in_flight`` finishes, or ``None`` when none of them ever will."""
    ends = [prediction.finished_at for prediction in in_flight if math.isfinite(prediction.finished_at)]
    return max(0.0, min(ends) - now) if ends else None


@attrs.define
class CreationWindow:
    """When each key created its recent predictions, for the per-minute limit."""

    created: dict[str, deque[float]] = attrs.field(factory=dict)

    def _recent(self, api_key: str, now: float) -> deque[float]:
        times = self.created.setdefault(api_key, deque())
        while times and times[0] <= now - RATE_WINDOW_SECONDS:
            times.popleft()
        return times

    def wait_needed(self, api_key: str, now: float, limit: int | None) -> float | None:
        """Seconds until ``api_key`` may create again, or ``None`` when it may create now."""
        if limit is None:
            return None
        times = self._recent(api_key, now)
        if len(times) < limit:
            return None
        # The oldest create that must leave the window before there is room again.
        return times[len(times) - limit] + RATE_WINDOW_SECONDS - now

    def record(self, api_key: str, now: float) -> None:
        """Count one create by ``api_key`` at ``now``."""
        self._recent(api_key, now).append(now)
