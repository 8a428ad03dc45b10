"""``Bridge`` (sync, over requests) and ``AsyncBridge`` (async, over aiohttp): thin shells over the providers.

Both do the same things, the only difference being the driver: validate and translate the request (pure,
:meth:`Provider.plan`), pick the provider's flow, drive it with the client's one transport (and, for fal, the
client's one fal_client) and its one coordinator (provider limits, uploads shared by its calls), and tidy the
result (the plan's warnings, total time, optional download). No protocol logic lives here; it is written once
per provider, in ``photomaker_bridge.providers``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

from ._client_base import BridgeBase, EventHandler, with_data
from ._http import Flow, arun_flow, run_flow
from ._retry import RetryPolicy
from ._transports import AiohttpTransport, RequestsTransport
from .errors import ConfigurationError, ProviderError
from .jobs import CancelOutcome, JobHandle
from .plan import Plan
from .providers.base import AsyncPerformer, Provider, SyncPerformer
from .request import PhotoMakerRequest
from .result import GeneratedImage, PhotoMakerResult

__all__ = ["AsyncBridge", "Bridge", "EventHandler"]

_MAX_PARALLEL = 32
"""Requests of one sync ``generate_many`` run side by side (each in a thread; provider limits still apply)."""


class Bridge(BridgeBase):
    """The sync client. Use it as a context manager; it owns one ``requests`` connection pool.

    ``Bridge()`` reads keys from ``RUNWARE_API_KEY``, ``FAL_KEY`` (or ``FAL_KEY_ID`` + ``FAL_KEY_SECRET``) and
    ``EACHLABS_API_KEY`` when a provider is first used; ``Bridge(providers=[RunwareProvider(api_key=...)])``
    configures them explicitly. A missing key is a :class:`ConfigurationError` before any request.
    ``retry=RetryPolicy(...)`` sets how failed steps are tried again.

    A ``Bridge`` may be shared between threads: its calls share the connection pool, the provider limits (a call
    beyond a limit waits for a slot) and the uploads (one upload per distinct photo, even when calls ask at once).
    After :meth:`close` every call raises :class:`~photomaker_bridge.ClientClosedError`.
    """

    def __init__(self, providers: Iterable[Provider] | None = None, *, retry: RetryPolicy | None = None) -> None:
        super().__init__(providers, retry=retry)
        self._transport = RequestsTransport()
        self._performers: dict[str, SyncPerformer | None] = {}

    def __enter__(self) -> Bridge:
        self._check_open()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool and any provider SDK clients, letting background cancels finish within the
        clean-up grace (5 s at most). Calls after it raise :class:`~photomaker_bridge.ClientClosedError`."""
        if not self._mark_closed():
            return
        with self._lock:
            performers, self._performers = list(self._performers.values()), {}
        for performer in performers:
            if performer is not None:
                performer.close()
        self._transport.close()

    def _after_fork(self) -> None:
        super()._after_fork()
        self._transport = RequestsTransport()  # the parent's sockets stay the parent's

    def _performer(self, adapter: Provider) -> SyncPerformer | None:
        with self._lock:
            self._check_open()
            if adapter.name not in self._performers:
                self._performers[adapter.name] = adapter.sync_performer()
            return self._performers[adapter.name]

    def _drive(self, adapter: Provider, flow: Flow[Any], deadline: float | None, on_event: EventHandler | None) -> Any:
        performer = self._performer(adapter)
        return run_flow(flow, self._transport, perform=performer.perform if performer else None, deadline=deadline,
                        on_event=on_event, coordinator=self._coordinator)

    def generate(self, request: PhotoMakerRequest, provider: str, *, timeout: float | None = None,
                 on_event: EventHandler | None = None, strict: bool = False,
                 download: bool = False, webhook_url: str | None = None) -> PhotoMakerResult:
        """Generate on ``provider`` and wait for the images.

        ``timeout`` (seconds, finite and positive; ``None``: no deadline) bounds the whole call, uploads, waits for
        a provider slot and polling included; the call returns within it plus the clean-up grace (5 s). When it
        passes, the job is cancelled where the provider allows it and :class:`~photomaker_bridge.
        GenerationTimeoutError` says what became of each job and carries the handle; a job that turned out to have
        finished is collected and returned instead. ``download=True`` fetches every image's bytes.
        ``webhook_url``: the provider also POSTs the outcome there (fal, Runware; see :meth:`submit`); the call
        still waits and returns the images.
        """
        started = time.monotonic()
        deadline = self._deadline(timeout)
        adapter, plan = self._prepare(request, provider, strict, webhook_url)
        result = self._generate_plan(adapter, plan, deadline, on_event, started)
        return self.download(result, timeout=self._left(deadline)) if download else result

    def _generate_plan(self, adapter: Provider, plan: Plan, deadline: float | None, on_event: EventHandler | None,
                       started: float) -> PhotoMakerResult:
        flow = adapter.generate_flow(plan, self._context(cancel_on_deadline=True, deadline=deadline))
        result: PhotoMakerResult = self._drive(adapter, flow, deadline, on_event)
        return self._finish(result, plan.warnings, started)

    def submit(self, request: PhotoMakerRequest, provider: str, *, timeout: float | None = None,
               on_event: EventHandler | None = None, strict: bool = False,
               webhook_url: str | None = None) -> JobHandle:
        """Upload and submit, returning as soon as the provider accepted the job.

        ``webhook_url`` (an http(s) URL): the provider POSTs the job's outcome there when it is done — fal
        (``fal_webhook``, signed) and Runware (``webhookURL``, one call per image); read it with
        :func:`photomaker_bridge.webhooks.parse_webhook`. Eachlabs documents no webhook for predictions:
        :class:`~photomaker_bridge.ConfigurationError`. The handle works with :meth:`result` either way.
        """
        deadline = self._deadline(timeout)
        adapter, plan = self._prepare(request, provider, strict, webhook_url)
        flow = adapter.submit_flow(plan, self._context(cancel_on_deadline=False, deadline=deadline))
        handle: JobHandle = self._drive(adapter, flow, deadline, on_event)
        return handle

    def result(self, handle: JobHandle, *, timeout: float | None = None, on_event: EventHandler | None = None,
               download: bool = False) -> PhotoMakerResult:
        """Wait for a submitted job and collect it. On timeout the job keeps running (resume it later)."""
        started = time.monotonic()
        deadline = self._deadline(timeout)
        self._check_open()
        adapter = self.provider(handle.provider)
        adapter.require_key()
        flow = adapter.result_flow(handle, self._context(cancel_on_deadline=False, deadline=deadline))
        result: PhotoMakerResult = self._drive(adapter, flow, deadline, on_event)
        result = self._finish(result, handle.warnings, started)
        return self.download(result, timeout=self._left(deadline)) if download else result

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

    def generate_many(self, requests: Sequence[PhotoMakerRequest], provider: str = "runware", *,
                      timeout: float | None = None, on_event: EventHandler | None = None,
                      strict: bool = False) -> list[PhotoMakerResult | ProviderError]:
        """Generate several requests; one result or error per request, in order, none lost.

        Runware sends them as one task array and matches results by taskUUID; other providers get each request
        generated side by side (threads of this client; a provider limit makes the surplus wait for a slot, and
        shared photos are uploaded once). ``timeout`` bounds the whole call; ``on_event`` may be called from
        several threads.
        """
        started = time.monotonic()
        deadline = self._deadline(timeout)
        self._check_open()
        adapter = self.provider(provider)
        adapter.require_key()
        plans = [adapter.plan(request, strict=strict) for request in requests]
        if adapter.supports_batch:
            outcomes: list[PhotoMakerResult | ProviderError] = self._drive(
                adapter, adapter.generate_many_flow(plans, self._context(cancel_on_deadline=True, deadline=deadline)),
                deadline, on_event)
            return [self._finish(outcome, plan.warnings, started) if isinstance(outcome, PhotoMakerResult)
                    else outcome for outcome, plan in zip(outcomes, plans, strict=True)]

        def one(plan: Plan) -> PhotoMakerResult | ProviderError:
            try:
                return self._generate_plan(adapter, plan, deadline, on_event, started)
            except ProviderError as error:
                return error

        if not plans:
            return []
        with ThreadPoolExecutor(max_workers=min(len(plans), _MAX_PARALLEL),
                                thread_name_prefix="photomaker-generate-many") as pool:
            return list(pool.map(one, plans))

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


