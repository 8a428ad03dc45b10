"""What the fal result flow learns about one request from its statuses: events, queue time, and the length of
the job, from which the polling schedule learns (``_polling``).

Times count from when fal accepted the request, in seconds after the handle's submit time (fal.md §1.4).
"""

from __future__ import annotations

import datetime

import attrs

from .._http import Event, Flow
from ..errors import ProviderError
from ..jobs import JobHandle
from ._fal_parse import PROVIDER, FalOutput, FalStatus
from ._polling import PollTimer, duration_sample

__all__ = ["RequestProgress", "duration_of", "log_offset", "now", "observe", "since_submit"]


def now() -> datetime.datetime:
    """The current time, in UTC."""
    return datetime.datetime.now(datetime.UTC)


def log_offset(timestamp: str | None, handle: JobHandle, origin: float) -> float | None:
    """Seconds from ``origin`` (seconds after the handle's submit time) to a log line's ISO 8601 ``timestamp``
    (fal.md §1.4; UTC when it names no zone), or ``None`` when it cannot be read or the submit time is not
    known."""
    if not timestamp or not handle.details.get("submitted_at_known", False):
        return None
    try:
        at = datetime.datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=datetime.UTC)
    return (at - handle.submitted_at).total_seconds() - origin


@attrs.define
class RequestProgress:
    """What the result flow learned about one request while polling it."""

    request_id: str
    asked: int | None
    queued: bool = False
    queue_position: int | None = None
    running: bool = False
    log_keys: set[tuple[str | None, str]] = attrs.field(factory=set)
    queue_seconds: float | None = None
    first_log: float | None = None
    """Seconds from ``origin`` to the earliest log line's timestamp seen (the run had started by then)."""
    last_log: float | None = None
    """Seconds from ``origin`` to the latest log line's timestamp seen (the request was not done before)."""
    last_queued: float = 0.0
    """Seconds from ``origin`` to the last poll that found the request IN_QUEUE (its run started later)."""
    origin: float = 0.0
    """When fal accepted this request, in seconds after the handle's submit time: its times count from there."""
    timer: PollTimer | None = None
    state: str | None = None
    """The status last seen (IN_QUEUE, IN_PROGRESS, COMPLETED)."""
    final: FalStatus | None = None
    output: FalOutput | None = None
    error: ProviderError | None = None


def since_submit(handle: JobHandle) -> float:
    """Seconds since the handle's submit time."""
    return max(0.0, (now() - handle.submitted_at).total_seconds())


def duration_of(item: RequestProgress, status: FalStatus, detected: float) -> float:
    """Submit-to-completion seconds of a request found COMPLETED at ``detected``, for the estimate.

    It ended after the last poll that found it running, after its run (``metrics.inference_time``) and after
    its last log line, and by ``detected``. Where fal says when the run started (the first log line's
    timestamp, else the last poll that found it queued, or the submit) the start plus the run is the answer,
    kept inside those bounds; without ``inference_time``, the middle of them. Never the moment it was noticed:
    that would learn each poll's lag and drift later."""
    assert item.timer is not None
    run = status.inference_time
    lower = max(item.timer.last_pending, run or 0.0, item.last_log or 0.0)
    start = item.first_log if item.first_log is not None else item.last_queued
    measured = None if run is None else start + run
    return duration_sample(min(lower, detected), detected, measured)


def observe(item: RequestProgress, status: FalStatus, handle: JobHandle) -> Flow[None]:
    """Events and queue timing from one status."""
    if status.state == "IN_QUEUE":
        if not item.queued or status.queue_position != item.queue_position:
            item.queued, item.queue_position = True, status.queue_position
            yield Event("queued", PROVIDER, request_id=item.request_id, queue_position=status.queue_position)
    elif not item.running:
        item.running = True
        # Queue time: from the submit to the first status that is no longer IN_QUEUE. When the first one
        # seen is COMPLETED, the run time (inference_time) is taken off the time since the submit.
        if handle.details.get("submitted_at_known", False):
            elapsed = since_submit(handle)
            if status.state == "IN_PROGRESS":
                item.queue_seconds = elapsed
            elif status.inference_time is not None:
                item.queue_seconds = max(0.0, elapsed - status.inference_time)
        if status.state == "IN_PROGRESS":
            yield Event("running", PROVIDER, request_id=item.request_id)
    for line in status.logs:
        at = log_offset(line.timestamp, handle, item.origin)
        if at is not None:
            item.first_log = at if item.first_log is None else min(item.first_log, at)
            item.last_log = at if item.last_log is None else max(item.last_log, at)
        if line.key not in item.log_keys:
            item.log_keys.add(line.key)
            yield Event("log", PROVIDER, request_id=item.request_id, message=line.message)
