"""The two transports: whole-request timeouts, no redirects, no secrets in messages, one session per loop."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from aiohttp import web

from photomaker_bridge import ProviderUnavailableError
from photomaker_bridge._http import HttpRequest
from photomaker_bridge._transports import AiohttpTransport, RequestsTransport


def _trickle_server(delay: float) -> tuple[socket.socket, int]:
    """A server that answers with a declared body sent one byte every ``delay`` seconds."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    body = b'{"data": []}' + b" " * 40

    def handle(connection: socket.socket) -> None:
        try:
            received = b""
            while b"\r\n\r\n" not in received:
                received += connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                               % len(body))
            for index in range(len(body)):
                connection.sendall(body[index:index + 1])
                time.sleep(delay)
        except OSError:
            pass
        finally:
            connection.close()

    def accept() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return server, server.getsockname()[1]


def test_a_trickling_body_stops_at_the_whole_request_timeout() -> None:
    server, port = _trickle_server(0.2)
    try:
        started = time.monotonic()
        with pytest.raises(ProviderUnavailableError) as caught:
            RequestsTransport().send(HttpRequest("GET", f"http://127.0.0.1:{port}/v1", "runware", timeout=1.0))
        assert time.monotonic() - started < 2.5  # not 52 bytes x 0.2 s
        assert caught.value.code == "timeout" and caught.value.provider == "runware"
    finally:
        server.close()


@pytest.fixture
def redirecting_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """An API that answers 307 to another origin, and that other origin recording the headers it gets."""
    seen: list[dict[str, str]] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"stolen": True})

    loop = asyncio.new_event_loop()
    runners: list[web.AppRunner] = []
    ports: list[int] = []

    async def start() -> None:
        other = web.Application()
        other.router.add_route("*", "/{tail:.*}", elsewhere)
        for application in (other,):
            runner = web.AppRunner(application)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            runners.append(runner)
            ports.append(runner.addresses[0][1])
        target = f"http://127.0.0.1:{ports[0]}/collect"

        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPTemporaryRedirect(target)

        api = web.Application()
        api.router.add_route("*", "/{tail:.*}", redirect)
        runner = web.AppRunner(api)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        ports.append(runner.addresses[0][1])

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(5)
    yield f"http://127.0.0.1:{ports[1]}/v1/prediction/", seen
    for runner in runners:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_redirects_are_not_followed_so_custom_key_headers_stay_home(
        redirecting_server: tuple[str, list[dict[str, str]]]) -> None:
    url, seen = redirecting_server
    request = HttpRequest.json("POST", url, "eachlabs", {"model": "x"}, {"X-API-Key": "never-leaves"})
    response = RequestsTransport().send(request)
    assert response.status == 307
    assert asyncio.run(_async_send(request)) == 307
    assert seen == []


async def _async_send(request: HttpRequest) -> int:
    transport = AiohttpTransport()
    try:
        return (await transport.send(request)).status
    finally:
        await transport.aclose()


def test_messages_leave_out_query_strings() -> None:
    request = HttpRequest("PUT", "http://127.0.0.1:9/uploads/f.png?X-Amz-Signature=deadbeef", "eachlabs", timeout=1)
    with pytest.raises(ProviderUnavailableError) as caught:
        RequestsTransport().send(request)
    assert "deadbeef" not in str(caught.value) and "/uploads/f.png" in str(caught.value)


def test_the_async_transport_survives_a_second_event_loop() -> None:
    async def app_answer(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def serve_and_send(transport: AiohttpTransport) -> int:
        application = web.Application()
        application.router.add_get("/", app_answer)
        runner = web.AppRunner(application)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            port = runner.addresses[0][1]
            return (await transport.send(HttpRequest("GET", f"http://127.0.0.1:{port}/", "fal", timeout=5))).status
        finally:
            await runner.cleanup()

    transport = AiohttpTransport()
    assert asyncio.run(serve_and_send(transport)) == 200
    assert asyncio.run(serve_and_send(transport)) == 200  # a new loop gets a new session, not "loop closed"

    async def close() -> None:
        await transport.aclose()

    asyncio.run(close())
