"""The two drivers of a route flow: :func:`drive_route` (sync ``Bridge``) and :func:`adrive_route` (``AsyncBridge``).

They share :class:`_Stepper` (feeding answers and errors back into the flow) and differ only in how they wait and
run attempts: an attempt the route runs alone runs in the caller's own thread or task (so Ctrl-C and task
cancellation reach it as they reach a direct call), the attempts of a hedge race run side by side — threads of
the sync client, tasks of the async one — and report back through a queue. When the route ends, or is abandoned,
every background attempt still running is stopped (it then cancels its job where the provider allows it).

The client supplies an :class:`Attempts` (or :class:`AsyncAttempts`): how to run one provider's ``generate`` or
``submit`` and how to cancel jobs, all with the call's deadline.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from .._http import CLEANUP_GRACE_SECONDS, Event, Flow, Stop, Wait
from .._logging import log_event
from ..errors import BridgeError
from ..jobs import CancelOutcome
from ..plan import Plan
from ._operations import (
    CancelDone,
    CancelJobs,
    Finished,
    NextSignal,
    Progress,
    RunAttempt,
    StartAttempt,
    StopAttempt,
)
from ._state import RouterState, StateOperation

__all__ = ["AsyncAttempts", "Attempts", "adrive_route", "drive_route", "join_background", "wait_background"]

EventHandler = Callable[[Event], Any]


class Attempts(Protocol):
    """How the sync client runs one attempt and cancels jobs (each bounded by the call's deadline)."""

    def run(self, provider: str, plan: Plan, mode: str, on_event: EventHandler | None, stop: Stop | None) -> Any:
        """Run ``generate`` (or ``submit``) of ``plan`` on ``provider``; its result (handle) or its error."""

    def cancel(self, provider: str, request_ids: Sequence[str]) -> tuple[CancelOutcome, ...]:
        """Cancel ``request_ids`` at ``provider``, one outcome per id."""


class AsyncAttempts(Protocol):
    """How the async client runs one attempt and cancels jobs."""

    def run(self, provider: str, plan: Plan, mode: str, on_event: EventHandler | None,
            stop: Stop | None) -> Awaitable[Any]:
        """Run ``generate`` (or ``submit``) of ``plan`` on ``provider``."""

    def cancel(self, provider: str, request_ids: Sequence[str]) -> Awaitable[tuple[CancelOutcome, ...]]:
        """Cancel ``request_ids`` at ``provider``."""


class _Stepper:
    """Feeds the route flow its answers; the drivers only perform what it yields."""

    def __init__(self, flow: Flow[Any]) -> None:
        self.flow = flow
        self._send: Any = None
        self._throw: BaseException | None = None

    def next(self) -> tuple[bool, Any]:
        """``(True, value)`` when the flow returned, else ``(False, operation)``."""
        try:
            if self._throw is not None:
                error, self._throw = self._throw, None
                return False, self.flow.throw(error)
            value, self._send = self._send, None
            return False, self.flow.send(value)
        except StopIteration as stop:
            return True, stop.value

    def deliver(self, value: Any) -> None:
        self._send = value

    def fail(self, error: BaseException) -> None:
        self._throw = error


def _failed_outcomes(provider: str, request_ids: Sequence[str], error: BaseException) -> tuple[CancelOutcome, ...]:
    return tuple(CancelOutcome(provider, request_id, "failed", str(error)) for request_id in request_ids)


class _Background:
    """The background attempts of one route (a hedge race): started, cancelled and stopped on the flow's word."""

    def __init__(self) -> None:
        self._stops: dict[int, Stop] = {}

    def start(self, operation: StartAttempt) -> None:
        raise NotImplementedError

    def cancel(self, operation: CancelJobs) -> None:
        raise NotImplementedError

    def handle(self, operation: Any) -> bool:
        """Perform a background operation (start, cancel, stop); ``False`` for any other."""
        if isinstance(operation, StartAttempt):
            self._stops[operation.key] = Stop()
            self.start(operation)
        elif isinstance(operation, CancelJobs):
            self.cancel(operation)
        elif isinstance(operation, StopAttempt):
            if operation.key in self._stops:
                self._stops[operation.key].set()
        else:
            return False
        return True

    def close(self) -> None:
        """Stop every background attempt still running (each then cancels its job where it can)."""
        for stop in self._stops.values():
            stop.set()


# -- sync --------------------------------------------------------------------------------------------------------


_THREADS: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
"""Background attempts (and cancels) of sync routes, possibly still cleaning up after their route returned."""


def _spawn_thread(work: Callable[[], None], name: str) -> None:
    thread = threading.Thread(target=work, name=name)
    _THREADS.add(thread)
    thread.start()


def join_background(timeout: float = CLEANUP_GRACE_SECONDS) -> None:
    """Let background attempts of sync routes finish their clean-up (at most ``timeout`` seconds in all), e.g.
    before the client that runs them closes its connections."""
    deadline = time.monotonic() + timeout
    for thread in list(_THREADS):
        if thread is not threading.current_thread():
            thread.join(max(deadline - time.monotonic(), 0.0))


class _Threads(_Background):
    """The background attempts of one sync route: one thread each, reporting through one queue."""

    def __init__(self, attempts: Attempts, on_event: EventHandler | None) -> None:
        super().__init__()
        self._attempts = attempts
        self._on_event = on_event
        self._signals: queue.Queue[Any] = queue.Queue()

    def start(self, operation: StartAttempt) -> None:
        stop = self._stops[operation.key]

        def forward(event: Event) -> None:
            self._signals.put(Progress(operation.key, event))
            if self._on_event is not None:
                self._on_event(event)

        def work() -> None:
            started = time.monotonic()
            try:
                value = self._attempts.run(operation.provider, operation.plan, "generate", forward, stop)
            except BaseException as error:  # delivered to the route, which decides what it means
                self._signals.put(Finished(operation.key, None, error, time.monotonic() - started))
            else:
                self._signals.put(Finished(operation.key, value, None, time.monotonic() - started))

        _spawn_thread(work, f"photomaker-route-{operation.provider}-{operation.key}")

    def cancel(self, operation: CancelJobs) -> None:
        def work() -> None:
            try:
                outcomes = self._attempts.cancel(operation.provider, operation.request_ids)
            except BridgeError as error:
                outcomes = _failed_outcomes(operation.provider, operation.request_ids, error)
            self._signals.put(CancelDone(operation.key, outcomes))

        _spawn_thread(work, f"photomaker-route-cancel-{operation.key}")

    def next(self, timeout: float | None) -> Any:
        try:
            return self._signals.get(timeout=timeout)
        except queue.Empty:
            return None


def drive_route(flow: Flow[Any], state: RouterState, attempts: Attempts, *, on_event: EventHandler | None = None,
                sleep: Callable[[float], None] = time.sleep) -> Any:
    """Drive a route flow with the sync client."""
    stepper = _Stepper(flow)
    threads = _Threads(attempts, on_event)
    try:
        while True:
            done, operation = stepper.next()
            if done:
                return operation
            try:
                if isinstance(operation, StateOperation):
                    stepper.deliver(state.perform(operation))
                elif isinstance(operation, Event):
                    log_event(operation)
                    if on_event is not None:
                        on_event(operation)
                elif isinstance(operation, Wait):
                    sleep(operation.seconds)
                elif isinstance(operation, RunAttempt):
                    stepper.deliver(_run_inline(operation, attempts, on_event))
                elif isinstance(operation, NextSignal):
                    stepper.deliver(threads.next(operation.timeout))
                elif not threads.handle(operation):
                    raise TypeError(f"a route flow yielded {operation!r}, which this driver cannot perform")
            except Exception as error:  # handed to the flow, which decides what it means
                stepper.fail(error)
    finally:
        threads.close()
        flow.close()


def _run_inline(operation: RunAttempt, attempts: Attempts, on_event: EventHandler | None) -> Finished:
    started = time.monotonic()
    try:
        value = attempts.run(operation.provider, operation.plan, operation.mode, on_event, None)
    except BridgeError as error:
        return Finished(operation.key, None, error, time.monotonic() - started)
    return Finished(operation.key, value, None, time.monotonic() - started)


# -- async -------------------------------------------------------------------------------------------------------


_BACKGROUND: set[asyncio.Task[Any]] = set()
"""Background attempts still cleaning up after their route returned (kept referenced until they end)."""


class _Tasks(_Background):
    """The background attempts of one async route: one task each, reporting through one queue."""

    def __init__(self, attempts: AsyncAttempts, on_event: EventHandler | None) -> None:
        super().__init__()
        self._attempts = attempts
        self._on_event = on_event
        self._signals: asyncio.Queue[Any] = asyncio.Queue()

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)

    def start(self, operation: StartAttempt) -> None:
        stop = self._stops[operation.key]

        async def forward(event: Event) -> None:
            self._signals.put_nowait(Progress(operation.key, event))
            if self._on_event is not None:
                outcome = self._on_event(event)
                if asyncio.iscoroutine(outcome):
                    await outcome

        async def work() -> None:
            started = time.monotonic()
            try:
                value = await self._attempts.run(operation.provider, operation.plan, "generate", forward, stop)
            except BaseException as error:  # delivered to the route, which decides what it means
                self._signals.put_nowait(Finished(operation.key, None, error, time.monotonic() - started))
                if not isinstance(error, Exception):
                    raise
            else:
                self._signals.put_nowait(Finished(operation.key, value, None, time.monotonic() - started))

        self._spawn(work())

    def cancel(self, operation: CancelJobs) -> None:
        async def work() -> None:
            try:
                outcomes = await self._attempts.cancel(operation.provider, operation.request_ids)
            except BridgeError as error:
                outcomes = _failed_outcomes(operation.provider, operation.request_ids, error)
            self._signals.put_nowait(CancelDone(operation.key, outcomes))

        self._spawn(work())

    async def next(self, timeout: float | None) -> Any:
        try:
            return await asyncio.wait_for(self._signals.get(), timeout)
        except TimeoutError:
            return None


