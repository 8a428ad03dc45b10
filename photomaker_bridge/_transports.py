"""The only module that imports ``requests`` and ``aiohttp`` for provider traffic: the two transports.

Each sends an :class:`~photomaker_bridge._http.HttpRequest` and returns an
:class:`~photomaker_bridge._http.HttpResponse` for *any* HTTP status (statuses are the flows' business);
failures without an HTTP answer become :class:`~photomaker_bridge.ProviderUnavailableError` here, at the seam
(style-guide rule 8): ``code="timeout"`` for a timeout, ``code="connection_error"`` for a refused, reset or
dropped connection. The original exception is kept as ``__cause__``; the message never includes headers, so
no API key can leak through it.
"""

from __future__ import annotations

import aiohttp
import requests

from ._http import HttpRequest, HttpResponse
from .errors import ProviderUnavailableError

__all__ = ["AiohttpTransport", "RequestsTransport"]

DEFAULT_TIMEOUT = 120.0
"""Seconds for one HTTP exchange when neither the request nor the deadline says less."""


def _unavailable(request: HttpRequest, code: str, error: BaseException) -> ProviderUnavailableError:
    what = "timed out" if code == "timeout" else "failed"
    detail = type(error).__name__
    return ProviderUnavailableError(f"{request.method} {request.url} {what} ({detail})",
                                    provider=request.provider, code=code)


class RequestsTransport:
    """Sync transport over one ``requests.Session`` (one connection pool), owned by a ``Bridge``."""

    def __init__(self, session: requests.Session | None = None) -> None:
        self.session = session or requests.Session()
        # Loopback emulators must not be routed through a proxy from the environment; real hosts still are.
        self.session.trust_env = True

    def send(self, request: HttpRequest) -> HttpResponse:
        """Send ``request``; any status comes back as a response, network failures as ProviderUnavailableError."""
        timeout = request.timeout if request.timeout is not None else DEFAULT_TIMEOUT
        try:
            response = self.session.request(request.method, request.url, headers=dict(request.headers),
                                            data=request.body, timeout=timeout, allow_redirects=True)
            body = response.content
        except requests.Timeout as error:
            raise _unavailable(request, "timeout", error) from error
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
            raise _unavailable(request, "connection_error", error) from error
        except requests.RequestException as error:
            raise _unavailable(request, "connection_error", error) from error
        headers = {name.lower(): value for name, value in response.headers.items()}
        return HttpResponse(response.status_code, headers, body, response.url)

    def close(self) -> None:
        """Close the connection pool."""
        self.session.close()


class AiohttpTransport:
    """Async transport over one ``aiohttp.ClientSession`` (one connection pool), owned by an ``AsyncBridge``.

    The session is created on first use, inside the running event loop.
    """

    def __init__(self, session: aiohttp.ClientSession | None = None, *, limit: int = 100) -> None:
        self._session = session
        self._limit = limit

    @property
    def session(self) -> aiohttp.ClientSession:
        """The session, created on first use."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def send(self, request: HttpRequest) -> HttpResponse:
        """Send ``request``; any status comes back as a response, network failures as ProviderUnavailableError."""
        timeout = aiohttp.ClientTimeout(total=request.timeout if request.timeout is not None else DEFAULT_TIMEOUT)
        try:
            async with self.session.request(request.method, request.url, headers=dict(request.headers),
                                            data=request.body, timeout=timeout) as response:
                body = await response.read()
                headers = {name.lower(): value for name, value in response.headers.items()}
                return HttpResponse(response.status, headers, body, str(response.url))
        except (TimeoutError, aiohttp.ServerTimeoutError) as error:
            raise _unavailable(request, "timeout", error) from error
        except aiohttp.ClientError as error:
            raise _unavailable(request, "connection_error", error) from error

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
