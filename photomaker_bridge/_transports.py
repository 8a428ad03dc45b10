"""The only module that imports ``requests`` and ``aiohttp`` for provider traffic: the two transports.

Each sends an :class:`~photomaker_bridge._http.HttpRequest` and returns an
:class:`~photomaker_bridge._http.HttpResponse` for *any* HTTP status (statuses are the flows' business);
failures without an HTTP answer become :class:`~photomaker_bridge.ProviderUnavailableError` here, at the seam:
``code="timeout"`` for a timeout, ``code="connection_refused"`` when no connection could be opened (nothing was
sent), ``code="connection_error"`` for a reset or dropped one. The original exception is kept as ``__cause__``.

Two rules protect keys and deadlines:

* Redirects are never followed. Both HTTP libraries strip only ``Authorization`` when a redirect leaves the
  origin, not custom headers such as Eachlabs' ``X-API-Key``; no provider API redirects, so a 3xx comes back
  to the flow as an answer instead of carrying the key elsewhere.
* Messages name the method and the URL without its query string (a presigned upload URL's signature stays
  out) and never the headers.

Every exchange is logged at DEBUG on ``photomaker_bridge.<provider>`` (see ``_logging``): method, URL without
query, status (or the failure), seconds, and the provider's request id when a response header names one —
never headers or bodies, which carry the keys and the images.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from ._connections import ConnectionLimits
from ._http import HttpRequest, HttpResponse
from ._logging import provider_logger
from ._retry import CONNECTION_REFUSED
from .errors import ProviderUnavailableError

if TYPE_CHECKING:
    import aiohttp
    import requests

# requests and aiohttp are imported when a transport is made, not with this module: aiohttp alone costs
# ~170 ms at import (its connector builds SSL contexts), and a sync Bridge never needs it (docs/architecture.md,
# "Imports"). Each method imports what it uses; after the first time that is a dictionary lookup.

__all__ = ["AiohttpTransport", "RequestsTransport"]

DEFAULT_TIMEOUT = 120.0
"""Seconds for one HTTP exchange when neither the request nor the deadline says less."""

_CHUNK = 64 * 1024


def _safe_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


_REQUEST_ID_HEADERS = ("x-fal-request-id", "x-request-id", "request-id", "x-amzn-requestid")
"""Response headers that carry a provider's id of the request, first found wins."""


def _log_exchange(request: HttpRequest, started: float, status: int | None = None,
                  headers: Mapping[str, str] | None = None, failure: BaseException | None = None) -> None:
    logger = provider_logger(request.provider)
    if not logger.isEnabledFor(logging.DEBUG):
        return
    seconds = time.monotonic() - started
    outcome = f"failed ({type(failure).__name__})" if failure is not None else str(status)
    request_id = next((headers[name] for name in _REQUEST_ID_HEADERS if headers and headers.get(name)), None)
    suffix = f" request id {request_id}" if request_id else ""
    logger.debug("%s %s -> %s in %.3f s%s", request.method, _safe_url(request.url), outcome, seconds, suffix)


def _never_connected(error: BaseException) -> bool:
    """Whether requests/urllib3 failed to open a connection at all (``NewConnectionError`` anywhere in the chain
    it wraps): then nothing was sent, and even a job-creating request may be sent again (``_retry``)."""
    import urllib3.exceptions

    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        if isinstance(link, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError):
            return True
        seen.add(id(link))
        inner = link.args[0] if link.args and isinstance(link.args[0], BaseException) else None
        inner = inner or getattr(link, "reason", None) or link.__cause__ or link.__context__
        link = inner if isinstance(inner, BaseException) else None
    return False


def _unavailable(request: HttpRequest, code: str, error: BaseException | None) -> ProviderUnavailableError:
    what = "timed out" if code == "timeout" else "failed"
    detail = f" ({type(error).__name__})" if error is not None else ""
    return ProviderUnavailableError(f"{request.method} {_safe_url(request.url)} {what}{detail}",
                                    provider=request.provider, code=code)


