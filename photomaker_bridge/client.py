"""``Bridge`` (sync, over requests) and ``AsyncBridge`` (async, over aiohttp): thin shells over the providers.

Both do the same four things, the only difference being the driver: validate and translate the request
(pure, :meth:`Provider.plan`), pick the provider's flow, drive it with the client's one transport (and, for
fal, the client's one fal_client), and tidy the result (the plan's warnings, total time, optional download).
No protocol logic lives here; it is written once per provider, in ``photomaker_bridge.providers``.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

import attrs

from ._http import Event, Flow, arun_flow, run_flow
from ._transports import AiohttpTransport, RequestsTransport
from .errors import ConfigurationError, ProviderError
from .jobs import JobHandle
from .plan import Plan
from .providers import PROVIDER_NAMES, provider_class
from .providers.base import AsyncPerformer, FlowContext, Provider, SyncPerformer
from .request import PhotoMakerRequest
from .result import BridgeWarning, GeneratedImage, PhotoMakerResult

__all__ = ["AsyncBridge", "Bridge", "EventHandler"]

EventHandler = Callable[[Event], Any]
"""Receives progress events; in ``AsyncBridge`` it may also be a coroutine function."""


class _BridgeBase:
    """What both clients share: the configured providers, the upload cache, planning and result tidying."""

    def __init__(self, providers: Iterable[Provider] | None = None) -> None:
        configured: dict[str, Provider] = {}
        for provider in providers or ():
            if provider.name in configured:
                raise ConfigurationError(f"provider {provider.name!r} is configured twice")
            configured[provider.name] = provider
        for name in PROVIDER_NAMES:
            if name not in configured:
                # Unconfigured providers read their key from the environment when first used.
                configured[name] = provider_class(name)()
        self._providers = configured
        self._upload_cache: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(providers={sorted(self._providers)!r})"

    @property
    def providers(self) -> dict[str, Provider]:
        """The configured adapters by name (keys never appear in their reprs)."""
        return dict(self._providers)

    def provider(self, name: str) -> Provider:
        """The adapter for ``name``; :class:`ConfigurationError` for an unknown name."""
        if name not in self._providers:
            known = ", ".join(sorted(self._providers))
            raise ConfigurationError(f"unknown provider {name!r}; known providers: {known}")
        return self._providers[name]

    def explain(self, request: PhotoMakerRequest, provider: str, *, strict: bool = False) -> Plan:
        """What ``provider`` (as configured here) would be sent for ``request``. No network, no key needed."""
        return self.provider(provider).plan(request, strict=strict)

    def _prepare(self, request: PhotoMakerRequest, provider: str, strict: bool) -> tuple[Provider, Plan]:
        adapter = self.provider(provider)
        adapter.require_key()
        return adapter, adapter.plan(request, strict=strict)

    def _context(self, *, cancel_on_deadline: bool) -> FlowContext:
        return FlowContext(upload_cache=self._upload_cache, cancel_on_deadline=cancel_on_deadline)

    @staticmethod
    def _deadline(timeout: float | None) -> float | None:
        if timeout is not None and timeout <= 0:
            raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}")
        return None if timeout is None else time.monotonic() + timeout

    @staticmethod
    def _left(timeout: float | None, started: float) -> float:
        """Seconds a download may take: what is left of the call's timeout (at least 1 s), else 60 s."""
        return 60.0 if timeout is None else max(1.0, timeout - (time.monotonic() - started))

    @staticmethod
    def _finish(result: PhotoMakerResult, plan_warnings: Sequence[Any], started: float) -> PhotoMakerResult:
        """Make sure the plan's warnings and the total time are on the result."""
        missing = [warning for warning in plan_warnings if warning not in result.warnings]
        timings = result.timings
        if timings.total_seconds is None:
            timings = attrs.evolve(timings, total_seconds=round(time.monotonic() - started, 6))
        created = result.created_at or datetime.datetime.now(datetime.UTC)
        return attrs.evolve(result, warnings=[*missing, *result.warnings], timings=timings, created_at=created)


