"""The I/O seam: request/response values, transport protocols, and the two flow drivers.

A multi-step protocol (upload → submit → poll → fetch) is written once, as a generator — a *flow* — that
yields what it needs and receives the outcome (style-guide rule 5, httpx ``auth_flow``):

* an :class:`HttpRequest` → the driver sends it through a transport and sends back the :class:`HttpResponse`
  (or throws the transport's :class:`~photomaker_bridge.ProviderError` into the flow);
* a :class:`Wait` → the driver sleeps (never past the deadline) and sends back ``None``;
* an :class:`Event` → the driver hands it to ``on_event`` and sends back ``None``;
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
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any, Protocol, TypeVar

import attrs

__all__ = [
    "AsyncTransport",
    "DeadlineReached",
    "Event",
    "Flow",
    "HttpRequest",
    "HttpResponse",
    "Transport",
    "Wait",
    "arun_flow",
    "run_flow",
]

T = TypeVar("T")

CLEANUP_GRACE_SECONDS = 5.0
"""How long each clean-up step (a cancel) may take once the deadline has passed."""


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

    @classmethod
    def json(cls, method: str, url: str, provider: str, payload: Any, headers: Mapping[str, str] | None = None,
             timeout: float | None = None) -> HttpRequest:
        """A request whose body is ``payload`` as JSON."""
        merged = {"Content-Type": "application/json", **(headers or {})}
        body = json.dumps(payload, separators=(",", ":")).encode()
        return cls(method, url, provider, merged, body, timeout)

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
    """``uploading``, ``submitted``, ``queued``, ``running``, ``log``, ``completed`` or ``failed``."""
    provider: str
    """Who the event is about."""
    request_id: str | None = None
    """The provider's id of the job, once there is one."""
    at: datetime.datetime = attrs.field(factory=lambda: datetime.datetime.now(datetime.UTC))
    """When it happened (UTC)."""
    queue_position: int | None = None
    """For ``queued``: the position the provider reported, when it reports one."""
    message: str | None = None
    """For ``log``: the log line; for ``failed`` and ``uploading``: a short description."""


class DeadlineReached(Exception):
    """Thrown into a flow by the driver when the caller's deadline has passed."""


class Transport(Protocol):
    """Sends one request (sync). Failures are raised as :class:`~photomaker_bridge.ProviderError`."""

    def send(self, request: HttpRequest) -> HttpResponse: ...


class AsyncTransport(Protocol):
    """Sends one request (async). Failures are raised as :class:`~photomaker_bridge.ProviderError`."""

    async def send(self, request: HttpRequest) -> HttpResponse: ...


Flow = Generator[Any, Any, T]
"""A protocol written once: yields operations (HttpRequest, Wait, Event, provider calls), returns a result."""

EventHandler = Callable[[Event], Any]


def _remaining(deadline: float | None, clock: Callable[[], float]) -> float | None:
    return None if deadline is None else deadline - clock()


def _bounded(operation: Any, remaining: float | None, grace: bool) -> Any:
    if isinstance(operation, HttpRequest):
        limit = CLEANUP_GRACE_SECONDS if grace else remaining
        if limit is not None:
            limit = max(limit, 0.001)
            if operation.timeout is None or operation.timeout > limit:
                return operation.with_timeout(limit)
    return operation


def run_flow(flow: Flow[T], transport: Transport, *, perform: Callable[[Any, float | None], Any] | None = None,
             deadline: float | None = None, on_event: EventHandler | None = None,
             sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> T:
    """Drive ``flow`` to its result with a sync transport. ``deadline`` is a ``clock()`` instant."""
    to_send: Any = None
    to_throw: BaseException | None = None
    grace = False
    while True:
        try:
            operation = flow.throw(to_throw) if to_throw is not None else flow.send(to_send)
        except StopIteration as stop:
            result: T = stop.value
            return result
        to_send, to_throw = None, None
        remaining = _remaining(deadline, clock)
        if remaining is not None and remaining <= 0 and not grace and not isinstance(operation, Event):
            grace = True
            to_throw = DeadlineReached()
            continue
        try:
            if isinstance(operation, Wait):
                seconds = operation.seconds if remaining is None else min(operation.seconds, max(remaining, 0))
                if seconds > 0:
                    sleep(seconds)
            elif isinstance(operation, Event):
                if on_event is not None:
                    on_event(operation)
            elif isinstance(operation, HttpRequest):
                to_send = transport.send(_bounded(operation, remaining, grace))
            elif perform is not None:
                to_send = perform(operation, CLEANUP_GRACE_SECONDS if grace else remaining)
            else:
                raise TypeError(f"a flow yielded {operation!r}, which this driver cannot perform")
        except Exception as error:  # handed to the flow, which decides what it means
            to_throw = error
            left = _remaining(deadline, clock)
            if not grace and left is not None and left <= 0:
                # The step failed because the deadline cut it short: that is the deadline, not the provider.
                grace = True
                to_throw = DeadlineReached()
                to_throw.__cause__ = error


async def arun_flow(flow: Flow[T], transport: AsyncTransport, *,
                    perform: Callable[[Any, float | None], Awaitable[Any]] | None = None,
                    deadline: float | None = None, on_event: EventHandler | None = None,
                    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                    clock: Callable[[], float] = time.monotonic) -> T:
    """Drive ``flow`` to its result with an async transport. ``deadline`` is a ``clock()`` instant."""
    to_send: Any = None
    to_throw: BaseException | None = None
    grace = False
    while True:
        try:
            operation = flow.throw(to_throw) if to_throw is not None else flow.send(to_send)
        except StopIteration as stop:
            result: T = stop.value
            return result
        to_send, to_throw = None, None
        remaining = _remaining(deadline, clock)
        if remaining is not None and remaining <= 0 and not grace and not isinstance(operation, Event):
            grace = True
            to_throw = DeadlineReached()
            continue
        try:
            if isinstance(operation, Wait):
                seconds = operation.seconds if remaining is None else min(operation.seconds, max(remaining, 0))
                if seconds > 0:
                    await sleep(seconds)
            elif isinstance(operation, Event):
                if on_event is not None:
                    outcome = on_event(operation)
                    if asyncio.iscoroutine(outcome):
                        await outcome
            elif isinstance(operation, HttpRequest):
                to_send = await transport.send(_bounded(operation, remaining, grace))
            elif perform is not None:
                to_send = await perform(operation, CLEANUP_GRACE_SECONDS if grace else remaining)
            else:
                raise TypeError(f"a flow yielded {operation!r}, which this driver cannot perform")
        except Exception as error:  # handed to the flow, which decides what it means
            to_throw = error
            left = _remaining(deadline, clock)
            if not grace and left is not None and left <= 0:
                # The step failed because the deadline cut it short: that is the deadline, not the provider.
                grace = True
                to_throw = DeadlineReached()
                to_throw.__cause__ = error