async def adrive_route(flow: Flow[Any], state: RouterState, attempts: AsyncAttempts, *,
                       on_event: EventHandler | None = None,
                       sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> Any:
    """Drive a route flow with the async client."""
    stepper = _Stepper(flow)
    tasks = _Tasks(attempts, on_event)
    try:
        while True:
            done, operation = stepper.next()
            if done:
                return operation
            try:
                if isinstance(operation, StateOperation):
                    stepper.deliver(await state.aperform(operation))
                elif isinstance(operation, Event):
                    log_event(operation)
                    if on_event is not None:
                        outcome = on_event(operation)
                        if asyncio.iscoroutine(outcome):
                            await outcome
                elif isinstance(operation, Wait):
                    await sleep(operation.seconds)
                elif isinstance(operation, RunAttempt):
                    stepper.deliver(await _arun_inline(operation, attempts, on_event))
                elif isinstance(operation, NextSignal):
                    stepper.deliver(await tasks.next(operation.timeout))
                elif not tasks.handle(operation):
                    raise TypeError(f"a route flow yielded {operation!r}, which this driver cannot perform")
            except Exception as error:  # handed to the flow, which decides what it means
                stepper.fail(error)
    finally:
        tasks.close()
        flow.close()


async def _arun_inline(operation: RunAttempt, attempts: AsyncAttempts, on_event: EventHandler | None) -> Finished:
    started = time.monotonic()
    try:
        value = await attempts.run(operation.provider, operation.plan, operation.mode, on_event, None)
    except BridgeError as error:
        return Finished(operation.key, None, error, time.monotonic() - started)
    return Finished(operation.key, value, None, time.monotonic() - started)


async def wait_background(timeout: float = CLEANUP_GRACE_SECONDS) -> None:
    """Let background attempts of this loop finish their clean-up (bounded), e.g. before the loop closes."""
    loop = asyncio.get_running_loop()
    mine = [task for task in _BACKGROUND if task.get_loop() is loop and not task.done()]
    if mine:
        await asyncio.wait(mine, timeout=timeout)
