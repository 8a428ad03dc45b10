"""The runner of the fal flows' operations for the sync driver: one :class:`SyncFalClient` per bridge client
(what both performers share is in ``_fal_performer_common``)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import fal_client.client as fal_module

from .._connections import ConnectionLimits
from .._http import CLEANUP_GRACE_SECONDS
from ..errors import ClientClosedError
from ._fal_client import SyncFalClient, status_of
from ._fal_operations import FalCancel, FalFetch, FalStatusCheck, FalStatusStream, FalSubmit, FalUpload
from ._fal_parse import parse_submit
from ._fal_performer_common import cancel_answer, check_operation, deadline_error, fetched, operation_errors
from ._fal_stream import read_stream

if TYPE_CHECKING:
    from .fal import FalProvider

__all__ = ["FalSyncPerformer"]

T = TypeVar("T")


def _quietly(function: Callable[..., Any], *arguments: Any) -> None:
    with contextlib.suppress(Exception):
        function(*arguments)


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
        if isinstance(operation, FalStatusStream):
            return lambda: self._stream(client, operation)
        if isinstance(operation, FalFetch):
            return lambda: fetched(client.get_handle(operation.application, operation.request_id).client.get(
                client.get_handle(operation.application, operation.request_id).response_url,
                timeout=fal_module.QUEUE_POLL_TIMEOUT))
        assert isinstance(operation, FalCancel)
        return lambda: cancel_answer(client.get_handle(operation.application, operation.request_id).client.put(
            client.get_handle(operation.application, operation.request_id).cancel_url,
            timeout=fal_module.QUEUE_POLL_TIMEOUT))

    def _submit(self, client: SyncFalClient, operation: FalSubmit) -> Any:
        handle = client.submit(operation.application, dict(operation.arguments), **operation.options)
        if operation.jobs is not None:
            operation.jobs.hook = self._cancel_later
        return parse_submit({"request_id": handle.request_id})

    @staticmethod
    def _stream(client: SyncFalClient, operation: FalStatusStream) -> Any:
        handle = client.get_handle(operation.application, operation.request_id)
        return read_stream(handle.client, handle.status_url, operation.request_id, operation.with_logs,
                           operation.seconds, operation.known)

    def perform(self, operation: Any, remaining: float | None) -> Any:
        """Run ``operation``, waiting at most ``remaining`` seconds (``None``: no limit)."""
        check_operation(operation)
        with operation_errors(operation, self._provider):
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
                raise deadline_error(operation, remaining)
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
