"""Connection pool settings: ``Bridge(max_connections=..., keepalive=...)`` reach every pool underneath."""

from __future__ import annotations

import asyncio
import math

import httpx
import pytest
from aiohttp import web

from photomaker_bridge import AsyncBridge, Bridge, ConfigurationError
from photomaker_bridge._connections import ConnectionLimits
from photomaker_bridge._http import HttpRequest
from photomaker_bridge._transports import AiohttpTransport, RequestsTransport
from photomaker_bridge.providers._fal_client import AsyncFalClient, SyncFalClient, _limits


@pytest.mark.parametrize(("settings", "named"), [
    ({"max_connections": 0}, "max_connections"), ({"max_connections": 2.5}, "max_connections"),
    ({"max_connections": True}, "max_connections"), ({"keepalive": -1}, "keepalive"),
    ({"keepalive": math.nan}, "keepalive"), ({"keepalive": math.inf}, "keepalive"), ({"keepalive": "5"}, "keepalive"),
])
@pytest.mark.parametrize("client", [Bridge, AsyncBridge])
def test_bad_pool_settings_are_refused_naming_the_setting(client: type[Bridge] | type[AsyncBridge],
                                                          settings: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        client(**settings)  # type: ignore[arg-type]


async def test_more_than_a_hundred_requests_can_be_in_flight_when_allowed() -> None:
    """The default pool holds 100 connections (aiohttp's own default); max_connections lifts it."""
    wanted, inside = 150, 0
    everyone_in = asyncio.Event()

    async def hold(request: web.Request) -> web.Response:
        nonlocal inside
        inside += 1
        if inside >= wanted:
            everyone_in.set()
        await asyncio.wait_for(everyone_in.wait(), 60)  # answered only once all 150 are in at the same time
        return web.json_response({})

    application = web.Application()
    application.router.add_get("/", hold)
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    transport = AiohttpTransport(connections=ConnectionLimits(max_connections=200))
    try:
        answers = await asyncio.gather(*(transport.send(HttpRequest("GET", f"http://127.0.0.1:{port}/", "runware",
                                                                    timeout=90)) for _ in range(wanted)))
        assert {answer.status for answer in answers} == {200}
    finally:
        await transport.aclose()
        await runner.cleanup()


def test_the_aiohttp_pool_takes_the_settings() -> None:
    async def connector() -> tuple[int, bool]:
        transport = AiohttpTransport(connections=ConnectionLimits(max_connections=None, keepalive=0))
        try:
            session = transport.session
            return session.connector.limit, session.connector.force_close  # type: ignore[union-attr]
        finally:
            await transport.aclose()

    assert asyncio.run(connector()) == (0, True)  # aiohttp: 0 is no limit; keepalive 0 closes after each answer


def test_the_requests_pool_takes_the_settings() -> None:
    transport = RequestsTransport(connections=ConnectionLimits(max_connections=300, keepalive=0))
    adapter = transport.session.get_adapter("https://api.runware.ai/v1")
    assert adapter._pool_maxsize == 300  # type: ignore[attr-defined]
    assert transport.session.headers["Connection"] == "close"
    transport.close()


def test_fal_httpx_pools_take_the_settings() -> None:
    assert _limits(ConnectionLimits(max_connections=7, keepalive=3)) == httpx.Limits(
        max_connections=7, max_keepalive_connections=7, keepalive_expiry=3)
    assert _limits(ConnectionLimits(keepalive=0)).max_keepalive_connections == 0
    for base_url in ("http://127.0.0.1:9", None):  # an emulator, and fal itself (the environment's proxies)
        client = SyncFalClient("id:secret", base_url, ConnectionLimits(max_connections=7))
        pool = client.transport._inner._client._transport._pool  # type: ignore[attr-defined]
        assert pool._max_connections == 7
        client.close()
        asynchronous = AsyncFalClient("id:secret", base_url, ConnectionLimits(max_connections=9))
        pool = asynchronous.transport._inner._client._transport._pool  # type: ignore[attr-defined]
        assert pool._max_connections == 9
