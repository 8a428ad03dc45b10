"""``Bridge`` (sync, over requests) and ``AsyncBridge`` (async, over aiohttp): thin shells over the providers.

Both do the same things, the only difference being the driver: turn ``provider=`` into a routed call (a plain
name is a direct call of one attempt; ``photomaker_bridge.routing``), let it validate and translate the request
(pure, :meth:`Provider.plan`) and choose, drive each attempt's provider flow with the client's one transport (and,
for fal, the client's one fal_client) and its one coordinator (provider limits, uploads shared by its calls), and
tidy the result (the plan's warnings, total time, the decision trail, optional download). No protocol or routing
logic lives here; it is written once, in ``photomaker_bridge.providers`` and ``photomaker_bridge.routing``.
"""

from __future__ import annotations

from ._async_client import AsyncBridge
from ._client_base import EventHandler
from ._sync_client import Bridge

__all__ = ["AsyncBridge", "Bridge", "EventHandler"]
