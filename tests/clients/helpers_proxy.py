"""A loopback HTTP proxy that loses replies: it forwards a request to an emulator, lets the emulator act on it
(accept a job), then closes the client's connection instead of answering — what a network failure after the
provider accepted a job looks like to a client.

Used by ``test_lost_replies.py``. The proxy runs on its own thread and event loop; ``drop`` rules say which
requests lose their reply (method, a path regex, a body regex, how many times).
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import attrs
from aiohttp import web

__all__ = ["DropRule", "LossyProxy", "lossy_proxy"]

_HOP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive"})


@attrs.define
class DropRule:
    """Lose the reply of requests with ``method`` whose path matches ``path`` (and body matches ``body``), at
    most ``times`` times."""

    method: str
    path: str
    body: str | None = None
    times: int = 1
    dropped: int = 0

    def matches(self, method: str, path: str, body: bytes) -> bool:
        if self.dropped >= self.times or method != self.method or not re.search(self.path, path):
            return False
        return self.body is None or re.search(self.body, body.decode("utf-8", errors="replace")) is not None


@attrs.define
class LossyProxy:
    """The running proxy: ``url`` to point a client at, ``rules`` to lose replies, ``dropped`` to check."""

    url: str
    upstream: str
    rules: list[DropRule] = attrs.field(factory=list)

    @property
    def dropped(self) -> int:
        """Replies lost so far."""
        return sum(rule.dropped for rule in self.rules)


@contextmanager
def lossy_proxy(upstream: str) -> Iterator[LossyProxy]:
    """A proxy in front of ``upstream`` (an emulator's base URL), on a free loopback port, for a ``with`` block."""
    ready = threading.Event()
    stop: asyncio.Event | None = None
    holder: dict[str, object] = {}

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        session = aiohttp.ClientSession(auto_decompress=False)
        proxy = LossyProxy(url="", upstream=upstream.rstrip("/"))

        async def forward(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            headers = {name: value for name, value in request.headers.items() if name.lower() not in _HOP_HEADERS}
            headers["Host"] = request.host  # the emulator builds its URLs (fal's status_url ...) on this host
            async with session.request(request.method, proxy.upstream + request.path_qs, headers=headers,
                                       data=body, allow_redirects=False) as answer:
                payload = await answer.read()
                for rule in proxy.rules:
                    if rule.matches(request.method, request.path, body):
                        rule.dropped += 1
                        if request.transport is not None:
                            request.transport.abort()  # the job was accepted upstream; the reply is lost
                        raise ConnectionResetError("lossy proxy dropped the reply")
                reply = web.Response(status=answer.status, body=payload)
                for name, value in answer.headers.items():
                    if name.lower() not in _HOP_HEADERS:
                        reply.headers[name] = value
                return reply

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        proxy.url = f"http://127.0.0.1:{port}"
        holder["proxy"] = proxy
        ready.set()
        await stop.wait()
        await runner.cleanup()
        await session.close()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), name="lossy-proxy", daemon=True)
    thread.start()
    ready.wait(10)
    try:
        proxy = holder["proxy"]
        assert isinstance(proxy, LossyProxy)
        yield proxy
    finally:
        if stop is not None:
            loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
