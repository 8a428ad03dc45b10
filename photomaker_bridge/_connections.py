"""How many connections a client keeps open, and for how long: one setting for every HTTP library underneath.

``Bridge(max_connections=..., keepalive=...)`` and the same on ``AsyncBridge`` reach the three pools a client
has: ``requests`` (``Bridge``), ``aiohttp`` (``AsyncBridge``) and the ``httpx`` pool under ``fal_client``
(both clients). Pure values: the transports translate them into each library's own settings
(docs/architecture.md, "Transports").
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from .errors import ConfigurationError

__all__ = ["DEFAULT_KEEPALIVE", "DEFAULT_MAX_CONNECTIONS", "ConnectionLimits"]

DEFAULT_MAX_CONNECTIONS = 100
"""Connections one client opens at most (aiohttp's and httpx's own default): more calls in flight wait for one."""

DEFAULT_KEEPALIVE = 15.0
"""Seconds an idle connection stays open for the next request (aiohttp's default; httpx's is 5)."""


def _check_max_connections(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return
    raise ConfigurationError(f"max_connections must be a whole number of at least 1, or None for no limit, "
                             f"got {value!r}")


def _check_keepalive(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return
    raise ConfigurationError(f"keepalive must be a finite number of seconds, at least 0 (0 closes each connection "
                             f"after its answer), got {value!r}")


@attrs.frozen
class ConnectionLimits:
    """A client's connection pool settings."""

    max_connections: int | None = attrs.field(default=DEFAULT_MAX_CONNECTIONS, validator=_check_max_connections)
    """Connections open at once (per pool; ``None``: no limit). Calls beyond it wait for a free connection in
    ``AsyncBridge`` and fal's clients; ``requests`` opens extra ones and closes them after use."""
    keepalive: float = attrs.field(default=DEFAULT_KEEPALIVE, validator=_check_keepalive)
    """Seconds an idle connection is kept for reuse; ``0`` closes each connection after its answer. ``requests``
    keeps idle connections until the server closes them (urllib3 has no idle timeout); ``0`` still closes them."""

    @property
    def reuse(self) -> bool:
        """Whether connections are kept open between requests at all."""
        return self.keepalive > 0
