"""How the clients run one attempt of a routed call, and cancel the jobs of a hedge race's loser: the two small
adapters (sync, async) between a route's driver (``routing._drivers``) and a client's one provider path."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._http import CLEANUP_GRACE_SECONDS, Stop
from .jobs import CancelOutcome
from .plan import Plan

if TYPE_CHECKING:
    from ._client_base import EventHandler
    from .client import AsyncBridge, Bridge

__all__ = ["AsyncAttempts", "SyncAttempts"]


class SyncAttempts:
    """How a routed call of a :class:`~photomaker_bridge.Bridge` runs one attempt and cancels jobs."""

    def __init__(self, bridge: Bridge, deadline: float | None, *, keep_running: bool = False) -> None:
        self._bridge = bridge
        self._deadline = deadline
        self._keep_running = keep_running

    def run(self, provider: str, plan: Plan, mode: str, on_event: EventHandler | None, stop: Stop | None) -> Any:
        started = time.monotonic()
        adapter = self._bridge.provider(provider)
        value = self._bridge._drive(adapter, self._bridge._attempt_flow(adapter, plan, mode, self._deadline,
                                                                    keep_running=self._keep_running),
                                    self._deadline, on_event, stop)
        return self._bridge._finish(value, plan.warnings, started) if mode == "generate" else value

    def cancel(self, provider: str, request_ids: Sequence[str]) -> tuple[CancelOutcome, ...]:
        adapter = self._bridge.provider(provider)
        return tuple(outcome for request_id in request_ids
                     for outcome in self._bridge.cancel(adapter.handle_for(request_id), timeout=CLEANUP_GRACE_SECONDS))


class AsyncAttempts:
    """How a routed call of an :class:`~photomaker_bridge.AsyncBridge` runs one attempt and cancels jobs."""

    def __init__(self, bridge: AsyncBridge, deadline: float | None, *, keep_running: bool = False) -> None:
        self._bridge = bridge
        self._deadline = deadline
        self._keep_running = keep_running

    async def run(self, provider: str, plan: Plan, mode: str, on_event: EventHandler | None,
                  stop: Stop | None) -> Any:
        started = time.monotonic()
        adapter = self._bridge.provider(provider)
        value = await self._bridge._drive(adapter, self._bridge._attempt_flow(adapter, plan, mode, self._deadline,
                                                                    keep_running=self._keep_running),
                                          self._deadline, on_event, stop)
        return self._bridge._finish(value, plan.warnings, started) if mode == "generate" else value

    async def cancel(self, provider: str, request_ids: Sequence[str]) -> tuple[CancelOutcome, ...]:
        adapter = self._bridge.provider(provider)
        outcomes: list[CancelOutcome] = []
        for request_id in request_ids:
            outcomes += await self._bridge.cancel(adapter.handle_for(request_id), timeout=CLEANUP_GRACE_SECONDS)
        return tuple(outcomes)
