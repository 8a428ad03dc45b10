"""The I/O seam: request/response values, transport protocols, and the two flow drivers.

A multi-step protocol (upload → submit → poll → fetch) is written once, as a generator — a *flow* — that
yields what it needs and receives the outcome (httpx ``auth_flow``):

* an :class:`HttpRequest` → the driver sends it through a transport and sends back the :class:`HttpResponse`
  (or throws the transport's :class:`~photomaker_bridge.ProviderError` into the flow);
* a :class:`Wait` → the driver sleeps (never past the deadline) and sends back ``None``;
* an :class:`Event` → the driver hands it to ``on_event`` and sends back ``None``;
* a :class:`~photomaker_bridge._coordination.CoordinationOperation` (a slot of a provider's limits, an upload
  claimed once per content) → the client's :class:`~photomaker_bridge._coordination.Coordinator` answers it,
  possibly after waiting for another call to release what it holds;
* any other operation (fal's SDK calls) → the driver's ``perform`` callable runs it.

:func:`run_flow` and :func:`arun_flow` are the only code in the package that sleeps. When the caller's
deadline passes, the driver throws :class:`DeadlineReached` into the flow at its current step; the flow may
then yield a few clean-up operations (cancel the job), each bounded by a short grace period, and must raise
:class:`~photomaker_bridge.GenerationTimeoutError` with its job handle.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs

from ._coordination import CoordinationOperation, Coordinator, Scope
from ._logging import log_event

if TYPE_CHECKING:
    from .jobs import JobHandle

__all__ = [
    "AsyncTransport",
    "DeadlineReached",
    "Event",
    "Flow",
    "HttpRequest",
    "HttpResponse",
    "Stop",
    "Transport",
    "Wait",
    "arun_flow",
    "run_flow",
]

T = TypeVar("T")

CLEANUP_GRACE_SECONDS = 5.0
"""How long past the deadline a call may take, in all, to finish what cannot be cut (a submit already in
flight) and clean up (cancel its jobs)."""


@attrs.frozen
class HttpRequest:
    """One HTTP request, as a value. ``provider`` says whose error a failure becomes."""

    method: str
    url: str
    provider: str
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    body: bytes | None = attrs.field(default=None, repr=False)
    timeout: float | None = None
    """Seconds this request may take; the driver lowers it to what is left of the deadline."""
    creates_job: bool = False
    """Whether the request makes the provider accept a billed job (submit, create): it is sent again only when
    the provider provably refused it (``_retry``)."""
    outlives_deadline: bool | None = None
    """Whether the driver lets the request finish within the clean-up grace instead of cutting it at the
    deadline, so that the flow learns the id of the job it created and can cancel it or hand it over (an
    accepted job is never left running unreported). ``None``: the same as ``creates_job``; ``False`` for a
    job whose id the bridge chose itself (Runware's taskUUIDs)."""

    @classmethod
    def json(cls, method: str, url: str, provider: str, payload: Any, headers: Mapping[str, str] | None = None,
             timeout: float | None = None, *, creates_job: bool = False,
             outlives_deadline: bool | None = None) -> HttpRequest:
        """A request whose body is ``payload`` as JSON."""
        merged = {"Content-Type": "application/json", **(headers or {})}
        body = json.dumps(payload, separators=(",", ":")).encode()
        return cls(method, url, provider, merged, body, timeout, creates_job, outlives_deadline)

    def with_timeout(self, timeout: float | None) -> HttpRequest:
        """A copy with another timeout."""
        return attrs.evolve(self, timeout=timeout)


@attrs.frozen
class HttpResponse:
    """One HTTP response: status, lower-cased headers, body bytes."""

    status: int
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    body: bytes = attrs.field(default=b"", repr=False)
    url: str = ""

    def json(self) -> Any:
        """The body parsed as JSON; ``ValueError`` when it is not JSON."""
        return json.loads(self.body)

    def text(self) -> str:
        """The body decoded as UTF-8 (replacing undecodable bytes)."""
        return self.body.decode("utf-8", errors="replace")

    def header(self, name: str) -> str | None:
        """A header's value by case-insensitive name."""
        return self.headers.get(name.lower())


@attrs.frozen
class Wait:
    """Ask the driver to sleep ``seconds`` (cut short at the deadline)."""

    seconds: float


@attrs.frozen
class Event:
    """A progress event, handed to the caller's ``on_event``."""

    kind: str
    """``uploading``, ``waiting`` (for a provider limit, another call's upload, or a route's circuit breakers),
    ``submitted``, ``handle`` (the job's handle is known, see :attr:`handle`), ``queued``, ``running``, ``log``,
    ``retrying`` (a step failed and is tried again), ``completed`` or ``failed``; and from a routed call
    (docs/routing.md): ``attempt`` (an attempt starts on ``provider``), ``fallback`` (``provider`` failed and the
    route moves on), ``skipped`` (``provider`` was passed over, with the reason) and ``hedge`` (a hedge request goes
    to ``provider``)."""
    provider: str
    """Who the event is about."""
    request_id: str | None = None
    """The provider's id of the job, once there is one."""
    at: datetime.datetime = attrs.field(factory=lambda: datetime.datetime.now(datetime.UTC))
    """When it happened (UTC)."""
    queue_position: int | None = None
    """For ``queued``: the position the provider reported, when it reports one."""
    message: str | None = None
    """For ``log``: the log line; for ``failed``, ``uploading``, ``waiting``, ``retrying`` and the routing kinds: a
    short description."""
    handle: JobHandle | None = None
    """For ``handle``: the job's handle, as soon as there is one — what ``result()`` collects the job with, from this
    process or another, if this call ends before the images (a crash, a deadline with ``keep_running=True``). It is
    the provider's handle, without the decision trail a routed ``submit`` adds to the one it returns."""
    accepted: bool | None = None
    """For ``handle``: ``True`` when the provider has accepted the job (fal, Eachlabs, Runware's async delivery);
    ``False`` when the handle comes as the request leaves, before any answer (Runware's synchronous delivery answers
    only when the images are done; the bridge chose the taskUUIDs, so the handle names the tasks all the same). A
    ``False`` handle whose request never reached the provider fails in ``result()`` with a
    :class:`~photomaker_bridge.ProviderError` whose ``never_accepted`` is true: nothing exists, nothing is billed."""


class DeadlineReached(Exception):
    """Thrown into a flow by the driver when the caller's deadline has passed."""


class Stop:
    """Ends a running flow early, from another thread or task: from its next step on, the flow's deadline is the
    moment the stop was seen, so the flow cleans up as it would at its deadline (``generate`` cancels its job where
    the provider allows it) within the clean-up grace. A router stops the loser of a hedge race with it."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        """Ask the flow to stop."""
        self._event.set()

    def is_set(self) -> bool:
        """Whether :meth:`set` was called."""
        return self._event.is_set()


class Transport(Protocol):
    """Sends one request (sync). Failures are raised as :class:`~photomaker_bridge.ProviderError`."""

    def send(self, request: HttpRequest) -> HttpResponse: ...


class AsyncTransport(Protocol):
    """Sends one request (async). Failures are raised as :class:`~photomaker_bridge.ProviderError`."""

    async def send(self, request: HttpRequest) -> HttpResponse: ...


Flow = Generator[Any, Any, T]
"""A protocol written once: yields operations (HttpRequest, Wait, Event, provider calls), returns a result."""

EventHandler = Callable[[Event], Any]


class _Stepper:
    """The drivers' shared logic: what to do next, deadline handling, and feeding outcomes back to the flow.

    The sync and async drivers differ only in how they sleep, send and perform; everything else is here.
    """

    def __init__(self, flow: Flow[Any], deadline: float | None, clock: Callable[[], float],
                 stop: Stop | None = None) -> None:
        self.flow = flow
        self.deadline = deadline
        self.clock = clock
        self.grace = False
        self.stop = stop
        self._send: Any = None
        self._throw: BaseException | None = None

    def remaining(self) -> float | None:
        if self.stop is not None and self.stop.is_set():
            now = self.clock()
            self.deadline = now if self.deadline is None else min(self.deadline, now)
            self.stop = None
        return None if self.deadline is None else self.deadline - self.clock()

    def _limit(self, operation: Any, remaining: float | None) -> float | None:
        """Seconds the next step may take: what is left of the deadline, or of the one clean-up grace budget
        (the deadline plus CLEANUP_GRACE_SECONDS) for clean-up steps and for steps that create a job."""
        if remaining is None:
            return None
        outlives = getattr(operation, "outlives_deadline", None)
        if outlives is None:
            outlives = getattr(operation, "creates_job", False)
        if self.grace or outlives:
            return max(remaining + CLEANUP_GRACE_SECONDS, 0.001)
        return remaining

    def deliver(self, value: Any) -> None:
        """The outcome of the last step, sent into the flow at the next :meth:`next`."""
        self._send = value

    def fail(self, error: Exception) -> None:
        """The last step failed: throw ``error`` into the flow (as DeadlineReached when the deadline cut it)."""
        left = self.remaining()
        if not self.grace and left is not None and left <= 0:
            # The step failed because the deadline cut it short: that is the deadline, not the provider.
            self.grace = True
            reached = DeadlineReached()
            reached.__cause__ = error
            self._throw = reached
        else:
            self._throw = error

    def next(self) -> tuple[str, Any]:
        """``("done", result)``, ``("wait", seconds)``, ``("event", event)``, ``("http", request)`` or
        ``("perform", (operation, remaining))``."""
        while True:
            try:
                if self._throw is not None:
                    error, self._throw = self._throw, None
                    operation = self.flow.throw(error)
                else:
                    value, self._send = self._send, None
                    operation = self.flow.send(value)
            except StopIteration as stop:
                return "done", stop.value
            if isinstance(operation, Event):
                log_event(operation)  # INFO on photomaker_bridge.<provider>, for callers without on_event
                return "event", operation
            if isinstance(operation, CoordinationOperation) and not operation.blocking:
                return "perform", (operation, None)  # bookkeeping: answered at once, even past the deadline
            remaining = self.remaining()
            if remaining is not None and remaining <= 0 and not self.grace:
                self.grace = True
                self._throw = DeadlineReached()
                continue
            if isinstance(operation, Wait):
                seconds = operation.seconds if remaining is None else min(operation.seconds, max(remaining, 0.0))
                return "wait", seconds
            limit = self._limit(operation, remaining)
            if isinstance(operation, HttpRequest):
                if limit is not None and (operation.timeout is None or operation.timeout > limit):
                    operation = operation.with_timeout(max(limit, 0.001))
                return "http", operation
            return "perform", (operation, limit)


def run_flow(flow: Flow[T], transport: Transport, *, perform: Callable[[Any, float | None], Any] | None = None,
             deadline: float | None = None, on_event: EventHandler | None = None,
             sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
             coordinator: Coordinator | None = None, stop: Stop | None = None) -> T:
    """Drive ``flow`` to its result with a sync transport. ``deadline`` is a ``clock()`` instant.

    ``coordinator`` is the client's shared state (limits, uploads); by default the run has one of its own.
    ``stop``, set from another thread, ends the run early as if its deadline had passed.
    """
    scope = (coordinator or Coordinator()).scope()
    try:
        result: T = _run(_Stepper(flow, deadline, clock, stop), transport, perform, on_event, sleep, scope)
        return result
    finally:
        try:
            flow.close()  # an abandoned flow (KeyboardInterrupt ...) runs its clean-up now, not at garbage collection
        finally:
            scope.close()


def _run(stepper: _Stepper, transport: Transport, perform: Callable[[Any, float | None], Any] | None,
         on_event: EventHandler | None, sleep: Callable[[float], None], scope: Scope) -> Any:
    while True:
        kind, value = stepper.next()
        if kind == "done":
            return value
        try:
            if kind == "wait":
                if value > 0:
                    sleep(value)
            elif kind == "event":
                if on_event is not None:
                    on_event(value)
            elif kind == "http":
                stepper.deliver(transport.send(value))
            elif isinstance(value[0], CoordinationOperation):
                stepper.deliver(scope.perform(*value))
            elif perform is not None:
                stepper.deliver(perform(*value))
            else:
                raise TypeError(f"a flow yielded {value[0]!r}, which this driver cannot perform")
        except Exception as error:  # handed to the flow, which decides what it means
            stepper.fail(error)


async def arun_flow(flow: Flow[T], transport: AsyncTransport, *,
                    perform: Callable[[Any, float | None], Awaitable[Any]] | None = None,
                    deadline: float | None = None, on_event: EventHandler | None = None,
                    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                    clock: Callable[[], float] = time.monotonic, coordinator: Coordinator | None = None,
                    stop: Stop | None = None) -> T:
    """Drive ``flow`` to its result with an async transport. ``deadline`` is a ``clock()`` instant.

    ``coordinator`` is the client's shared state (limits, uploads); by default the run has one of its own.
    ``stop``, set from another task or thread, ends the run early as if its deadline had passed.
    """
    scope = (coordinator or Coordinator()).scope()
    try:
        result: T = await _arun(_Stepper(flow, deadline, clock, stop), transport, perform, on_event, sleep, scope)
        return result
    finally:
        try:
            flow.close()  # a cancelled task's flow runs its clean-up now, not at garbage collection
        finally:
            await scope.aclose()


async def _arun(stepper: _Stepper, transport: AsyncTransport,
                perform: Callable[[Any, float | None], Awaitable[Any]] | None, on_event: EventHandler | None,
                sleep: Callable[[float], Awaitable[None]], scope: Scope) -> Any:
    while True:
        kind, value = stepper.next()
        if kind == "done":
            return value
        try:
            if kind == "wait":
                if value > 0:
                    await sleep(value)
            elif kind == "event":
                if on_event is not None:
                    outcome = on_event(value)
                    if asyncio.iscoroutine(outcome):
                        await outcome
            elif kind == "http":
                stepper.deliver(await transport.send(value))
            elif isinstance(value[0], CoordinationOperation):
                stepper.deliver(await scope.aperform(*value))
            elif perform is not None:
                stepper.deliver(await perform(*value))
            else:
                raise TypeError(f"a flow yielded {value[0]!r}, which this driver cannot perform")
        except Exception as error:  # handed to the flow, which decides what it means
            stepper.fail(error)