class RequestsTransport:
    """Sync transport over one ``requests.Session`` (one connection pool), owned by a ``Bridge``.

    ``requests`` applies its timeout to each socket read, so a slow trickle of bytes would never time out; the
    body is read in chunks against the request's whole timeout instead.
    """

    def __init__(self, session: requests.Session | None = None, *,
                 connections: ConnectionLimits | None = None) -> None:
        import requests
        import requests.adapters

        if session is None:
            limits = connections or ConnectionLimits()
            session = requests.Session()
            # One pool per host of max_connections; past it requests opens throwaway connections (never blocks).
            size = limits.max_connections or 1_000
            for prefix in ("http://", "https://"):
                session.mount(prefix, requests.adapters.HTTPAdapter(pool_connections=10, pool_maxsize=size))
            if not limits.reuse:
                session.headers["Connection"] = "close"
        self.session = session

    def send(self, request: HttpRequest) -> HttpResponse:
        """Send ``request``; any status comes back as a response, network failures as ProviderUnavailableError."""
        import requests

        timeout = request.timeout if request.timeout is not None else DEFAULT_TIMEOUT
        started = time.monotonic()
        ends_at = started + timeout
        try:
            response = self.session.request(request.method, request.url, headers=dict(request.headers),
                                            data=request.body, timeout=timeout, allow_redirects=False, stream=True)
            with response:
                body = self._read(response, request, ends_at)
        except requests.ConnectTimeout as error:  # no connection was opened: nothing was sent
            _log_exchange(request, started, failure=error)
            raise _unavailable(request, CONNECTION_REFUSED, error) from error
        except requests.Timeout as error:
            _log_exchange(request, started, failure=error)
            raise _unavailable(request, "timeout", error) from error
        except requests.RequestException as error:  # refused, reset, dropped, chunked encoding ...
            _log_exchange(request, started, failure=error)
            code = CONNECTION_REFUSED if _never_connected(error) else "connection_error"
            raise _unavailable(request, code, error) from error
        except ProviderUnavailableError as error:  # the body trickled in past the timeout
            _log_exchange(request, started, failure=error)
            raise
        headers = {name.lower(): value for name, value in response.headers.items()}
        _log_exchange(request, started, response.status_code, headers)
        return HttpResponse(response.status_code, headers, body, response.url)

    @staticmethod
    def _read(response: requests.Response, request: HttpRequest, ends_at: float) -> bytes:
        # read1 returns as soon as some bytes arrive (urllib3 2), so the clock is checked between arrivals
        # and a body trickling in stops at the request's timeout (plus at most one read's timeout).
        raw = response.raw
        read1 = getattr(raw, "read1", None)
        pieces = (iter(lambda: read1(_CHUNK, decode_content=True), b"") if read1 is not None
                  else response.iter_content(_CHUNK))
        chunks: list[bytes] = []
        for chunk in pieces:
            chunks.append(chunk)
            if time.monotonic() > ends_at:
                raise _unavailable(request, "timeout", None)
        return b"".join(chunks)

    def close(self) -> None:
        """Close the connection pool."""
        self.session.close()


class AiohttpTransport:
    """Async transport over one ``aiohttp.ClientSession`` (one connection pool), owned by an ``AsyncBridge``.

    The session is created on first use inside the running event loop, and created anew when the client is
    used from another loop (a second ``asyncio.run``): an aiohttp session cannot outlive its loop.
    """

    def __init__(self, session: aiohttp.ClientSession | None = None, *,
                 connections: ConnectionLimits | None = None) -> None:
        self._session = session
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connections = connections or ConnectionLimits()

    @property
    def session(self) -> aiohttp.ClientSession:
        """The session for the running loop, created on first use."""
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or (self._loop is not None and self._loop is not loop):
            self._session = aiohttp.ClientSession(connector=self._connector())
            # aiohttp silently sends an idempotent request again when a reused connection drops; the bridge's
            # retry policy is the one place that decides what is tried again (and counts it). No public option.
            self._session._retry_connection = False
            self._loop = loop
        elif self._loop is None:
            self._loop = loop
        return self._session

    def _connector(self) -> aiohttp.TCPConnector:
        import aiohttp

        limits = self._connections
        limit = limits.max_connections or 0  # aiohttp: 0 is no limit
        if not limits.reuse:
            return aiohttp.TCPConnector(limit=limit, force_close=True)
        return aiohttp.TCPConnector(limit=limit, keepalive_timeout=limits.keepalive)

    async def send(self, request: HttpRequest) -> HttpResponse:
        """Send ``request``; any status comes back as a response, network failures as ProviderUnavailableError."""
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=request.timeout if request.timeout is not None else DEFAULT_TIMEOUT)
        started = time.monotonic()
        try:
            async with self.session.request(request.method, request.url, headers=dict(request.headers),
                                            data=request.body, timeout=timeout, allow_redirects=False) as response:
                body = await response.read()
                headers = {name.lower(): value for name, value in response.headers.items()}
                _log_exchange(request, started, response.status, headers)
                return HttpResponse(response.status, headers, body, str(response.url))
        except aiohttp.ClientConnectorError as error:  # no connection was opened: nothing was sent
            _log_exchange(request, started, failure=error)
            raise _unavailable(request, CONNECTION_REFUSED, error) from error
        except (TimeoutError, aiohttp.ServerTimeoutError) as error:
            _log_exchange(request, started, failure=error)
            raise _unavailable(request, "timeout", error) from error
        except aiohttp.ClientError as error:
            _log_exchange(request, started, failure=error)
            raise _unavailable(request, "connection_error", error) from error

    async def aclose(self) -> None:
        """Close the connection pool (if it belongs to the running loop; otherwise that loop is gone)."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            try:
                current = asyncio.get_running_loop()
            except RuntimeError:
                current = None
            if self._loop is None or self._loop is current:
                await session.close()
        self._loop = None
