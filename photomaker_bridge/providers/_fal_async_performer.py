"""The runner of the fal flows' operations for the async driver: one :class:`AsyncFalClient` per bridge client,
on the client's event loop (what both performers share is in ``_fal_performer_common``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import fal_client.client as fal_module

from .._connections import ConnectionLimits
from .._http import CLEANUP_GRACE_SECONDS
from ..errors import ClientClosedError
from ._fal_client import AsyncFalClient, status_of
from ._fal_operations import FalCancel, FalFetch, FalStatusCheck, FalStatusStream, FalSubmit, FalUpload, JobTracker
from ._fal_parse import parse_submit
from ._fal_performer_common import cancel_answer, check_operation, deadline_error, fetched, operation_errors
from ._fal_stream import aread_stream

if TYPE_CHECKING:
    from .fal import FalProvider

__all__ = ["FalAsyncPerformer"]

T = TypeVar("T")


async def _aquietly(awaitable: Awaitable[Any]) -> None:
    with contextlib.suppress(Exception):
        await awaitable


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
        if isinstance(operation, FalStatusStream):
            return await aread_stream(handle.client, handle.status_url, operation.request_id, operation.with_logs,
                                      operation.seconds, operation.known)
        if isinstance(operation, FalFetch):
            return fetched(await handle.client.get(handle.response_url, timeout=fal_module.QUEUE_POLL_TIMEOUT))
        assert isinstance(operation, FalCancel)
        return cancel_answer(await handle.client.put(handle.cancel_url, timeout=fal_module.QUEUE_POLL_TIMEOUT))

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
            raise deadline_error(operation, remaining) from None
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
        check_operation(operation)
        return self._perform(operation, remaining)

    async def _perform(self, operation: Any, remaining: float | None) -> Any:
        jobs: JobTracker | None = getattr(operation, "jobs", None)
        try:
            with operation_errors(operation, self._provider):
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
