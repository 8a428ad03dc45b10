"""The operations the fal flows yield for a performer to run, and the tracker of one call's requests.

The flows (``_fal_flow`` and the modules it drives) yield these values; the performers
(``_fal_sync_performer``, ``_fal_async_performer``) run each with one ``fal_client`` client and hand back plain
values (:class:`~photomaker_bridge.providers._fal_parse.FalSubmission`, ``FalStatus``, the result JSON) or raise
our typed errors. Nothing here imports ``fal_client``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Final

import attrs

__all__ = [
    "LISTEN_SECONDS",
    "AbandonHook",
    "FalCancel",
    "FalFetch",
    "FalStatusCheck",
    "FalStatusStream",
    "FalSubmit",
    "FalUpload",
    "JobTracker",
    "StreamSlots",
]

LISTEN_SECONDS: Final = 30.0
"""How long one listen to a status stream lasts before the flow opens it again (fal sends a comment every 15 s,
fal.md §1.5, so a stream quiet for this long is taken as lost; a deadline is checked at least this often)."""


@attrs.define
class StreamSlots:
    """How many of one adapter's requests may be followed on the status stream at once: each listen holds a
    connection of the pool for the request's whole run, so past ``limit`` requests poll instead."""

    limit: int = 8
    taken: int = 0
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False, eq=False)

    def fit(self, max_connections: int | None) -> None:
        """Keep listens to at most half of a pool of ``max_connections`` (``None``: no limit), so that submits,
        fetches and the other jobs' polls always find a connection; a pool of one connection never streams. An
        adapter shared by several clients keeps the smallest of their shares."""
        if max_connections is not None:
            with self._lock:
                self.limit = min(self.limit, max_connections // 2)

    def take(self) -> bool:
        """A slot, when one is free."""
        with self._lock:
            if self.taken >= self.limit:
                return False
            self.taken += 1
            return True

    def give(self) -> None:
        """Free a slot taken with :meth:`take`."""
        with self._lock:
            self.taken = max(0, self.taken - 1)


AbandonHook = Callable[[Sequence[tuple[str, str]]], None]
"""Sends a cancel for each ``(application, request_id)`` in the background (set by a performer)."""


@attrs.define(eq=False)
class JobTracker:
    """The requests one ``generate`` call submitted and has not yet seen finish.

    If the call is abandoned before it ends (the caller's task is cancelled, the flow is closed), nobody will
    collect those requests, so they are cancelled in the background through the performer's hook: a flow
    cannot yield once it is being closed. The performer binds the hook at the first submit.
    """

    outstanding: dict[str, str] = attrs.field(factory=dict)
    """request_id -> application, in submit order."""
    hook: AbandonHook | None = None
    closed: bool = False
    """Set once the flow ended (normally, or after cleaning up itself): nothing is left to abandon."""
    on_close: Callable[[], None] | None = None
    """Set by the async performer watching the caller's task: stops watching once the flow is over."""

    def add(self, application: str, request_id: str) -> None:
        """Record a submitted request."""
        self.outstanding[request_id] = application

    def finish(self, request_id: str) -> None:
        """The request completed (or was cancelled by the flow): it needs no cancel."""
        self.outstanding.pop(request_id, None)

    def abandon(self) -> None:
        """Cancel every outstanding request in the background, once."""
        if self.closed:
            return
        pending = list(self.outstanding.items())
        self.close()
        if pending and self.hook is not None:
            self.hook([(application, request_id) for request_id, application in pending])

    def close(self) -> None:
        """The flow is over and left nothing behind."""
        self.closed = True
        self.outstanding.clear()
        on_close, self.on_close = self.on_close, None
        if on_close is not None:
            on_close()


@attrs.frozen
class _Operation:
    jobs: JobTracker | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)
    """The tracker of the ``generate`` call this operation belongs to, when it cancels on abandonment."""


@attrs.frozen
class FalUpload(_Operation):
    """Upload bytes to fal storage (``fal_client`` ``upload``); the performer returns the file's URL."""

    data: bytes = attrs.field(repr=False)
    content_type: str
    file_name: str


@attrs.frozen
class FalSubmit(_Operation):
    """Submit one payload to the queue (``fal_client`` ``submit``); returns a :class:`FalSubmission`."""

    creates_job: ClassVar[bool] = True
    """Tells the drivers that this step creates a billed job: it is not cut at the deadline but may run into
    the clean-up grace, so that a submit fal has (or is about to have) accepted comes back with its id and
    the flow can cancel it or hand out its handle, instead of leaving a job running that nobody knows of."""

    application: str
    arguments: Mapping[str, Any] = attrs.field(repr=False)
    options: Mapping[str, Any] = attrs.field(factory=dict)
    """fal_client ``submit`` keywords: ``webhook_url``, ``priority``, ``hint``, ``start_timeout`` (the plan's
    ``submit_options``)."""


@attrs.frozen
class FalStatusCheck(_Operation):
    """One status call (``fal_client`` ``status``); returns a :class:`FalStatus`."""

    application: str
    request_id: str
    with_logs: bool


@attrs.frozen
class FalStatusStream(_Operation):
    """Listen to a request's status stream (fal.md §1.5, ``_fal_stream``) until its state is no longer ``known``,
    for at most ``seconds``; returns the statuses read (a tuple of :class:`FalStatus`), ending with the new state."""

    application: str
    request_id: str
    with_logs: bool
    seconds: float
    known: str = "IN_QUEUE"
    """The state the flow last saw (a submit answers ``IN_QUEUE``, fal.md §1.3)."""


@attrs.frozen
class FalFetch(_Operation):
    """Fetch a completed request's result (its response URL, through ``fal_client``'s HTTP client); returns the
    JSON body."""

    application: str
    request_id: str


@attrs.frozen
class FalCancel(_Operation):
    """Cancel a request (``PUT`` its cancel URL through ``fal_client``'s HTTP client); returns the answer's
    ``status`` (``CANCELLATION_REQUESTED`` ...) or ``None``."""

    application: str
    request_id: str
