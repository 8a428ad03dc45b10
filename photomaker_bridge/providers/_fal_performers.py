"""The runners of the fal flows' operations: one ``fal_client`` client per bridge client, sync or async.

The flows (``_fal_flow``) yield :class:`FalUpload`, :class:`FalSubmit`, :class:`FalStatusCheck`,
:class:`FalFetch` and :class:`FalCancel`; a performer runs each with its client (``_fal_client``), bounded by the
time the driver says is left, and hands back plain values or raises the bridge's typed errors. ``fal_client``
does not retry here (its failures come straight back, ``_fal_client``): the flows' steps decide.

A submit cut short by the deadline (past the clean-up grace the driver gives a step that creates a job) may
still be accepted by fal after nobody waits for it: it runs on, and its request is cancelled once fal answers
(docs/protocols/fal.md §1.7), so that no job runs and bills unreported. ``close``/``aclose`` wait for such
background work within the clean-up grace.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Final, TypeVar

import fal_client.client as fal_module
import httpx

from .._connections import ConnectionLimits
from .._http import CLEANUP_GRACE_SECONDS
from ..errors import ClientClosedError, ProviderUnavailableError
from ._fal_client import AsyncFalClient, SyncFalClient, mapped_errors, status_of
from ._fal_flow import FalCancel, FalFetch, FalStatusCheck, FalSubmit, FalUpload, JobTracker
from ._fal_parse import PROVIDER, parse_submit

if TYPE_CHECKING:
    from .fal import FalProvider

__all__ = ["FalAsyncPerformer", "FalSyncPerformer"]

T = TypeVar("T")

_OPERATIONS: Final = (FalUpload, FalSubmit, FalStatusCheck, FalFetch, FalCancel)


def _check_operation(operation: Any) -> None:
    if not isinstance(operation, _OPERATIONS):
        raise TypeError(f"the fal performer cannot run {operation!r}")


def _request_id_of(operation: Any) -> str | None:
    request_id = getattr(operation, "request_id", None)
    return request_id if isinstance(request_id, str) else None


def _errors(operation: Any, provider: FalProvider) -> contextlib.AbstractContextManager[None]:
    return mapped_errors(_request_id_of(operation), reads=not isinstance(operation, FalSubmit),
                         handle_for=provider.handle_for)


def _fetched(response: httpx.Response) -> Any:
    """A completed request's output. Fetched straight from its response URL once a status call said COMPLETED:
    ``fal_client.result()`` would ask for the status once more first (docs/protocols/fal.md §1.8). An error
    answer never gets here (the client's transport raises it)."""
    return response.json()


def _cancel_answer(response: httpx.Response) -> str | None:
    """The ``status`` of a 2xx cancel answer (``CANCELLATION_REQUESTED``, ...), when it has one (fal.md §1.7)."""
    try:
        body = response.json()
    except ValueError:
        return None
    status = body.get("status") if isinstance(body, dict) else None
    return status if isinstance(status, str) else None


def _deadline_error(operation: Any, remaining: float) -> ProviderUnavailableError:
    return ProviderUnavailableError(f"fal did not answer {type(operation).__name__} within the {remaining:.3g} s "
                                    "left before the deadline", provider=PROVIDER, code="timeout",
                                    request_id=_request_id_of(operation))


def _quietly(function: Callable[..., Any], *arguments: Any) -> None:
    with contextlib.suppress(Exception):
        function(*arguments)


async def _aquietly(awaitable: Awaitable[Any]) -> None:
    with contextlib.suppress(Exception):
        await awaitable


def _spawn(name: str, function: Callable[[], T]) -> concurrent.futures.Future[T]:
    """Run ``function`` in a new daemon thread; its outcome lands in the returned future.

    Not a fixed pool: a call cut short by a deadline keeps its thread until its HTTP timeout, and in a pool later
    calls and cancels would queue behind such calls. Daemon, because ``concurrent.futures`` joins its workers at
    interpreter exit, so one stuck call would hold up the caller's program for its whole length.
    """
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return  # cancelled before it started: nothing was sent
        try:
            result = function()
        except BaseException as error:  # handed to whoever waits, as concurrent.futures does
            future.set_exception(error)
        else:
            future.set_result(result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


class FalSyncPerformer:
    """Runs fal operations for the sync driver with one :class:`SyncFalClient` (thread-safe).

    A sync ``fal_client`` call cannot be interrupted, so when the caller has a deadline each call runs in a thread
    of its own (:func:`_spawn`) and the driver waits at most the time left; a call cut short keeps its thread
    until its HTTP timeout, and its outcome is dropped — except a submit's, whose request is cancelled.
    """

    def __init__(self, provider: FalProvider, connections: ConnectionLimits | None = None) -> None:
        self._provider = provider
        self._connections = connections
        self._lock = threading.Condition()  # guards the state below, signals background work ending
        self._client: SyncFalClient | None = None
        self._background: set[concurrent.futures.Future[Any]] = set()
        """Cancels sent in the background, and submits cut short whose request is cancelled once fal answers."""
        self._closing = False

    def _ensure(self) -> SyncFalClient:
        with self._lock:
            if self._closing:
                raise ClientClosedError("this fal client is closed")
            if self._client is None:
                self._client = SyncFalClient(self._provider.resolved_key(), self._provider.base_url, self._connections)
            return self._client

    def _call(self, client: SyncFalClient, operation: Any) -> Callable[[], Any]:
        if isinstance(operation, FalUpload):
            return lambda: client.upload(operation.data, operation.content_type, operation.file_name)
        if isinstance(operation, FalSubmit):
            return lambda: self._submit(client, operation)
        if isinstance(operation, FalStatusCheck):
            return lambda: status_of(client.status(operation.application, operation.request_id,
                                                   with_logs=operation.with_logs))
        if isinstance(operation, FalFetch):
            return lambda: _fetched(client.get_handle(operation.application, operation.request_id).client.get(
                client.get_handle(operation.application, operation.request_id).response_url,
                timeout=fal_module.QUEUE_POLL_TIMEOUT))
        assert isinstance(operation, FalCancel)
        return lambda: _cancel_answer(client.get_handle(operation.application, operation.request_id).client.put(
            client.get_handle(operation.application, operation.request_id).cancel_url,
            timeout=fal_module.QUEUE_POLL_TIMEOUT))

    def _submit(self, client: SyncFalClient, operation: FalSubmit) -> Any:
        handle = client.submit(operation.application, dict(operation.arguments), **operation.options)
        if operation.jobs is not None:
            operation.jobs.hook = self._cancel_later
        return parse_submit({"request_id": handle.request_id})

    def perform(self, operation: Any, remaining: float | None) -> Any:
        """Run ``operation``, waiting at most ``remaining`` seconds (``None``: no limit)."""
        _check_operation(operation)
        with _errors(operation, self._provider):
            client = self._ensure()
            call = self._call(client, operation)
            if remaining is None:
                return call()
            future = _spawn("fal-call", call)
            finished = False
            try:
                finished = bool(concurrent.futures.wait([future], timeout=max(remaining, 0.001)).done)
            finally:
                # Out of time (or interrupted): a call that has not started yet is dropped; a submit that has
                # may still create a job nobody knows of, so it is cancelled once fal answers.
                if not finished and not future.cancel() and isinstance(operation, FalSubmit):
                    self._cancel_when_accepted(future, operation.application)
            if not finished:
                raise _deadline_error(operation, remaining)
            return future.result()

    def _track(self, future: concurrent.futures.Future[Any],
               on_done: Callable[[concurrent.futures.Future[Any]], None] | None = None) -> None:
        """Keep ``future`` among the background work until it ends (after ``on_done`` ran), waking close()."""
        with self._lock:
            self._background.add(future)

        def ended(finished: concurrent.futures.Future[Any]) -> None:
            try:
                if on_done is not None:
                    on_done(finished)
            finally:
                with self._lock:
                    self._background.discard(finished)
                    self._lock.notify_all()

        future.add_done_callback(ended)  # outside the lock: it runs at once if the future is already done

    def _cancel_when_accepted(self, future: concurrent.futures.Future[Any], application: str) -> None:
        """A submit the deadline (and its grace) cut short: cancel its request once fal answers (fal.md §1.7)."""

        def accepted(finished: concurrent.futures.Future[Any]) -> None:
            if finished.cancelled() or finished.exception() is not None:
                return  # fal refused it or never heard of it: nothing runs
            self._cancel_later([(application, finished.result().request_id)])

        self._track(future, accepted)

    def _cancel_later(self, requests: Sequence[tuple[str, str]]) -> None:
        with self._lock:
            client = self._client
            if client is None or self._closing:
                return
        for application, request_id in requests:
            self._track(_spawn("fal-cancel", partial(_quietly, client.cancel, application, request_id)))

    def close(self) -> None:
        """Finish background work (cancels) within the clean-up grace, then close the connection pool. Takes at
        most ``CLEANUP_GRACE_SECONDS``; calls after it raise :class:`ClientClosedError`."""
        with self._lock:
            if self._closing:
                return
            self._lock.wait_for(lambda: not self._background, timeout=CLEANUP_GRACE_SECONDS)
            self._closing = True
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def forget(self) -> None:
        """Drop the client without closing it (the child of a fork must not touch the parent's connections)."""
        with self._lock:
            self._client = None
            self._background = set()


class FalAsyncPerformer:
    """Runs fal operations for the async driver with one :class:`AsyncFalClient`, on the client's event loop.

    Each call is bounded with ``asyncio.wait_for(remaining)``. When the caller's task is cancelled while a
    ``generate`` call has requests in flight, they are cancelled in the background (fal keeps running, and
    billing, a request nobody collects); a submit cut short by the deadline or by the caller's cancellation runs
    on, and its request is cancelled once fal answers.
    """

    def __init__(self, provider: FalProvider, connections: ConnectionLimits | None = None) -> None:
        self._provider = provider
        self._connections = connections
        self._client: AsyncFalClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._background: set[asyncio.Task[Any]] = set()
        """Background cancels, and submits cut short whose request is cancelled once fal answers."""
        self._closing = False

    def _ensure(self) -> AsyncFalClient:
        if self._closing:
            raise ClientClosedError("this fal client is closed")
        if self._client is None:
            self._client = AsyncFalClient(self._provider.resolved_key(), self._provider.base_url, self._connections)
            self._loop = asyncio.get_running_loop()
        return self._client

    async def _call(self, client: AsyncFalClient, operation: Any) -> Any:
        if isinstance(operation, FalUpload):
            return await client.upload(operation.data, operation.content_type, operation.file_name)
        if isinstance(operation, FalStatusCheck):
            return status_of(await client.status(operation.application, operation.request_id,
                                                 with_logs=operation.with_logs))
        handle = await client.get_handle(operation.application, operation.request_id)
        if isinstance(operation, FalFetch):
            return _fetched(await handle.client.get(handle.response_url, timeout=fal_module.QUEUE_POLL_TIMEOUT))
        assert isinstance(operation, FalCancel)
        return _cancel_answer(await handle.client.put(handle.cancel_url, timeout=fal_module.QUEUE_POLL_TIMEOUT))

    async def _submit(self, client: AsyncFalClient, operation: FalSubmit, remaining: float | None) -> Any:
        # The submit runs as a task of its own, awaited through a shield: when the deadline (past the grace the
        # driver gives a step that creates a job) or the caller's cancellation stops the wait, fal may still
        # accept it, and nobody would know the id of a job that runs and bills. The task runs on instead, and
        # its request is cancelled once fal answers (fal.md §1.7).
        task = asyncio.ensure_future(client.submit(operation.application, dict(operation.arguments),
                                                   **operation.options))
        try:
            if remaining is None:
                handle = await asyncio.shield(task)
            else:
                handle = await self._bounded(asyncio.shield(task), operation, remaining)
        except BaseException:
            if not task.done():
                self._cancel_when_accepted(task, operation.application)
            raise
        return parse_submit({"request_id": handle.request_id})

    @staticmethod
    async def _bounded(awaitable: Awaitable[T], operation: Any, remaining: float) -> T:
        try:
            result = await asyncio.wait_for(awaitable, max(remaining, 0.001))
        except TimeoutError:
            raise _deadline_error(operation, remaining) from None
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # Python 3.11's wait_for returns the result of a call that ended just as the caller was cancelled,
            # dropping the cancellation (https://github.com/python/cpython/issues/86296): raise it after all.
            raise asyncio.CancelledError
        return result

    def _watch(self, jobs: JobTracker) -> None:
        """Cancel ``jobs``' requests if the task running the flow ends before the flow does.

        Called from :meth:`_perform`, which runs in the caller's task."""
        jobs.hook = self._cancel_later
        task = asyncio.current_task()
        if task is None or jobs.on_close is not None:
            return

        def ended(_: object) -> None:
            jobs.abandon()

        def unwatch() -> None:
            task.remove_done_callback(ended)

        task.add_done_callback(ended)
        # A long-lived task may run many generations: stop watching once this one is over.
        jobs.on_close = unwatch

    def perform(self, operation: Any, remaining: float | None) -> Awaitable[Any]:
        """Run ``operation``, waiting at most ``remaining`` seconds (``None``: no limit)."""
        _check_operation(operation)
        return self._perform(operation, remaining)

    async def _perform(self, operation: Any, remaining: float | None) -> Any:
        jobs: JobTracker | None = getattr(operation, "jobs", None)
        try:
            with _errors(operation, self._provider):
                client = self._ensure()
                if isinstance(operation, FalSubmit):
                    if jobs is not None:
                        self._watch(jobs)
                    return await self._submit(client, operation, remaining)
                if remaining is None:
                    return await self._call(client, operation)
                return await self._bounded(self._call(client, operation), operation, remaining)
        except asyncio.CancelledError:
            # The caller cancelled: nobody will collect this call's requests (Python 3.12+ wait_for cancels
            # inside the caller's own task, so the task's done-callback may come much later).
            if jobs is not None:
                jobs.abandon()
            raise

    def _cancel_when_accepted(self, task: asyncio.Task[Any], application: str) -> None:
        """A submit nobody waits for any more: cancel its request once fal answers (fal.md §1.7)."""

        def accepted(finished: asyncio.Task[Any]) -> None:
            self._background.discard(finished)
            if finished.cancelled() or finished.exception() is not None:
                return  # fal refused it or never heard of it: nothing runs
            self._cancel_later([(application, finished.result().request_id)])

        self._background.add(task)
        task.add_done_callback(accepted)

    def _cancel_later(self, requests: Sequence[tuple[str, str]]) -> None:
        loop, client = self._loop, self._client
        if loop is None or client is None or self._closing or loop.is_closed():
            return

        def start() -> None:
            for application, request_id in requests:
                cancel = asyncio.wait_for(client.cancel(application, request_id), CLEANUP_GRACE_SECONDS)
                task = loop.create_task(_aquietly(cancel))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

        running = None
        with contextlib.suppress(RuntimeError):
            running = asyncio.get_running_loop()
        if running is loop:
            start()
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing can be sent any more
            loop.call_soon_threadsafe(start)

    async def aclose(self) -> None:
        """Finish background work within the clean-up grace, then close the connection pool. Takes at most
        ``CLEANUP_GRACE_SECONDS``; calls after it raise :class:`ClientClosedError`."""
        if self._closing:
            return
        loop = asyncio.get_running_loop()
        ends = loop.time() + CLEANUP_GRACE_SECONDS
        await asyncio.sleep(0)  # let cancels scheduled by a just-cancelled task start
        while True:
            # A submit that ends here starts its cancel from its done-callback: look again until none is left.
            waiting = {task for task in self._background if task.get_loop() is loop and not task.done()}
            left = ends - loop.time()
            if not waiting or left <= 0:
                break
            await asyncio.wait(waiting, timeout=left)
        self._closing = True
        for task in self._background:
            task.cancel()  # out of time; the pool closes below, so they could not send anything anyway
        self._background = set()
        client, self._client = self._client, None
        if client is not None and self._loop is loop:
            await client.aclose()

    def forget(self) -> None:
        """Drop the client without closing it (the child of a fork must not touch the parent's connections)."""
        self._client, self._loop = None, None
        self._background = set()

