"""``Bridge``: the sync client, over ``requests`` (threads for what runs side by side). See ``client.py``."""


from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._client_attempts import SyncAttempts
from ._client_base import BridgeBase, EventHandler, Mode, ProviderChoice
from ._client_values import with_data
from ._connections import DEFAULT_KEEPALIVE, DEFAULT_MAX_CONNECTIONS
from ._http import Flow, Stop, run_flow
from ._retry import RetryPolicy
from ._transports import RequestsTransport
from .errors import BridgeError, ProviderError
from .jobs import CancelOutcome, JobHandle
from .providers.base import Provider, SyncPerformer
from .request import PhotoMakerRequest
from .result import GeneratedImage, PhotoMakerResult
from .routing import (
    BreakerSettings,
    RouterState,
    drive_route,
    join_background,
    route_flow,
)

if TYPE_CHECKING:
    from .state import State


__all__ = ["Bridge"]

_MAX_PARALLEL = 32
"""Requests of one sync ``generate_many`` run side by side (each in a thread; provider limits still apply)."""


class Bridge(BridgeBase):
    """The sync client. Use it as a context manager; it owns one ``requests`` connection pool.

    ``Bridge()`` reads keys from ``RUNWARE_API_KEY``, ``FAL_KEY`` (or ``FAL_KEY_ID`` + ``FAL_KEY_SECRET``) and
    ``EACHLABS_API_KEY`` when a provider is first used; ``Bridge(providers=[RunwareProvider(api_key=...)])``
    configures them explicitly. A missing key is a :class:`ConfigurationError` before any request.
    ``retry=RetryPolicy(...)`` sets how failed steps are tried again; ``budget=`` caps what all the client's calls
    may spend (USD), ``breaker=BreakerSettings(...)`` when a provider's circuit breaker opens, and
    ``router_state=`` where routed calls keep what they share (docs/routing.md). ``max_connections`` (default 100,
    ``None``: no limit) and ``keepalive`` (seconds an idle connection is kept, default 15; 0 closes each after its
    answer) set the connection pools, fal's included (docs/architecture.md, "Transports"). ``state=`` (a
    :class:`~photomaker_bridge.state.MemoryState` or :class:`~photomaker_bridge.state.RedisState`) keeps provider
    slots, breakers, numbers, spend and the job journal there instead, shared with every client — and, with
    Redis, every process — using it (docs/scaling.md).

    A ``Bridge`` may be shared between threads: its calls share the connection pool, the provider limits (a call
    beyond a limit waits for a slot), the uploads (one upload per distinct photo, even when calls ask at once) and
    the router state. After :meth:`close` every call raises :class:`~photomaker_bridge.ClientClosedError`.
    """

    def __init__(self, providers: Iterable[Provider] | None = None, *, retry: RetryPolicy | None = None,
                 budget: Decimal | float | str | None = None, breaker: BreakerSettings | None = None,
                 router_state: RouterState | None = None, max_connections: int | None = DEFAULT_MAX_CONNECTIONS,
                 keepalive: float = DEFAULT_KEEPALIVE, state: State | None = None) -> None:
        super().__init__(providers, retry=retry, budget=budget, breaker=breaker, router_state=router_state,
                         max_connections=max_connections, keepalive=keepalive, state=state)
        self._transport = RequestsTransport(connections=self._connections)
        self._performers: dict[str, SyncPerformer | None] = {}

    def __enter__(self) -> Bridge:
        self._check_open()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool and any provider SDK clients, letting background cancels (and hedge losers
        being stopped) finish within the clean-up grace (5 s at most). Calls after it raise
        :class:`~photomaker_bridge.ClientClosedError`."""
        if not self._mark_closed():
            return
        join_background()  # hedge losers still cancelling their jobs use this client's connections
        with self._lock:
            performers, self._performers = list(self._performers.values()), {}
        for performer in performers:
            if performer is not None:
                performer.close()
        self._transport.close()

    def _after_fork(self) -> None:
        super()._after_fork()
        self._transport = RequestsTransport(connections=self._connections)  # the parent's sockets stay the parent's

    def _performer(self, adapter: Provider) -> SyncPerformer | None:
        with self._lock:
            self._check_open()
            if adapter.name not in self._performers:
                self._performers[adapter.name] = adapter.sync_performer(self._connections)
            return self._performers[adapter.name]

    def _drive(self, adapter: Provider, flow: Flow[Any], deadline: float | None, on_event: EventHandler | None,
               stop: Stop | None = None) -> Any:
        performer = self._performer(adapter)
        return run_flow(flow, self._transport, perform=performer.perform if performer else None, deadline=deadline,
                        on_event=on_event, coordinator=self._coordinator, stop=stop)

    def _route(self, request: PhotoMakerRequest, provider: ProviderChoice, strict: bool, mode: Mode,
               deadline: float | None, on_event: EventHandler | None, after: ProviderError | None = None, *,
               webhook_url: str | None = None, keep_running: bool = False) -> Any:
        call = self._route_call(request, provider, strict, mode, deadline, after, webhook_url,
                                keep_running=keep_running)
        return drive_route(route_flow(call), self._router_state,
                           SyncAttempts(self, deadline, keep_running=keep_running), on_event=on_event)

    def generate(self, request: PhotoMakerRequest, provider: ProviderChoice, *, timeout: float | None = None,
                 on_event: EventHandler | None = None, strict: bool = False,
                 download: bool = False, webhook_url: str | None = None,
                 idempotency_key: str | None = None, keep_running: bool = False) -> PhotoMakerResult:
        """Generate on ``provider`` — a name, a list of names (an ordered route) or a :class:`~photomaker_bridge.
        Route` — and wait for the images. ``result.attempts`` is the decision trail (docs/routing.md).

        ``timeout`` (seconds, finite and positive; ``None``: no deadline) bounds the whole call — every attempt of a
        route, uploads, waits for a provider slot and polling included; the call returns within it plus the clean-up
        grace (5 s). When it passes, the job is cancelled where the provider allows it and
        :class:`~photomaker_bridge.GenerationTimeoutError` says what became of each job and carries the handles; a
        job that turned out to have finished is collected and returned instead. ``download=True`` fetches every
        image's bytes. ``webhook_url``: the provider also POSTs the outcome there (fal, Runware; see :meth:`submit`);
        the call still waits and returns the images.

        ``idempotency_key``: the job is paid for once per key. The key's accepted job is recorded in the client's
        state (``state=``; with a ``RedisState``, for every process) and any later call with the same key — after a
        crash, from another process — collects that job instead of submitting again (docs/scaling.md). Such a call
        submits and then collects, so a passed deadline leaves the job running for the next call with the key.
        ``keep_running=True``: when the deadline passes or the call is cancelled, the provider's jobs are left running
        instead of cancelled, and the :class:`~photomaker_bridge.GenerationTimeoutError` carries their handle. Pair it
        with ``on_event``: a ``handle`` event gives the handle as soon as there is one (``Event.accepted`` says
        whether the provider has confirmed it), so a caller that records it can collect the job with ``result()``
        after a crash without paying twice — what the batch runner does (docs/compare-and-batch.md). Not with a
        hedged route, whose losers' jobs must be cancelled.
        """
        mark = self._state_mark()
        deadline = self._deadline(timeout)
        if idempotency_key is not None:
            from .state._idempotent import run_idempotent

            state, flow = self._idempotent(idempotency_key, provider, deadline)
            result: PhotoMakerResult = run_idempotent(
                state, flow, deadline,
                lambda left, after: self._route(request, provider, strict, "submit", self._deadline(left), on_event,
                                                after, webhook_url=webhook_url),
                lambda handle, left: self.result(handle, timeout=left, on_event=on_event))
        else:
            result = self._route(request, provider, strict, "generate", deadline, on_event, webhook_url=webhook_url,
                                 keep_running=keep_running)
        result = self._state_warned(result, mark)
        return self.download(result, timeout=self._left(deadline)) if download else result

    def submit(self, request: PhotoMakerRequest, provider: ProviderChoice, *, timeout: float | None = None,
               on_event: EventHandler | None = None, strict: bool = False, webhook_url: str | None = None,
               after: ProviderError | None = None) -> JobHandle:
        """Upload and submit, returning as soon as a provider accepted the job (with a route: the first that
        accepts it, falling back as its policies say). The handle's ``attempts`` carry the trail to ``result()``.

        ``webhook_url`` (an http(s) URL): the provider POSTs the job's outcome there when it is done — fal
        (``fal_webhook``, signed) and Runware (``webhookURL``, one call per image); read it with
        :func:`photomaker_bridge.webhooks.parse_webhook`. Eachlabs documents no webhook for predictions: a direct
        call raises :class:`~photomaker_bridge.ConfigurationError`, a route skips it. The handle works with
        :meth:`result` either way.

        ``after``: the error ``result()`` raised for the job of an earlier submit of the same route; the route then
        goes on from there (its attempts count, its policy decides, or ``after`` is raised again)."""
        deadline = self._deadline(timeout)
        handle: JobHandle = self._route(request, provider, strict, "submit", deadline, on_event, after,
                                        webhook_url=webhook_url)
        return handle

    def result(self, handle: JobHandle, *, timeout: float | None = None, on_event: EventHandler | None = None,
               download: bool = False) -> PhotoMakerResult:
        """Wait for a submitted job and collect it. On timeout the job keeps running (resume it later)."""
        started = time.monotonic()
        mark = self._state_mark()
        deadline = self._deadline(timeout)
        self._check_open()
        adapter = self.provider(handle.provider)
        adapter.require_key()
        flow = adapter.result_flow(handle, self._context(cancel_on_deadline=False, deadline=deadline))
        try:
            result: PhotoMakerResult = self._drive(adapter, flow, deadline, on_event)
        except BridgeError as error:
            self._router_state.perform(self._collected(handle, None, error, time.monotonic() - started)[1])
            raise
        collected, record = self._collected(handle, self._finish(result, handle.warnings, started), None,
                                            time.monotonic() - started)
        self._router_state.perform(record)
        assert collected is not None
        collected = self._state_warned(collected, mark)
        return self.download(collected, timeout=self._left(deadline)) if download else collected

    def resume(self, provider: str, request_id: str, *, timeout: float | None = None,
               on_event: EventHandler | None = None, download: bool = False) -> PhotoMakerResult:
        """Collect a job submitted earlier, by this process or another, from its provider and id."""
        return self.result(self.provider(provider).handle_for(request_id), timeout=timeout, on_event=on_event,
                           download=download)

    def cancel(self, handle: JobHandle, *, timeout: float | None = None) -> tuple[CancelOutcome, ...]:
        """Cancel every job of ``handle`` where its provider allows it; one :class:`~photomaker_bridge.
        CancelOutcome` per request id says what became of it (Runware has no cancel: ``not_supported``)."""
        deadline = self._deadline(timeout)
        self._check_open()
        adapter = self.provider(handle.provider)
        adapter.require_key()
        flow = adapter.cancel_flow(handle, self._context(cancel_on_deadline=False, deadline=deadline))
        outcomes: tuple[CancelOutcome, ...] = self._drive(adapter, flow, deadline, None)
        return outcomes

    def generate_many(self, requests: Sequence[PhotoMakerRequest], provider: ProviderChoice = "runware", *,
                      timeout: float | None = None, on_event: EventHandler | None = None,
                      strict: bool = False) -> list[PhotoMakerResult | BridgeError]:
        """Generate several requests; one result or error per request, in order, none lost.

        On Runware alone they go as one task array, matched by taskUUID; otherwise each request is generated (and,
        with a route, routed) side by side (threads of this client; a provider limit makes the surplus wait for a
        slot, and shared photos are uploaded once). A request no candidate can take is refused before anything is
        sent. ``timeout`` bounds the whole call; ``on_event`` may be called from several threads.
        """
        started = time.monotonic()
        deadline = self._deadline(timeout)
        route = self._check_many(requests, provider, strict)
        adapter = self.provider(str(provider)) if route is None else None
        if adapter is not None and adapter.supports_batch:
            adapter.require_key()
            plans = [adapter.plan(request, strict=strict) for request in requests]
            outcomes: list[PhotoMakerResult | ProviderError] = self._drive(
                adapter, adapter.generate_many_flow(plans, self._context(cancel_on_deadline=True, deadline=deadline)),
                deadline, on_event)
            finished = [self._finish(outcome, plan.warnings, started) if isinstance(outcome, PhotoMakerResult)
                        else outcome for outcome, plan in zip(outcomes, plans, strict=True)]
            marked, records = self._batch_trails(adapter.name, finished, time.monotonic() - started)
            for record in records:
                self._router_state.perform(record)
            return list(marked)

        def one(request: PhotoMakerRequest) -> PhotoMakerResult | BridgeError:
            try:
                generated: PhotoMakerResult = self._route(request, provider, strict, "generate", deadline, on_event)
            except BridgeError as error:
                return error
            return generated

        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(len(requests), _MAX_PARALLEL),
                                thread_name_prefix="photomaker-generate-many") as pool:
            return list(pool.map(one, requests))

    def download(self, result: PhotoMakerResult, *, timeout: float = 60.0) -> PhotoMakerResult:
        """``result`` with every image's bytes fetched, several at a time.

        An image that cannot be downloaded keeps its URL (no bytes) and the result gets a warning saying so:
        the generation was paid for, so its result is never dropped for a failed download.
        """
        pending: list[GeneratedImage] = list(result.images)
        if all(image.data is not None for image in pending):
            return result

        def fetch(image: GeneratedImage) -> bytes | ProviderError:
            try:
                return image.fetch(timeout=timeout)
            except ProviderError as error:
                return error

        with ThreadPoolExecutor(max_workers=min(8, max(1, len(pending)))) as pool:
            payloads = list(pool.map(fetch, pending))
        return with_data(result, payloads)
