"""Small pieces every Eachlabs route shares: the presented key, a JSON-object body, seeded IDs."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from aiohttp import web

from ._common import EmulatorState

__all__ = ["json_object", "new_uuid", "presented_key"]


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
