"""Small pieces every Eachlabs route shares: the presented key, a JSON-object body, seeded IDs."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from ._common import EmulatorState

__all__ = ["json_object", "new_uuid", "presented_key", "request_id_middleware"]


def presented_key(request: web.Request) -> str | None:
    """The API key the request carries, or ``None``."""
    # Eachlabs takes the key in X-API-Key (seed page, old docs; header names are case-insensitive) or as a
    # Bearer token (current docs); both stay functional (eachlabs.md §1).
    key = request.headers.get("X-API-Key", "").strip()
    if key:
        return key
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def new_uuid(state: EmulatorState, taken: Callable[[str], bool]) -> str:
    """A UUID v4 from the seeded generator that ``taken`` does not know yet."""
    # Drawn from the seeded generator so the same seed gives the same IDs in the same order. A reset()
    # re-seeds it while earlier predictions and files live on, so skip IDs already in use.
    while True:
        candidate = str(uuid.UUID(int=state.random.getrandbits(128), version=4))
        if not taken(candidate):
            return candidate


async def json_object(request: web.Request) -> dict[str, object] | None:
    """The request body as a JSON object, or ``None`` when it is not one (answered 400, eachlabs.md §6.3)."""
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def request_id_middleware(current_path: contextvars.ContextVar[str]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """A middleware that adds ``X-Request-Id`` to API answers and keeps the path in ``current_path`` (so the
    fault middleware's error builder can answer with that route's own 500 text)."""

    @web.middleware
    async def middleware(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        # API responses carry X-Request-Id, echoing the client's or a fresh one (MD-OAS, eachlabs.md §1). It
        # is deliberately not drawn from the seeded generator: the number of requests (polls) depends on
        # timing, and it must not shift the draws that decide faults and IDs.
        is_api = request.path.startswith("/v1/")
        request_id = request.headers.get("X-Request-Id") or str(uuid.uuid4())
        token = current_path.set(request.path)
        try:
            response = await handler(request)
        except web.HTTPException as error:
            if is_api:
                error.headers["X-Request-Id"] = request_id
            raise
        finally:
            current_path.reset(token)
        if is_api:
            response.headers["X-Request-Id"] = request_id
        return response

    return middleware
