"""The one interface every state backend implements (docs/scaling.md, "The state interface").

A client keeps five things that a fleet of processes must share to act as one: provider slots (concurrency
leases and per-minute rates), circuit breakers, learned latency and price numbers, spend against budgets, and
the job journal (idempotency key → accepted job). Each question about them is an operation value
(``routing._state`` and ``state._operations``) that a backend answers atomically, with ``perform`` for the sync
client and ``aperform`` for the async one. :class:`~photomaker_bridge.state.MemoryState` answers in this process;
:class:`~photomaker_bridge.state.RedisState` answers for every process using the same Redis and namespace.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, Literal

from .._coordination import Coordinator
from ..routing._state import RouterState, StateOperation

__all__ = ["OnStateError", "State"]

OnStateError = Literal["fail", "local"]
"""What a shared backend does when it cannot be reached: refuse with ``StateUnavailableError``, or answer from
this process's memory (the result then carries a warning)."""


class State(abc.ABC):
    """Where clients keep what their calls share. Pass one to ``Bridge(state=...)`` / ``AsyncBridge(state=...)``;
    several clients (and, with a shared backend, several processes) may use the same one."""

    @abc.abstractmethod
    def perform(self, operation: StateOperation, accounts: Callable[[str], str] | None = None) -> Any:
        """Answer ``operation`` atomically (sync). ``accounts`` names a provider's account for routing
        questions, which carry provider names (default: the name itself)."""

    @abc.abstractmethod
    async def aperform(self, operation: StateOperation, accounts: Callable[[str], str] | None = None) -> Any:
        """Answer ``operation`` atomically (async)."""

    @abc.abstractmethod
    def coordinator(self) -> Coordinator:
        """The coordinator a client's flows take provider slots from (uploads always stay in the client)."""

    def router_state(self, accounts: Callable[[str], str]) -> RouterState:
        """The routing view of this state for a client whose providers have the accounts ``accounts`` names."""
        return _RouterView(self, accounts)

    def incidents(self) -> int:
        """How many questions the backend could not answer itself so far (0 for one that cannot fail): a client
        compares it before and after a call to warn that the call ran on this process's memory alone."""
        return 0

    def describe(self) -> str:
        """The backend in words, for warnings (never a password)."""
        return type(self).__name__

    def after_fork(self) -> None:
        """In a forked child: drop what belongs to the parent (connections, reservations of its calls)."""
        return None

    def close(self) -> None:
        """Release the backend's connections (sync clients)."""
        return None

    async def aclose(self) -> None:
        """Release the backend's connections (async clients)."""
        self.close()


class _RouterView:
    """A :class:`State` seen as a ``RouterState`` by one client (its providers' accounts)."""

    def __init__(self, state: State, accounts: Callable[[str], str]) -> None:
        self._state = state
        self._accounts = accounts

    def __repr__(self) -> str:
        return f"RouterState({self._state!r})"

    def perform(self, operation: StateOperation) -> Any:
        """Answer ``operation`` (sync client)."""
        return self._state.perform(operation, self._accounts)

    async def aperform(self, operation: StateOperation) -> Any:
        """Answer ``operation`` (async client)."""
        return await self._state.aperform(operation, self._accounts)
