"""The ``finished`` journal line of a job, built from its result or its error (pure: no I/O).

A line holds: ``key``, ``provider``, ``request_ids``, ``outcome`` (``success``, ``failed`` or ``timeout``),
``error`` (``class``, ``status``, ``code``, ``message``, ``retryable``), ``images`` (``url``, saved ``path``
relative to the output folder, ``seed``, size, content type), ``seed``, ``cost`` (``amount`` as an exact
decimal string, ``currency``, ``source``: ``reported`` or ``estimated``), ``queue_seconds``, ``run_seconds``,
``upload_seconds``, ``total_seconds``, ``warnings`` (as text), ``attempts``, ``labels``, ``started_at``,
``finished_at``, ``resumed`` and, for a job the provider still ran when its call ended (a deadline, or collecting
that failed for good), ``resumable`` with the ``handle`` to collect it by. A routed job's line also holds
``route`` (its canonical form); its ``attempts`` are the decision trail of every attempt across its providers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..errors import BridgeError, GenerationTimeoutError, ProviderError
from ..jobs import JobHandle
from ..result import Attempt, PhotoMakerResult
from .jobs import JobLabels
from .journal import now_iso

__all__ = ["JobTiming", "attempt_dicts", "counted_under", "error_fields", "failure_record", "success_record"]


@attrs.frozen
class JobTiming:
    """When a job was worked on in this run, and whether it was collected from an earlier run's handle."""

    started_at: str
    """ISO 8601 UTC: when this run began submitting (or, when resumed, collecting) it."""
    total_seconds: float | None
    """Submission to collection, measured by the runner; ``None`` for a resumed job (its submission happened
    in an earlier run, so no wall time covers it whole)."""
    resumed: bool = False
    """Collected by a handle written by an earlier run."""


def error_fields(error: BaseException) -> dict[str, Any]:
    """The journal's description of an error: class, HTTP status, provider code, message, retryable."""
    if isinstance(error, ProviderError):
        return {"class": type(error).__name__, "status": error.status, "code": error.code,
                "message": error.message, "retryable": error.retryable}
    message = str(error) if isinstance(error, BridgeError) else f"{type(error).__name__}: {error}"
    return {"class": type(error).__name__, "status": None, "code": None, "message": message, "retryable": False}


def attempt_dicts(attempts: Sequence[Attempt]) -> list[dict[str, Any]]:
    """A decision trail as JSON-ready dicts (a cost's amount is written as its exact decimal string)."""
    return [attrs.asdict(attempt) for attempt in attempts]


def _base(key: str, provider: str, labels: JobLabels, timing: JobTiming,
          route: Mapping[str, Any] | None) -> dict[str, Any]:
    routed = {} if route is None else {"route": dict(route)}
    return {"type": "finished", "key": key, "provider": provider, "labels": labels.to_dict(), **routed,
            "started_at": timing.started_at, "finished_at": now_iso(), "resumed": timing.resumed}


def success_record(key: str, labels: JobLabels, result: PhotoMakerResult, paths: Sequence[str | None],
                   timing: JobTiming, route: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The line of a job that produced ``result``, under the provider it came from; ``paths`` are where its images
    were saved (``None``: not saved), relative to the output folder; ``route``: a routed job's canonical route."""
    timings = result.timings
    cost = None if result.cost is None else {"amount": str(result.cost.amount), "currency": result.cost.currency,
                                             "source": result.cost.source}
    images = [{"url": image.url if image.url and not image.url.startswith("data:") else None, "path": path,
               "seed": image.seed, "width": image.width, "height": image.height,
               "content_type": image.content_type, "nsfw": image.nsfw}
              for image, path in zip(result.images, paths, strict=True)]
    return {
        **_base(key, result.provider, labels, timing, route),
        "outcome": "success", "resumable": False, "handle": None, "request_ids": list(result.request_ids),
        "error": None, "images": images, "seed": result.seed, "requested_images": result.requested_images,
        "cost": cost, "queue_seconds": timings.queue_seconds, "run_seconds": timings.run_seconds,
        "upload_seconds": timings.upload_seconds, "total_seconds": timing.total_seconds,
        "warnings": [str(warning) for warning in result.warnings],
        "attempts": attempt_dicts(result.attempts),
    }


def failure_record(key: str, provider: str, labels: JobLabels, error: BaseException, timing: JobTiming,
                   handle: JobHandle | None = None, route: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The line of a job that ended in ``error``, with the error's decision trail. A job the provider still ran when
    the call ended — a deadline (a :class:`GenerationTimeoutError` with a handle), or collecting that failed for
    good with the job left running (a :class:`ProviderError` with a handle) — is ``resumable``: the next run
    collects it by handle."""
    timed_out = isinstance(error, GenerationTimeoutError)
    carried = error.handle if isinstance(error, ProviderError) else None
    handle = carried or handle
    resumable = (timed_out or carried is not None) and handle is not None
    request_ids: list[str] = list(handle.request_ids) if handle is not None else []
    if not request_ids and isinstance(error, ProviderError) and error.request_id:
        request_ids = [error.request_id]
    warnings = [str(warning) for warning in handle.warnings] if handle is not None else []
    return {
        **_base(key, provider, labels, timing, route),
        "outcome": "timeout" if timed_out else "failed", "resumable": resumable,
        "handle": handle.to_dict() if resumable and handle is not None else None, "request_ids": request_ids,
        "error": error_fields(error), "images": [], "seed": None, "requested_images": None, "cost": None,
        "queue_seconds": None, "run_seconds": None, "upload_seconds": None, "total_seconds": timing.total_seconds,
        "warnings": warnings, "attempts": attempt_dicts(error.attempts) if isinstance(error, BridgeError) else [],
    }


def record_cost(record: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """``(amount, currency, source)`` of a finished line, or ``None`` when it has no cost."""
    cost = record.get("cost")
    if not isinstance(cost, Mapping):
        return None
    return str(cost.get("amount")), str(cost.get("currency", "USD")), str(cost.get("source", "reported"))


def counted_under(label: str, error: BaseException, handle: JobHandle | None) -> str:
    """Where a failed job counts: one the provider still runs (a passed deadline, or collecting that failed for
    good: an error with a handle) under that provider, where the next run collects it; anything else under the
    job's label (a routed job's failure belongs to its route)."""
    if isinstance(error, ProviderError):
        running = error.handle or (handle if isinstance(error, GenerationTimeoutError) else None)
        if running is not None:
            return str(running.provider)
    return label