class AsyncBridge(BridgeBase):
    """The async client. Use it as an async context manager; it owns one ``aiohttp`` connection pool.

    Same configuration and methods as :class:`Bridge`, awaited. An ``AsyncBridge`` belongs to the event loop it
    is first used on (its connection pool and SDK clients live there): using it from another loop raises
    :class:`~photomaker_bridge.ConfigurationError` — create one per loop, e.g. inside the coroutine passed to
    ``asyncio.run``. After :meth:`aclose` every call raises :class:`~photomaker_bridge.ClientClosedError`.
    """

    def __init__(self, providers: Iterable[Provider] | None = None, *, retry: RetryPolicy | None = None) -> None:
        super().__init__(providers, retry=retry)
        self._transport = AiohttpTransport()
        self._performers: dict[str, AsyncPerformer | None] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> AsyncBridge:
        self._bind()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.aclose()

    def _bind(self) -> None:
        """Check that the client is open and bind it to the running loop (or refuse another one)."""
        self._check_open()
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise ConfigurationError(
                "this AsyncBridge belongs to the event loop it was first used on, and its connections live there; "
                "create one AsyncBridge per event loop (for example inside the coroutine you pass to asyncio.run), "
                "or use the sync Bridge from threads")

    async def aclose(self) -> None:
        """Close the connection pool and any provider SDK clients, letting background cancels finish within the
        clean-up grace (5 s at most). Calls after it raise :class:`~photomaker_bridge.ClientClosedError`."""
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            raise ConfigurationError("close this AsyncBridge on the event loop it was used on")
        if not self._mark_closed():
            return
        performers, self._performers = list(self._performers.values()), {}
        for performer in performers:
            if performer is not None:
                await performer.aclose()
        await self._transport.aclose()

    def _after_fork(self) -> None:
        super()._after_fork()
        self._loop = None  # the parent's loop does not run in the child
        self._transport = AiohttpTransport()

    def _performer(self, adapter: Provider) -> AsyncPerformer | None:
        if adapter.name not in self._performers:
            self._performers[adapter.name] = adapter.async_performer()
        return self._performers[adapter.name]

    async def _drive(self, adapter: Provider, flow: Flow[Any], deadline: float | None,
                     on_event: EventHandler | None) -> Any:
        performer = self._performer(adapter)
        return await arun_flow(flow, self._transport, perform=performer.perform if performer else None,
                               deadline=deadline, on_event=on_event, coordinator=self._coordinator)

    async def generate(self, request: PhotoMakerRequest, provider: str, *, timeout: float | None = None,
                       on_event: EventHandler | None = None, strict: bool = False,
                       download: bool = False, webhook_url: str | None = None) -> PhotoMakerResult:
        """Generate on ``provider`` and wait for the images (see :meth:`Bridge.generate`)."""
        started = time.monotonic()
        deadline = self._deadline(timeout)
        self._bind()
        adapter, plan = self._prepare(request, provider, strict, webhook_url)
        result = await self._generate_plan(adapter, plan, deadline, on_event, started)
        return await self.download(result, timeout=self._left(deadline)) if download else result

    async def _generate_plan(self, adapter: Provider, plan: Plan, deadline: float | None,
                             on_event: EventHandler | None, started: float) -> PhotoMakerResult:
        flow = adapter.generate_flow(plan, self._context(cancel_on_deadline=True, deadline=deadline))
        result: PhotoMakerResult = await self._drive(adapter, flow, deadline, on_event)
        return self._finish(result, plan.warnings, started)

    async def submit(self, request: PhotoMakerRequest, provider: str, *, timeout: float | None = None,
                     on_event: EventHandler | None = None, strict: bool = False,
                     webhook_url: str | None = None) -> JobHandle:
        """Upload and submit, returning as soon as the provider accepted the job (see :meth:`Bridge.submit`)."""
        deadline = self._deadline(timeout)
        self._bind()
        adapter, plan = self._prepare(request, provider, strict, webhook_url)
        flow = adapter.submit_flow(plan, self._context(cancel_on_deadline=False, deadline=deadline))
        handle: JobHandle = await self._drive(adapter, flow, deadline, on_event)
        return handle

    async def result(self, handle: JobHandle, *, timeout: float | None = None, on_event: EventHandler | None = None,
                     download: bool = False) -> PhotoMakerResult:
        """Wait for a submitted job and collect it. On timeout the job keeps running (resume it later)."""
        started = time.monotonic()
        deadline = self._deadline(timeout)
        self._bind()
        adapter = self.provider(handle.provider)
        adapter.require_key()
        flow = adapter.result_flow(handle, self._context(cancel_on_deadline=False, deadline=deadline))
        result: PhotoMakerResult = await self._drive(adapter, flow, deadline, on_event)
        result = self._finish(result, handle.warnings, started)
        return await self.download(result, timeout=self._left(deadline)) if download else result

    async def resume(self, provider: str, request_id: str, *, timeout: float | None = None,
                     on_event: EventHandler | None = None, download: bool = False) -> PhotoMakerResult:
        """Collect a job submitted earlier, by this process or another, from its provider and id."""
        return await self.result(self.provider(provider).handle_for(request_id), timeout=timeout,
                                 on_event=on_event, download=download)

    async def cancel(self, handle: JobHandle, *, timeout: float | None = None) -> tuple[CancelOutcome, ...]:
        """Cancel every job of ``handle`` where its provider allows it (see :meth:`Bridge.cancel`)."""
        deadline = self._deadline(timeout)
        self._bind()
        adapter = self.provider(handle.provider)
        adapter.require_key()
        flow = adapter.cancel_flow(handle, self._context(cancel_on_deadline=False, deadline=deadline))
        outcomes: tuple[CancelOutcome, ...] = await self._drive(adapter, flow, deadline, None)
        return outcomes

    async def generate_many(self, requests: Sequence[PhotoMakerRequest], provider: str = "runware", *,
                            timeout: float | None = None, on_event: EventHandler | None = None,
                            strict: bool = False) -> list[PhotoMakerResult | ProviderError]:
        """Generate several requests; one result or error per request, in order, none lost.

        Runware sends them as one task array; other providers get each request generated concurrently (a
        provider limit makes the surplus wait for a slot; shared photos are uploaded once). ``timeout`` bounds the
        whole call.
        """
        started = time.monotonic()
        deadline = self._deadline(timeout)
        self._bind()
        adapter = self.provider(provider)
        adapter.require_key()
        plans = [adapter.plan(request, strict=strict) for request in requests]
        if adapter.supports_batch:
            outcomes: list[PhotoMakerResult | ProviderError] = await self._drive(adapter, adapter.generate_many_flow(
                plans, self._context(cancel_on_deadline=True, deadline=deadline)), deadline, on_event)
            return [self._finish(outcome, plan.warnings, started) if isinstance(outcome, PhotoMakerResult)
                    else outcome for outcome, plan in zip(outcomes, plans, strict=True)]

        async def one(plan: Plan) -> PhotoMakerResult | ProviderError:
            try:
                return await self._generate_plan(adapter, plan, deadline, on_event, started)
            except ProviderError as error:
                return error

        return list(await asyncio.gather(*(one(plan) for plan in plans)))

    async def download(self, result: PhotoMakerResult, *, timeout: float = 60.0) -> PhotoMakerResult:
        """``result`` with every image's bytes fetched concurrently (a failed download: see :meth:`Bridge.download`)."""
        if all(image.data is not None for image in result.images):
            return result

        async def fetch(image: GeneratedImage) -> bytes | ProviderError:
            try:
                return await image.afetch(timeout=timeout)
            except ProviderError as error:
                return error

        payloads = await asyncio.gather(*(fetch(image) for image in result.images))
        return with_data(result, list(payloads))