def _with_data(result: PhotoMakerResult, payloads: Sequence[bytes | ProviderError]) -> PhotoMakerResult:
    images: list[GeneratedImage] = []
    warnings = list(result.warnings)
    for index, (image, payload) in enumerate(zip(result.images, payloads, strict=True)):
        if isinstance(payload, ProviderError):
            images.append(image)
            warnings.append(BridgeWarning(field=f"images[{index}]", asked="download", sent=None,
                                          provider=result.provider, reason=f"the image stays a URL: {payload.message}"))
        else:
            images.append(attrs.evolve(image, data=payload))
    return attrs.evolve(result, images=images, warnings=warnings)


class Bridge(_BridgeBase):
    """The sync client. Use it as a context manager; it owns one ``requests`` connection pool.

    ``Bridge()`` reads keys from ``RUNWARE_API_KEY``, ``FAL_KEY`` (or ``FAL_KEY_ID`` + ``FAL_KEY_SECRET``) and
    ``EACHLABS_API_KEY`` when a provider is first used; ``Bridge(providers=[RunwareProvider(api_key=...)])``
    configures them explicitly. A missing key is a :class:`ConfigurationError` before any request.
    """

    def __init__(self, providers: Iterable[Provider] | None = None) -> None:
        super().__init__(providers)
        self._transport = RequestsTransport()
        self._performers: dict[str, SyncPerformer | None] = {}

    def __enter__(self) -> Bridge:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool and any provider SDK clients."""
        for performer in self._performers.values():
            if performer is not None:
                performer.close()
        self._performers.clear()
        self._transport.close()

    def _performer(self, adapter: Provider) -> SyncPerformer | None:
        if adapter.name not in self._performers:
            self._performers[adapter.name] = adapter.sync_performer()
        return self._performers[adapter.name]

    def _drive(self, adapter: Provider, flow: Flow[Any], timeout: float | None, on_event: EventHandler | None,
               *, deadline: float | None = None) -> Any:
        performer = self._performer(adapter)
        return run_flow(flow, self._transport, perform=performer.perform if performer else None,
                        deadline=deadline if deadline is not None else self._deadline(timeout), on_event=on_event)

    def generate(self, request: PhotoMakerRequest, provider: str, *, timeout: float | None = None,
                 on_event: EventHandler | None = None, strict: bool = False,
                 download: bool = False) -> PhotoMakerResult:
        """Generate on ``provider`` and wait for the images.

        ``timeout`` bounds the whole call (uploads and polling included); when it passes, the job is
        cancelled where the provider allows it and :class:`~photomaker_bridge.GenerationTimeoutError` is
        raised carrying the job handle. ``download=True`` fetches every image's bytes (concurrently).
        """
        started = time.monotonic()
        adapter, plan = self._prepare(request, provider, strict)
        flow = adapter.generate_flow(plan, self._context(cancel_on_deadline=True))
        result: PhotoMakerResult = self._drive(adapter, flow, timeout, on_event)
        result = self._finish(result, plan.warnings, started)
        return self.download(result, timeout=self._left(timeout, started)) if download else result

    def submit(self, request: PhotoMakerRequest, provider: str, *, timeout: float | None = None,
               on_event: EventHandler | None = None, strict: bool = False) -> JobHandle:
        """Upload and submit, returning as soon as the provider accepted the job."""
        adapter, plan = self._prepare(request, provider, strict)
        handle: JobHandle = self._drive(adapter, adapter.submit_flow(plan, self._context(cancel_on_deadline=False)),
                                        timeout, on_event)
        return handle

    def result(self, handle: JobHandle, *, timeout: float | None = None, on_event: EventHandler | None = None,
               download: bool = False) -> PhotoMakerResult:
        """Wait for a submitted job and collect it. On timeout the job keeps running (resume it later)."""
        started = time.monotonic()
        adapter = self.provider(handle.provider)
        adapter.require_key()
        flow = adapter.result_flow(handle, self._context(cancel_on_deadline=False))
        result: PhotoMakerResult = self._drive(adapter, flow, timeout, on_event)
        result = self._finish(result, handle.warnings, started)
        return self.download(result, timeout=self._left(timeout, started)) if download else result

    def resume(self, provider: str, request_id: str, *, timeout: float | None = None,
               on_event: EventHandler | None = None, download: bool = False) -> PhotoMakerResult:
        """Collect a job submitted earlier, by this process or another, from its provider and id."""
        return self.result(self.provider(provider).handle_for(request_id), timeout=timeout, on_event=on_event,
                           download=download)

    def generate_many(self, requests: Sequence[PhotoMakerRequest], provider: str = "runware", *,
                      timeout: float | None = None, on_event: EventHandler | None = None,
                      strict: bool = False) -> list[PhotoMakerResult | ProviderError]:
        """Generate several requests; one result or error per request, in order, none lost.

        Runware sends them as one task array and matches results by taskUUID; other providers get every
        request submitted first, then collected, so their jobs run side by side. ``timeout`` bounds the whole
        call.
        """
        started = time.monotonic()
        adapter = self.provider(provider)
        adapter.require_key()
        plans = [adapter.plan(request, strict=strict) for request in requests]
        deadline = self._deadline(timeout)
        if adapter.supports_batch:
            outcomes: list[PhotoMakerResult | ProviderError] = self._drive(
                adapter, adapter.generate_many_flow(plans, self._context(cancel_on_deadline=True)), timeout, on_event,
                deadline=deadline)
        else:
            # Submit every request first (in order, so photos shared between them are uploaded once), then
            # collect: the jobs run side by side at the provider, all within the one deadline.
            submitted: list[JobHandle | ProviderError] = []
            for plan in plans:
                try:
                    submitted.append(self._drive(adapter, adapter.submit_flow(
                        plan, self._context(cancel_on_deadline=True)), timeout, on_event, deadline=deadline))
                except ProviderError as error:
                    submitted.append(error)
            outcomes = []
            for handle in submitted:
                if isinstance(handle, ProviderError):
                    outcomes.append(handle)
                    continue
                try:
                    outcomes.append(self._drive(adapter, adapter.result_flow(
                        handle, self._context(cancel_on_deadline=True)), timeout, on_event, deadline=deadline))
                except ProviderError as error:
                    outcomes.append(error)
        return [self._finish(outcome, plan.warnings, started) if isinstance(outcome, PhotoMakerResult) else outcome
                for outcome, plan in zip(outcomes, plans, strict=True)]

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
        return _with_data(result, payloads)


class AsyncBridge(_BridgeBase):
    """The async client. Use it as an async context manager; it owns one ``aiohttp`` connection pool.

    Same configuration and methods as :class:`Bridge`, awaited.
    """

    def __init__(self, providers: Iterable[Provider] | None = None) -> None:
        super().__init__(providers)
        self._transport = AiohttpTransport()
        self._performers: dict[str, AsyncPerformer | None] = {}

    async def __aenter__(self) -> AsyncBridge:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool and any provider SDK clients."""
        for performer in self._performers.values():
            if performer is not None:
                await performer.aclose()
        self._performers.clear()
        await self._transport.aclose()

    def _performer(self, adapter: Provider) -> AsyncPerformer | None:
        if adapter.name not in self._performers:
            self._performers[adapter.name] = adapter.async_performer()
        return self._performers[adapter.name]

    async def _drive(self, adapter: Provider, flow: Flow[Any], timeout: float | None,
                     on_event: EventHandler | None, *, deadline: float | None = None) -> Any:
        performer = self._performer(adapter)
        return await arun_flow(flow, self._transport, perform=performer.perform if performer else None,
                               deadline=deadline if deadline is not None else self._deadline(timeout),
                               on_event=on_event)

    async def generate(self, request: PhotoMakerRequest, provider: str, *, timeout: float | None = None,
                       on_event: EventHandler | None = None, strict: bool = False,
                       download: bool = False) -> PhotoMakerResult:
        """Generate on ``provider`` and wait for the images (see :meth:`Bridge.generate`)."""
        started = time.monotonic()
        adapter, plan = self._prepare(request, provider, strict)
        flow = adapter.generate_flow(plan, self._context(cancel_on_deadline=True))
        result: PhotoMakerResult = await self._drive(adapter, flow, timeout, on_event)
        result = self._finish(result, plan.warnings, started)
        return await self.download(result, timeout=self._left(timeout, started)) if download else result

    async def submit(self, request: PhotoMakerRequest, provider: str, *, timeout: float | None = None,
                     on_event: EventHandler | None = None, strict: bool = False) -> JobHandle:
        """Upload and submit, returning as soon as the provider accepted the job."""
        adapter, plan = self._prepare(request, provider, strict)
        flow = adapter.submit_flow(plan, self._context(cancel_on_deadline=False))
        handle: JobHandle = await self._drive(adapter, flow, timeout, on_event)
        return handle

    async def result(self, handle: JobHandle, *, timeout: float | None = None, on_event: EventHandler | None = None,
                     download: bool = False) -> PhotoMakerResult:
        """Wait for a submitted job and collect it. On timeout the job keeps running (resume it later)."""
        started = time.monotonic()
        adapter = self.provider(handle.provider)
        adapter.require_key()
        flow = adapter.result_flow(handle, self._context(cancel_on_deadline=False))
        result: PhotoMakerResult = await self._drive(adapter, flow, timeout, on_event)
        result = self._finish(result, handle.warnings, started)
        return await self.download(result, timeout=self._left(timeout, started)) if download else result

    async def resume(self, provider: str, request_id: str, *, timeout: float | None = None,
                     on_event: EventHandler | None = None, download: bool = False) -> PhotoMakerResult:
        """Collect a job submitted earlier, by this process or another, from its provider and id."""
        return await self.result(self.provider(provider).handle_for(request_id), timeout=timeout,
                                 on_event=on_event, download=download)

    async def generate_many(self, requests: Sequence[PhotoMakerRequest], provider: str = "runware", *,
                            timeout: float | None = None, on_event: EventHandler | None = None,
                            strict: bool = False) -> list[PhotoMakerResult | ProviderError]:
        """Generate several requests; one result or error per request, in order, none lost.

        Runware sends them as one task array; other providers get every request submitted first (shared photos
        are uploaded once), then collected concurrently. ``timeout`` bounds the whole call.
        """
        started = time.monotonic()
        adapter = self.provider(provider)
        adapter.require_key()
        plans = [adapter.plan(request, strict=strict) for request in requests]
        deadline = self._deadline(timeout)
        outcomes: list[PhotoMakerResult | ProviderError]
        if adapter.supports_batch:
            outcomes = await self._drive(adapter, adapter.generate_many_flow(
                plans, self._context(cancel_on_deadline=True)), timeout, on_event, deadline=deadline)
        else:
            # Submit in order (photos shared between requests are uploaded once), then collect concurrently.
            submitted: list[JobHandle | ProviderError] = []
            for plan in plans:
                try:
                    submitted.append(await self._drive(adapter, adapter.submit_flow(
                        plan, self._context(cancel_on_deadline=True)), timeout, on_event, deadline=deadline))
                except ProviderError as error:
                    submitted.append(error)

            async def collect(handle: JobHandle | ProviderError) -> PhotoMakerResult | ProviderError:
                if isinstance(handle, ProviderError):
                    return handle
                try:
                    result: PhotoMakerResult = await self._drive(adapter, adapter.result_flow(
                        handle, self._context(cancel_on_deadline=True)), timeout, on_event, deadline=deadline)
                    return result
                except ProviderError as error:
                    return error

            outcomes = list(await asyncio.gather(*(collect(handle) for handle in submitted)))
        return [self._finish(outcome, plan.warnings, started) if isinstance(outcome, PhotoMakerResult) else outcome
                for outcome, plan in zip(outcomes, plans, strict=True)]

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
        return _with_data(result, list(payloads))
