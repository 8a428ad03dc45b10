"""``AsyncBridge``: the async client, over ``aiohttp``, bound to one event loop. See ``client.py``."""


from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._client_attempts import AsyncAttempts
from ._client_base import BridgeBase, EventHandler, Mode, ProviderChoice
from ._client_values import with_data
from ._connections import DEFAULT_KEEPALIVE, DEFAULT_MAX_CONNECTIONS
from ._http import Flow, Stop, arun_flow
from ._retry import RetryPolicy
from ._transports import AiohttpTransport
from .errors import BridgeError, ConfigurationError, ProviderError
from .jobs import CancelOutcome, JobHandle
from .providers.base import AsyncPerformer, Provider
from .request import PhotoMakerRequest
from .result import GeneratedImage, PhotoMakerResult
from .routing import (
    BreakerSettings,
    RouterState,
    adrive_route,
    route_flow,
    wait_background,
)

if TYPE_CHECKING:
    from .state import State


__all__ = ["AsyncBridge"]

class AsyncBridge(BridgeBase):
    """The async client. Use it as an async context manager; it owns one ``aiohttp`` connection pool.

    Same configuration and methods as :class:`Bridge`, awaited. An ``AsyncBridge`` belongs to the event loop it
    is first used on (its connection pool and SDK clients live there): using it from another loop raises
    :class:`~photomaker_bridge.ConfigurationError` — create one per loop, e.g. inside the coroutine passed to
    ``asyncio.run``. After :meth:`aclose` every call raises :class:`~photomaker_bridge.ClientClosedError`.
    """

    def __init__(self, providers: Iterable[Provider] | None = None, *, retry: RetryPolicy | None = None,
                 budget: Decimal | float | str | None = None, breaker: BreakerSettings | None = None,
                 router_state: RouterState | None = None, max_connections: int | None = DEFAULT_MAX_CONNECTIONS,
                 keepalive: float = DEFAULT_KEEPALIVE, state: State | None = None) -> None:
        super().__init__(providers, retry=retry, budget=budget, breaker=breaker, router_state=router_state,
                         max_connections=max_connections, keepalive=keepalive, state=state)
        self._transport = AiohttpTransport(connections=self._connections)
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
        """Close the connection pool and any provider SDK clients, letting background cancels (and hedge losers
        being stopped) finish within the clean-up grace (5 s at most). Calls after it raise
        :class:`~photomaker_bridge.ClientClosedError`."""
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            raise ConfigurationError("close this AsyncBridge on the event loop it was used on")
        if not self._mark_closed():
            return
        await wait_background()
        performers, self._performers = list(self._performers.values()), {}
        for performer in performers:
            if performer is not None:
                await performer.aclose()
        await self._transport.aclose()
        if self._state is not None:
            await self._state.aclose()  # this loop's connections to a shared state (it reconnects if used again)

    def _after_fork(self) -> None:
        super()._after_fork()
        self._loop = None  # the parent's loop does not run in the child
        self._transport = AiohttpTransport(connections=self._connections)

    def _performer(self, adapter: Provider) -> AsyncPerformer | None:
        if adapter.name not in self._performers:
            self._performers[adapter.name] = adapter.async_performer(self._connections)
        return self._performers[adapter.name]

    async def _drive(self, adapter: Provider, flow: Flow[Any], deadline: float | None,
                     on_event: EventHandler | None, stop: Stop | None = None) -> Any:
        performer = self._performer(adapter)
        return await arun_flow(flow, self._transport, perform=performer.perform if performer else None,
                               deadline=deadline, on_event=on_event, coordinator=self._coordinator, stop=stop)

    async def _route(self, request: PhotoMakerRequest, provider: ProviderChoice, strict: bool, mode: Mode,
                     deadline: float | None, on_event: EventHandler | None,
                     after: ProviderError | None = None, *, webhook_url: str | None = None,
                     keep_running: bool = False) -> Any:
        self._bind()
        call = self._route_call(request, provider, strict, mode, deadline, after, webhook_url,
                                keep_running=keep_running)
        return await adrive_route(route_flow(call), self._router_state,
                                  AsyncAttempts(self, deadline, keep_running=keep_running), on_event=on_event)

    async def generate(self, request: PhotoMakerRequest, provider: ProviderChoice, *, timeout: float | None = None,
                       on_event: EventHandler | None = None, strict: bool = False,
                       download: bool = False, webhook_url: str | None = None,
                       idempotency_key: str | None = None, keep_running: bool = False) -> PhotoMakerResult:
        """Generate on ``provider`` (a name, a list of names or a Route) and wait for the images (see
        :meth:`Bridge.generate`, ``idempotency_key`` and ``keep_running`` included)."""
        mark = self._state_mark()
        deadline = self._deadline(timeout)
        if idempotency_key is not None:
            from .state._idempotent import arun_idempotent

            self._bind()
            state, flow = self._idempotent(idempotency_key, provider, deadline)
            result: PhotoMakerResult = await arun_idempotent(
                state, flow, deadline,
                lambda left, after: self._route(request, provider, strict, "submit", self._deadline(left), on_event,
                                                after, webhook_url=webhook_url),
                lambda handle, left: self.result(handle, timeout=left, on_event=on_event))
        else:
            result = await self._route(request, provider, strict, "generate", deadline, on_event,
                                       webhook_url=webhook_url, keep_running=keep_running)
        result = self._state_warned(result, mark)
        return await self.download(result, timeout=self._left(deadline)) if download else result

    async def submit(self, request: PhotoMakerRequest, provider: ProviderChoice, *, timeout: float | None = None,
                     on_event: EventHandler | None = None, strict: bool = False, webhook_url: str | None = None,
                     after: ProviderError | None = None) -> JobHandle:
        """Upload and submit, returning as soon as a provider accepted the job (see :meth:`Bridge.submit`)."""
        deadline = self._deadline(timeout)
        handle: JobHandle = await self._route(request, provider, strict, "submit", deadline, on_event, after,
                                              webhook_url=webhook_url)
        return handle

    async def result(self, handle: JobHandle, *, timeout: float | None = None, on_event: EventHandler | None = None,
                     download: bool = False) -> PhotoMakerResult:
        """Wait for a submitted job and collect it. On timeout the job keeps running (resume it later)."""
        started = time.monotonic()
        mark = self._state_mark()
        deadline = self._deadline(timeout)
        self._bind()
        adapter = self.provider(handle.provider)
        adapter.require_key()
        flow = adapter.result_flow(handle, self._context(cancel_on_deadline=False, deadline=deadline))
        try:
            result: PhotoMakerResult = await self._drive(adapter, flow, deadline, on_event)
        except BridgeError as error:
            await self._router_state.aperform(self._collected(handle, None, error, time.monotonic() - started)[1])
            raise
        collected, record = self._collected(handle, self._finish(result, handle.warnings, started), None,
                                            time.monotonic() - started)
        await self._router_state.aperform(record)
        assert collected is not None
        collected = self._state_warned(collected, mark)
        return await self.download(collected, timeout=self._left(deadline)) if download else collected

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

    async def generate_many(self, requests: Sequence[PhotoMakerRequest], provider: ProviderChoice = "runware", *,
                            timeout: float | None = None, on_event: EventHandler | None = None,
                            strict: bool = False) -> list[PhotoMakerResult | BridgeError]:
        """Generate several requests; one result or error per request, in order, none lost (see
        :meth:`Bridge.generate_many`)."""
        started = time.monotonic()
        deadline = self._deadline(timeout)
        self._bind()
        route = self._check_many(requests, provider, strict)
        adapter = self.provider(str(provider)) if route is None else None
        if adapter is not None and adapter.supports_batch:
            adapter.require_key()
            plans = [adapter.plan(request, strict=strict) for request in requests]
            outcomes: list[PhotoMakerResult | ProviderError] = await self._drive(adapter, adapter.generate_many_flow(
                plans, self._context(cancel_on_deadline=True, deadline=deadline)), deadline, on_event)
            finished = [self._finish(outcome, plan.warnings, started) if isinstance(outcome, PhotoMakerResult)
                        else outcome for outcome, plan in zip(outcomes, plans, strict=True)]
            marked, records = self._batch_trails(adapter.name, finished, time.monotonic() - started)
            for record in records:
                await self._router_state.aperform(record)
            return list(marked)

        async def one(request: PhotoMakerRequest) -> PhotoMakerResult | BridgeError:
            try:
                generated: PhotoMakerResult = await self._route(request, provider, strict, "generate", deadline,
                                                                on_event)
            except BridgeError as error:
                return error
            return generated

        return list(await asyncio.gather(*(one(request) for request in requests)))

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
