"""One queued fal request, its state computed from monotonic timestamps whenever someone asks.

Nothing runs in the background: a request waits ``queue_seconds`` after submit, then the runner "picks it
up" (the first query after that moment decides its :class:`Outcome`), then it runs ``outcome.run_seconds``.
A cancel or a ``X-Fal-Request-Timeout`` that expires in the queue ends it early.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Literal

import attrs

from ._common import Fault
from ._fal_http import ERROR_TYPE_HEADER
from ._fal_storage import StoredFile

__all__ = ["CANCELLED_DETAIL", "Job", "LogLine", "Outcome", "Phase", "cancelled_outcome", "timeout_outcome"]

Phase = Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]

CANCELLED_DETAIL = "Request cancelled by client"
"""``detail``/``error`` of a cancelled request; fal's exact text is [UNVERIFIED] (fal.md §1.4, §1.7)."""


@attrs.frozen
class LogLine:
    """One line the app prints, ``offset`` seconds after the runner picked the request up."""

    offset: float
    level: str
    message: str


@attrs.frozen
class Outcome:
    """How a request ends: the result answer, and what the status endpoint says about it."""

    status: int
    """HTTP status of the result endpoint."""
    body: object
    """JSON body of the result endpoint (for a 200 it is built from ``images`` and ``seed`` instead)."""
    run_seconds: float
    """How long the runner works before answering; ``math.inf`` never finishes (a stuck job)."""
    images: tuple[StoredFile, ...] = ()
    image_size: tuple[int, int] = (1024, 1024)
    seed: int | None = None
    error: str | None = None
    """``error`` of the COMPLETED status (request errors only; an app's own 4xx shows no error there)."""
    error_type: str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    """Extra headers of the result answer (``X-Fal-Error-Type`` ...)."""
    logs: tuple[LogLine, ...] = ()

    def answer_body(self, origin: str) -> object:
        """The result body as served from ``origin`` (image URLs are absolute on the emulator's base)."""
        if self.status != 200:
            return self.body
        width, height = self.image_size
        images = [{"url": image.url(origin), "content_type": image.content_type, "file_name": image.file_name,
                   "file_size": len(image.data), "width": width, "height": height} for image in self.images]
        return {"images": images, "seed": self.seed}


def cancelled_outcome() -> Outcome:
    """A request the client cancelled: COMPLETED with ``client_cancelled`` and a 499 result.

    D-API: a cancel removes a queued request and signals a running one; the terminal state is not documented.
    fal never sends FAILED/CANCELLED (fal_client raises on unknown statuses), so it must be COMPLETED, and
    the request-error table lists ``client_cancelled`` with status 499 (fal.md §1.4, §1.7) [UNVERIFIED].
    """
    return Outcome(499, {"detail": CANCELLED_DETAIL, "error_type": "client_cancelled"}, 0.0,
                   error=CANCELLED_DETAIL, error_type="client_cancelled",
                   headers={ERROR_TYPE_HEADER: "client_cancelled"})


def timeout_outcome() -> Outcome:
    """A request whose ``X-Fal-Request-Timeout`` expired before a runner took it: 504 ``request_timeout``
    with ``X-Fal-Request-Timeout-Type: user``, which fal_client never retries (fal.md §1.2, §1.9)."""
    detail = "Request timed out"
    return Outcome(504, {"detail": detail, "error_type": "request_timeout"}, 0.0, error=detail,
                   error_type="request_timeout",
                   headers={ERROR_TYPE_HEADER: "request_timeout", "X-Fal-Request-Timeout-Type": "user"})


@attrs.define
class Job:
    """One submitted request and everything needed to compute its state at any moment."""

    request_id: str
    app_id: str
    subpath: str
    body: bytes = attrs.field(repr=False)
    submitted_at: float
    """``time.monotonic()`` at submit."""
    submitted_wall: float
    """``time.time()`` at submit, for log timestamps."""
    queue_seconds: float
    run_seconds: float
    seed: int
    """The seed used when the input has none (drawn at submit so runs are reproducible)."""
    fault: Fault | None = None
    start_timeout: float | None = None
    """``X-Fal-Request-Timeout``: seconds the request may wait before a runner takes it."""
    webhook_url: str | None = None
    """``fal_webhook`` given at submit: the webhook POSTed when the request completes (``_fal_webhooks``)."""
    cancelled_at: float | None = None
    outcome: Outcome | None = None
    """What the runner decided when it picked the request up."""
    final: Outcome | None = None
    """What the request ended with: the runner's outcome, a cancellation or a queue timeout."""
    finished_at: float | None = None
    inference_seconds: float | None = None
    """Seconds the runner worked on it, once finished (``None`` when it never started)."""

    @property
    def started_at(self) -> float:
        """Monotonic time the runner picks the request up."""
        return self.submitted_at + self.queue_seconds

    def _finish(self, final: Outcome, at: float, inference_seconds: float | None) -> None:
        self.final, self.finished_at, self.inference_seconds = final, at, inference_seconds

    def settle(self, now: float, decide: Callable[[Job], Outcome]) -> None:
        """Bring the job up to ``now``; ``decide`` is the runner, called once when the request starts."""
        if self.final is not None:
            return
        start = self.started_at
        if self.cancelled_at is not None and self.cancelled_at <= start:
            # "If the request is in the queue, fal removes it" (fal.md §1.7).
            self._finish(cancelled_outcome(), self.cancelled_at, None)
            return
        if self.start_timeout is not None and self.queue_seconds > self.start_timeout:
            deadline = self.submitted_at + self.start_timeout
            if now >= deadline:
                self._finish(timeout_outcome(), deadline, None)
            return
        if now < start:
            return
        if self.outcome is None:
            self.outcome = decide(self)
        end = start + self.outcome.run_seconds
        if self.cancelled_at is not None and self.cancelled_at < end:
            self._finish(cancelled_outcome(), self.cancelled_at, self.cancelled_at - start)
        elif now >= end:
            self._finish(self.outcome, end, self.outcome.run_seconds)

    def phase(self, now: float, decide: Callable[[Job], Outcome]) -> Phase:
        """The queue status at ``now``."""
        self.settle(now, decide)
        if self.final is not None:
            return "COMPLETED"
        return "IN_QUEUE" if now < self.started_at else "IN_PROGRESS"

    def metrics(self) -> dict[str, float]:
        """``metrics`` of the COMPLETED status: ``inference_time`` once a runner worked on it."""
        if self.inference_seconds is None or math.isinf(self.inference_seconds):
            return {}
        return {"inference_time": self.inference_seconds}

    def log_entries(self, now: float) -> list[dict[str, str]]:
        """The app's log lines printed by ``now`` (cumulative; fal may send a moving window, fal.md §1.4)."""
        if self.outcome is None:
            return []
        # The tolerance keeps floating-point rounding of finished_at - started_at from dropping the last line
        # of a request that ran to its end (a cancelled one still stops where it was).
        elapsed = (self.finished_at if self.finished_at is not None else now) - self.started_at + 1e-6
        started_wall = self.submitted_wall + self.queue_seconds
        return [{"message": line.message, "level": line.level, "source": "USER",
                 "timestamp": datetime.fromtimestamp(started_wall + line.offset, UTC).strftime(
                     "%Y-%m-%dT%H:%M:%S.%f")}
                for line in self.outcome.logs if line.offset <= elapsed]
