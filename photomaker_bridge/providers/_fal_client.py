"""The seam with ``fal_client``: its clients as the bridge configures them, and its errors as the bridge's.

``fal_client`` 1.0.3 retries by itself (``_maybe_retry_request``: up to 10 tries on 408, 409, 429, ingress 5xx and
any transport error, docs/protocols/fal.md §1.9) — for submits too, so a lost submit reply makes it submit again:
two billed requests for one call, and the first one's id is never seen. The bridge owns retries instead
(``_retry``): the clients here send every request through :class:`_BridgeTransport`, which turns each failure
into an exception ``fal_client``'s retry loop does not catch (:class:`FalAnswered`, :class:`FalUnreachable`),
so every failure reaches the bridge after exactly one try, and the bridge decides.

The same transport points one client — not the whole process — at another server (``base_url``, the fal
emulator): requests for fal's hosts are rewritten to it. ``fal_client`` keeps its hosts in module constants
(§2), so the alternative, patching them, would redirect every fal client of the process, keys included.

How: subclasses of ``SyncClient``/``AsyncClient`` override the cached properties that build their HTTP clients
(``_client``, the CDN client, the CDN token manager) — the injection docs/protocols/fal.md §2 ("option C")
describes. ``fal_client`` is pinned below 2; ``tests/providers/test_fal_client_seam.py`` fails if these
internals move.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from functools import cached_property
from typing import Any, Final

import asyncstdlib
import fal_client
import fal_client.auth
import fal_client.client as fal_module
import httpx

from .._connections import ConnectionLimits
from .._retry import CONNECTION_REFUSED
from ..errors import ConfigurationError, GenerationTimeoutError, ProviderError, ProviderUnavailableError
from ._fal_parse import PROVIDER, FalStatus, error_for_answer, parse_logs, unreadable
from .base import error_for_status

__all__ = ["AsyncFalClient", "FalAnswered", "FalUnreachable", "SyncFalClient", "mapped_errors", "status_of"]

_FAL_HOSTS: Final[dict[str, str]] = {
    "queue.fal.run": "", "queue.falrun.com": "", "rest.fal.ai": "", "v3.fal.media": "",
    "fal.run": "/run", "falrun.com": "/run",
}
"""The hosts fal_client 1.0.3 talks to (docs/protocols/fal.md §1.1, §1.10, §1.13, §3.2) and the path under
``base_url`` each is rewritten to: one server serves them all, the synchronous ``fal.run`` host under ``/run``
(where the fal emulator serves it, since its paths are the queue's)."""
_TRANSIENT_STATUSES: Final = frozenset({408, 409, 429, 500, 502, 503, 504})
"""Answers that fail a read (status, result, cancel, upload) rather than describe the request it reads."""


class FalAnswered(Exception):
    """fal answered an error status; raised by the transport so that fal_client does not retry it."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes, url: str) -> None:
        super().__init__(f"HTTP {status} from {url}")
        self.status = status
        self.headers = headers
        self.body = body
        self.url = url

    def parsed_body(self) -> Any:
        """The body as JSON when it is JSON, else as text."""
        try:
            return json.loads(self.body)
        except ValueError:
            return self.body.decode("utf-8", errors="replace")


class FalUnreachable(Exception):
    """No answer from fal: the connection was refused (nothing sent), or failed or timed out after that."""

    def __init__(self, code: str, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.code = code


def _code_of(error: httpx.TransportError) -> str:
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        return CONNECTION_REFUSED  # no connection was opened: nothing reached fal
    if isinstance(error, httpx.TimeoutException):
        return "timeout"
    return "connection_error"


def _safe(url: httpx.URL) -> str:
    return str(url.copy_with(query=None, fragment=None))


class _Rewriter:
    """Sends requests for fal's hosts to ``base_url`` instead (a prefix path is kept)."""

    def __init__(self, base_url: str | None) -> None:
        self.base = httpx.URL(base_url.rstrip("/")) if base_url else None

    def __call__(self, request: httpx.Request) -> None:
        if self.base is None or request.url.host not in _FAL_HOSTS:
            return
        base = self.base
        prefix = base.path.rstrip("/") + _FAL_HOSTS[request.url.host]
        request.url = request.url.copy_with(scheme=base.scheme, host=base.host, port=base.port,
                                            path=prefix + request.url.path)
        request.headers["Host"] = base.netloc.decode("ascii")


def _limits(connections: ConnectionLimits) -> httpx.Limits:
    """The client's pool settings in httpx's terms (idle connections: as many as may be open)."""
    idle = connections.max_connections if connections.reuse else 0
    return httpx.Limits(max_connections=connections.max_connections, max_keepalive_connections=idle,
                        keepalive_expiry=connections.keepalive if connections.reuse else None)


class _BridgeTransport(httpx.BaseTransport):
    """fal_client's backup-domain transport, with every failure raised past fal_client's retry loop."""

    def __init__(self, base_url: str | None, connections: ConnectionLimits) -> None:
        self._rewrite = _Rewriter(base_url)
        limits = _limits(connections)
        # Loopback (an emulator) goes direct; fal itself through whatever proxy the environment names, as
        # fal_client's own client does (its inner httpx.Client, with the bridge's pool limits).
        inner = httpx.HTTPTransport(limits=limits) if base_url else None
        self._inner = fal_module.BackupDomainTransport(transport=inner)
        if inner is None:
            self._inner._client.close()
            self._inner._client = httpx.Client(limits=limits, follow_redirects=False)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._rewrite(request)
        try:
            response = self._inner.handle_request(request)
        except httpx.TransportError as error:
            raise FalUnreachable(_code_of(error), error) from error
        if response.status_code >= 400:
            try:
                body = response.read()
            except httpx.TransportError as error:
                raise FalUnreachable("connection_error", error) from error
            finally:
                response.close()
            raise FalAnswered(response.status_code, dict(response.headers), body, _safe(request.url))
        return response

    def close(self) -> None:
        self._inner.close()


class _AsyncBridgeTransport(httpx.AsyncBaseTransport):
    """The async twin of :class:`_BridgeTransport`."""

    def __init__(self, base_url: str | None, connections: ConnectionLimits) -> None:
        self._rewrite = _Rewriter(base_url)
        limits = _limits(connections)
        inner = httpx.AsyncHTTPTransport(limits=limits) if base_url else None
        self._inner = fal_module.AsyncBackupDomainTransport(transport=inner)
        if inner is None:
            # Nothing was opened yet: replaced synchronously, as for the sync transport.
            self._inner._client = httpx.AsyncClient(limits=limits, follow_redirects=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._rewrite(request)
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.TransportError as error:
            raise FalUnreachable(_code_of(error), error) from error
        if response.status_code >= 400:
            try:
                body = await response.aread()
            except httpx.TransportError as error:
                raise FalUnreachable("connection_error", error) from error
            finally:
                await response.aclose()
            raise FalAnswered(response.status_code, dict(response.headers), body, _safe(request.url))
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class _Shared(httpx.BaseTransport):
    """A client's view of the shared transport: closing the client does not close the pool."""

    def __init__(self, transport: httpx.BaseTransport) -> None:
        self._transport = transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._transport.handle_request(request)


class _AsyncShared(httpx.AsyncBaseTransport):
    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._transport.handle_async_request(request)


def _token(data: Any) -> fal_module.CDNToken:
    return fal_module.CDNToken(token=data["token"], token_type=data["token_type"],
                               base_upload_url=data["base_url"], expires_at=datetime.fromisoformat(data["expires_at"]))


class _TokenManager(fal_module.CDNTokenManager):
    """fal_client's CDN token manager, fetching its token through the bridge's transport (§3.2)."""

    def __init__(self, auth: fal_client.auth.AuthCredentials, transport: httpx.BaseTransport) -> None:
        super().__init__(auth)
        self._transport = transport

    def _refresh_token(self) -> fal_module.CDNToken:
        with httpx.Client(transport=_Shared(self._transport)) as client:
            response = client.post(self._url, headers=self._headers, json={})
            return _token(response.json())


class _AsyncTokenManager(fal_module.AsyncCDNTokenManager):
    def __init__(self, auth: fal_client.auth.AuthCredentials, transport: httpx.AsyncBaseTransport) -> None:
        super().__init__(auth)
        self._transport = transport

    async def _refresh_token(self) -> fal_module.CDNToken:
        async with httpx.AsyncClient(transport=_AsyncShared(self._transport)) as client:
            response = await client.post(self._url, headers=self._headers, json={})
            return _token(response.json())


class SyncFalClient(fal_client.SyncClient):
    """``fal_client.SyncClient`` whose every request goes through one :class:`_BridgeTransport`."""

    def __init__(self, key: str, base_url: str | None = None, connections: ConnectionLimits | None = None) -> None:
        super().__init__(key=key)
        object.__setattr__(self, "_bridge_transport", _BridgeTransport(base_url, connections or ConnectionLimits()))

    @property
    def transport(self) -> httpx.BaseTransport:
        """The connection pool behind every request of this client."""
        transport: httpx.BaseTransport = self.__dict__["_bridge_transport"]
        return transport

    @cached_property
    def _client(self) -> httpx.Client:
        return httpx.Client(transport=_Shared(self.transport), timeout=self.default_timeout, follow_redirects=True,
                            headers={"Authorization": self._auth.header_value, "User-Agent": fal_module.USER_AGENT})

    @cached_property
    def _token_manager(self) -> fal_module.CDNTokenManager:
        return _TokenManager(self._auth, self.transport)

    def _get_cdn_client(self) -> httpx.Client:
        # fal_client fetches the CDN token here, before its upload attempts begin, so a failed token fetch skips
        # its fallback to the other storage (the async client fetches it inside the attempt). Fetched when the
        # first upload request is sent instead, both clients fall back alike (docs/protocols/fal.md §3.2).
        manager = self._token_manager

        def with_token(request: httpx.Request) -> httpx.Request:
            token = manager.get_token()
            request.headers["Authorization"] = f"{token.token_type} {token.token}"
            return request

        return httpx.Client(transport=_Shared(self.transport), timeout=self.default_timeout, auth=with_token,
                            headers={"User-Agent": fal_module.USER_AGENT})

    def close(self) -> None:
        """Close the connection pool."""
        self.transport.close()


class AsyncFalClient(fal_client.AsyncClient):
    """``fal_client.AsyncClient`` whose every request goes through one :class:`_AsyncBridgeTransport`."""

    def __init__(self, key: str, base_url: str | None = None, connections: ConnectionLimits | None = None) -> None:
        super().__init__(key=key)
        self.__dict__["_bridge_transport"] = _AsyncBridgeTransport(base_url, connections or ConnectionLimits())

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        """The connection pool behind every request of this client."""
        transport: httpx.AsyncBaseTransport = self.__dict__["_bridge_transport"]
        return transport

    @asyncstdlib.cached_property(asyncio.Lock)
    async def _client(self) -> httpx.AsyncClient:
        auth = await self._auth
        return httpx.AsyncClient(transport=_AsyncShared(self.transport), timeout=self.default_timeout,
                                 headers={"Authorization": auth.header_value, "User-Agent": fal_module.USER_AGENT})

    @asyncstdlib.cached_property(asyncio.Lock)
    async def _token_manager(self) -> fal_module.AsyncCDNTokenManager:
        return _AsyncTokenManager(await self._auth, self.transport)

    @contextlib.asynccontextmanager
    async def _cdn_client(self) -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(transport=_AsyncShared(self.transport), timeout=self.default_timeout,
                                     headers={"User-Agent": fal_module.USER_AGENT}) as client:
            yield client

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.transport.aclose()


# -- errors -----------------------------------------------------------------------------------------------------


def _answer_error(error: FalAnswered, request_id: str | None, *, reads: bool) -> ProviderError:
    body = error.parsed_body()
    user_timeout = error.status == 504 and error.headers.get("x-fal-request-timeout-type") == "user"
    if error.status in _TRANSIENT_STATUSES and not user_timeout:
        # A call answered 408, 409, 429 or 5xx failed as a call, whatever error type fal put in it (kept as the
        # code): a read is tried again, a submit only when refused (429, 503). Only a request's own result
        # (fetched after COMPLETED) or the caller's start timeout (fal.md §1.9) describe a failed generation.
        detail = body.get("detail") if isinstance(body, dict) else None
        error_type = body.get("error_type") if isinstance(body, dict) else None
        message = detail if isinstance(detail, str) else f"fal answered HTTP {error.status} ({error.url})"
        return error_for_status(error.status, message, provider=PROVIDER, raw=body,
                                request_id=request_id or error.headers.get("x-fal-request-id"),
                                code=error_type if isinstance(error_type, str) else error.headers.get(
                                    "x-fal-error-type"), retry_after=error.headers.get("retry-after"))
    return error_for_answer(error.status, body, error.headers, request_id=request_id)


@contextlib.contextmanager
def mapped_errors(request_id: str | None, *, reads: bool, handle_for: Any = None) -> Iterator[None]:
    """Turn what fal_client, httpx and the bridge's transport raise into the bridge's errors (§1.6, §1.9, §5).

    ``reads``: the call creates nothing (status, result, cancel, upload), so a failed answer is transient.
    ``handle_for`` builds a handle from a request id (for fal_client's own timeout error).
    """
    try:
        yield
    except ProviderError:
        raise
    except FalAnswered as error:
        raise _answer_error(error, request_id, reads=reads) from error
    except FalUnreachable as error:
        raise ProviderUnavailableError(f"could not talk to fal ({error})", provider=PROVIDER, code=error.code,
                                       request_id=request_id) from error
    except fal_client.FalClientHTTPError as error:
        raise error_for_answer(error.status_code, _response_body(error.response), error.response_headers,
                               request_id=request_id, error_type=error.error_type) from error
    except fal_client.FalClientTimeoutError as error:
        handle = handle_for(error.request_id) if error.request_id and handle_for is not None else None
        raise GenerationTimeoutError(str(error), provider=PROVIDER, request_id=error.request_id,
                                     handle=handle) from error
    except fal_client.auth.MissingCredentialsError as error:
        raise ConfigurationError(f"{error} (or pass FalProvider(key=...))") from error
    except httpx.HTTPStatusError as error:
        response = error.response
        raise error_for_answer(response.status_code, _response_body(response), dict(response.headers),
                               request_id=request_id) from error
    except httpx.TimeoutException as error:
        raise ProviderUnavailableError(f"timed out talking to fal ({type(error).__name__}: {error})",
                                       provider=PROVIDER, code="timeout", request_id=request_id) from error
    except httpx.HTTPError as error:
        raise ProviderUnavailableError(f"could not talk to fal ({type(error).__name__}: {error})",
                                       provider=PROVIDER, code="connection_error", request_id=request_id) from error
    except json.JSONDecodeError as error:
        # fal_client parses a body only after its status check let it through, so this was a success answer;
        # its exact status is not exposed, and every fal success the references show is 200 (§1.3–§1.6).
        raise unreadable(f"not JSON ({error.msg})", error.doc, request_id=request_id, status=200) from error
    except (KeyError, TypeError, ValueError) as error:
        # fal_client reads required keys with [] and raises ValueError("Unknown status: ...") (§1.4).
        raise unreadable(f"{type(error).__name__}: {error}", None, request_id=request_id) from error


def _response_body(response: httpx.Response | None) -> Any:
    if response is None:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def status_of(status: fal_client.Status) -> FalStatus:
    """fal_client's status object as the bridge's :class:`FalStatus`."""
    if isinstance(status, fal_client.Queued):
        return FalStatus("IN_QUEUE", queue_position=status.position)
    if isinstance(status, fal_client.InProgress):
        return FalStatus("IN_PROGRESS", logs=parse_logs(status.logs))
    if isinstance(status, fal_client.Completed):
        return FalStatus("COMPLETED", logs=parse_logs(status.logs), metrics=dict(status.metrics or {}),
                         error=status.error, error_type=status.error_type)
    raise ValueError(f"Unknown status object: {status!r}")
