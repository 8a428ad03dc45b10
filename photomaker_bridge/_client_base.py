"""What ``Bridge`` and ``AsyncBridge`` share: configured providers, the coordinator of their calls, planning,
input checks, result tidying, and their lifecycle (closed state, ``fork()``).

Lifecycle rules (docs/architecture.md, "Client lifecycle"):

* a client used after ``close()``/``aclose()`` raises :class:`~photomaker_bridge.ClientClosedError`;
* in the child of ``os.fork()`` every open client drops the parent's connections and SDK clients without
  touching them (they share sockets with the parent) and starts fresh pools on its next call; uploads it
  learnt stay known, slots held by the parent's calls do not follow it;
* ``Bridge`` may be shared between threads; ``AsyncBridge`` belongs to the event loop it is first used on.
"""

from __future__ import annotations

import datetime
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ._client_values import check_timeout, check_webhook_url
from ._connections import DEFAULT_KEEPALIVE, DEFAULT_MAX_CONNECTIONS, ConnectionLimits
from ._coordination import Coordinator
from ._http import Event, Flow
from ._retry import RetryPolicy
from .errors import BridgeError, ClientClosedError, ConfigurationError, InvalidRequestError, ProviderError
from .jobs import JobHandle
from .plan import Plan
from .providers import PROVIDER_NAMES, provider_class
from .providers.base import FlowContext, Provider
from .request import PhotoMakerRequest
from .result import Attempt, BridgeWarning, PhotoMakerResult
from .routing import BreakerSettings, MemoryRouterState, Route, RouteCall, RouterState, as_route
from .routing._choice import first_choice
from .routing._route import _amount, direct_route
from .routing._state import ReadNumbers, Reset, StateOperation
from .routing._trail import error_attempt, failure_record, success_record

if TYPE_CHECKING:
    from .state import State
    from .state._idempotent import IdempotentFlow

__all__ = ["BridgeBase", "EventHandler", "Mode", "ProviderChoice"]

ProviderChoice = str | Sequence[str] | Route
"""What ``provider=`` takes: a name (a direct call), a list of names (an ordered route) or a :class:`Route`."""

EventHandler = Callable[[Event], Any]
"""Receives progress events; in ``AsyncBridge`` it may also be a coroutine function."""

Mode = Literal["generate", "submit"]
"""What a routed call makes: a result (``generate``) or an accepted job's handle (``submit``)."""

_OPEN_CLIENTS: weakref.WeakSet[BridgeBase] = weakref.WeakSet()
"""Every client not yet closed, so that a forked child can reset them."""


def _after_fork_in_child() -> None:
    for client in list(_OPEN_CLIENTS):
        client._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class BridgeBase:
    """What both clients share (see the module docstring)."""

    def __init__(self, providers: Iterable[Provider] | None = None, *, retry: RetryPolicy | None = None,
                 budget: Decimal | float | str | None = None, breaker: BreakerSettings | None = None,
                 router_state: RouterState | None = None, max_connections: int | None = DEFAULT_MAX_CONNECTIONS,
                 keepalive: float = DEFAULT_KEEPALIVE, state: State | None = None) -> None:
        self._connections = ConnectionLimits(max_connections, keepalive)
        """The connection pools' settings (checked first: a bad one is a ConfigurationError)."""
        configured: dict[str, Provider] = {}
        for provider in providers or ():
            if provider.name in configured:
                raise ConfigurationError(f"provider {provider.name!r} is configured twice")
            configured[provider.name] = provider
        for name in PROVIDER_NAMES:
            if name not in configured:
                # Unconfigured providers read their key from the environment when first used.
                configured[name] = provider_class(name)()
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        self._providers = configured
        self._performers: dict[str, Any] = {}
        """Each provider's runner of SDK calls (fal), created on first use."""
        self._retry = retry or RetryPolicy()
        if breaker is not None and not isinstance(breaker, BreakerSettings):
            raise ConfigurationError(f"breaker must be a BreakerSettings, got {type(breaker).__name__}")
        self._breaker = breaker or BreakerSettings()
        self._budget = None if budget is None else _amount(budget, "budget", allow_zero=False)
        self._router_state: RouterState = router_state if router_state is not None else MemoryRouterState()
        self._random = random.Random().random
        self._coordinator = Coordinator()
        self._state = state
        self._own_journal: State | None = None
        """Without ``state=``: where ``idempotency_key`` calls are journaled (made on first use)."""
        self._accounts: dict[str, str] = {}
        if state is not None:
            self._use_state(state, router_state)
        self._closed = False
        self._lock = threading.RLock()
        _OPEN_CLIENTS.add(self)

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"{type(self).__name__}(providers={sorted(self._providers)!r}){state}"

    @property
    def providers(self) -> dict[str, Provider]:
        """The configured adapters by name (keys never appear in their reprs)."""
        return dict(self._providers)

    @property
    def retry(self) -> RetryPolicy:
        """How this client tries failed steps again."""
        return self._retry

    @property
    def router_state(self) -> RouterState:
        """What every routed call of this client shares: circuit breakers, learned numbers, spend
        (docs/routing.md, "Router state")."""
        return self._router_state

    @property
    def state(self) -> State | None:
        """The state given as ``state=`` (slots, breakers, numbers, spend and the job journal; docs/scaling.md), or
        ``None``: this client keeps its own in memory."""
        return self._state

    def _use_state(self, state: State, router_state: RouterState | None) -> None:
        from .state import State

        if not isinstance(state, State):
            raise ConfigurationError(f"state must be a MemoryState or a RedisState (photomaker_bridge.state), got "
                                     f"{type(state).__name__}")
        if router_state is not None:
            raise ConfigurationError("pass state= or router_state=, not both: state= holds the router state too")
        self._router_state = state.router_state(self._account_name)
        self._coordinator = state.coordinator()

    def _account_name(self, name: str) -> str:
        """How the state names ``name``'s account: the provider and a hash of its key (the name alone while no key
        is configured)."""
        account = self._accounts.get(name)
        if account is None:
            adapter = self._providers.get(name)
            try:
                account = adapter.account() if adapter is not None else name
            except ConfigurationError:
                return name
            self._accounts[name] = account
        return account

    def _state_mark(self) -> int:
        """Where the state's incident count stands before a call (see :meth:`_state_warned`)."""
        return self._state.incidents() if self._state is not None else 0

    def _state_warned(self, result: PhotoMakerResult, mark: int) -> PhotoMakerResult:
        """``result`` with a warning when the state could not answer during the call (so limits, breakers or spend
        were this process's alone for some of it)."""
        if self._state is None or self._state.incidents() == mark:
            return result
        warning = BridgeWarning(field="state", asked=self._state.describe(), sent="this process only",
                                reason=f"{self._state.describe()} did not answer during this call: provider limits, "
                                       "breakers, spend or the job journal were kept in this process's memory for "
                                       "part of it (docs/scaling.md, \"When Redis fails\")")
        return attrs.evolve(result, warnings=[*result.warnings, warning])

    def _idempotent(self, key: str, provider: ProviderChoice, deadline: float | None) -> tuple[Any, IdempotentFlow]:
        """The state whose journal keeps ``key`` (this client's own memory when it has no ``state=``) and the flow
        of an idempotent ``generate``."""
        from .state import MemoryState
        from .state._idempotent import call_owner, check_key, idempotent_flow

        key = check_key(key)
        self._check_open()
        with self._lock:
            state = self._state
            if state is None:  # no state= given: the keys are this client's to remember
                state = self._own_journal = self._own_journal or MemoryState()
        owner = call_owner(state)
        keep = float(getattr(state, "journal_seconds", 7 * 86400.0))

        def remaining() -> float | None:
            return None if deadline is None else deadline - time.monotonic()

        return state, idempotent_flow(key, owner, keep, remaining, as_route(provider) is not None)

    @property
    def budget(self) -> Decimal | None:
        """The most this client's calls may spend in all (USD), or ``None``."""
        return self._budget

    def reset_provider(self, name: str) -> None:
        """Close ``name``'s circuit breaker and forget its failures, e.g. after fixing its key or topping up its
        account (an authentication or credit failure takes a provider out of every route until then)."""
        self._router_state.perform(Reset(self.provider(name).name))

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` (``aclose``) was called."""
        return self._closed

    def in_flight(self, provider: str) -> int:
        """Jobs of ``provider`` holding a slot of its limits in this client now (0 when it has no limits)."""
        adapter = self.provider(provider)
        return self._coordinator.in_flight(adapter.account()) if adapter.limits().active else 0

    def provider(self, name: str) -> Provider:
        """The adapter for ``name``; :class:`ConfigurationError` for an unknown name."""
        if not isinstance(name, str):
            raise ConfigurationError(f"a job, a limit and a key belong to one provider: pass its name, not "
                                     f"{type(name).__name__} {name!r}")
        if name not in self._providers:
            known = ", ".join(sorted(self._providers))
            raise ConfigurationError(f"unknown provider {name!r}; known providers: {known}")
        return self._providers[name]

    def explain(self, request: PhotoMakerRequest, provider: ProviderChoice, *, strict: bool = False,
                webhook_url: str | None = None) -> Plan:
        """What ``provider`` (as configured here) would be sent for ``request`` (with ``webhook_url``: as
        :meth:`submit` would send it). No network, no key needed.

        With a route, the plan of the provider it would try first now: the first, in its strategy's order, that can
        take the request, whose circuit breaker is not open and that fits the route's budget (a weighted route
        draws)."""
        route = as_route(provider)
        url = None if webhook_url is None else check_webhook_url(webhook_url)
        if route is None:
            adapter = self.provider(str(provider))
            plan = adapter.plan(request, strict=strict)
            return plan if url is None else adapter.with_webhook(plan, url)
        numbers = self._router_state.perform(ReadNumbers(route.providers))
        return first_choice(route, request, strict, self._providers, numbers, self._random, webhook_url=url)

    # -- for the clients ------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError(f"this {type(self).__name__} is closed; create a new one (or keep it open "
                                    "for as long as you use it, e.g. in a with block)")

    def _mark_closed(self) -> bool:
        """Mark the client closed; ``False`` when it already was."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
        _OPEN_CLIENTS.discard(self)
        return True

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's pools and SDK clients (see the module docstring)."""
        for performer in self._performers.values():
            forget = getattr(performer, "forget", None)
            if forget is not None:
                forget()
        self._performers = {}
        self._lock = threading.RLock()
        if self._state is not None:
            self._state.after_fork()
            self._coordinator = self._state.coordinator()
            return
        uploads = dict(self._coordinator.uploads)
        self._coordinator = Coordinator()
        self._coordinator.uploads.update(uploads)
        after_fork = getattr(self._router_state, "after_fork", None)
        if after_fork is not None:
            after_fork()

    def _route_call(self, request: PhotoMakerRequest, provider: ProviderChoice, strict: bool,
                    mode: Literal["generate", "submit"], deadline: float | None,
                    after: ProviderError | None = None, webhook_url: str | None = None, *,
                    keep_running: bool = False) -> RouteCall:
        """The routed call ``provider=`` describes: a plain name is a direct call (one attempt, no breaker).
        ``webhook_url`` and ``keep_running`` are checked here, before anything is planned or sent."""
        self._check_open()
        url = None if webhook_url is None else check_webhook_url(webhook_url)
        route = as_route(provider)
        direct = route is None
        if route is None:
            route = direct_route(self.provider(str(provider)).name)
        if after is not None and (direct or not isinstance(after, ProviderError)):
            raise ConfigurationError("after= continues a route: pass the route, and the ProviderError that result() "
                                     "raised for the job of its earlier submit")
        if keep_running and route.hedge is not None and not direct:
            raise ConfigurationError("keep_running=True leaves a job running when the call ends early, but a hedged "
                                     "route cancels the jobs of the requests that lose the race: use a route "
                                     "without hedge=, or keep_running=False")
        return RouteCall(route, request, self._providers, strict=strict, mode=mode, direct=direct,
                         deadline=deadline, breaker=self._breaker, client_budget=self._budget, after=after,
                         random=self._random, webhook_url=url)

    def _collected(self, handle: JobHandle, result: PhotoMakerResult | None, error: BaseException | None,
                   seconds: float) -> tuple[PhotoMakerResult | None, StateOperation]:
        """After ``result(handle)``: the result (or the error, in place) with the trail — the handle's, its accepted
        attempt completed with how the job ended — and the record that teaches the router state what came of it."""
        accepted = handle.attempts[-1] if handle.attempts and handle.attempts[-1].outcome == "ok" else None
        before = tuple(handle.attempts[:-1]) if accepted is not None else tuple(handle.attempts)
        total = seconds + ((accepted.seconds or 0.0) if accepted is not None else 0.0)
        reason = accepted.reason if accepted is not None else None
        now = time.time()
        if result is not None:
            entry = Attempt(handle.provider, "ok", request_ids=result.request_ids, seconds=round(total, 6),
                            cost=result.cost, reason=reason)
            return (attrs.evolve(result, attempts=(*before, entry)),
                    success_record(handle.provider, result, self._breaker, now, seconds=seconds))
        assert error is not None
        if isinstance(error, BridgeError):
            error.attempts = (*before, error_attempt(handle.provider, error, seconds=total, reason=reason,
                                                     request_ids=handle.request_ids))
        return None, failure_record(handle.provider, error, self._breaker, now)

    def _batch_trails(self, provider: str, outcomes: Sequence[PhotoMakerResult | ProviderError],
                      seconds: float) -> tuple[list[PhotoMakerResult | ProviderError], list[StateOperation]]:
        """A one-call batch's outcomes, each with its one-line trail, and what they teach the router state."""
        now = time.time()
        marked: list[PhotoMakerResult | ProviderError] = []
        records: list[StateOperation] = []
        for outcome in outcomes:
            if isinstance(outcome, PhotoMakerResult):
                entry = Attempt(provider, "ok", request_ids=outcome.request_ids, seconds=round(seconds, 6),
                                cost=outcome.cost)
                marked.append(attrs.evolve(outcome, attempts=(entry,)))
                records.append(success_record(provider, outcome, self._breaker, now, seconds=seconds))
            else:
                outcome.attempts = (error_attempt(provider, outcome, seconds=seconds, reason=None),)
                marked.append(outcome)
                records.append(failure_record(provider, outcome, self._breaker, now))
        return marked, records

    def _attempt_flow(self, adapter: Provider, plan: Plan, mode: str, deadline: float | None, *,
                      keep_running: bool = False) -> Flow[Any]:
        """One provider's flow for one attempt of a (routed or direct) call; ``keep_running``: a ``generate`` that
        leaves its jobs running at the deadline (or when abandoned) instead of cancelling them."""
        if mode == "submit":
            return adapter.submit_flow(plan, self._context(cancel_on_deadline=False, deadline=deadline))
        return adapter.generate_flow(plan, self._context(cancel_on_deadline=not keep_running, deadline=deadline))


    def _check_many(self, requests: Sequence[PhotoMakerRequest], provider: ProviderChoice,
                    strict: bool) -> Route | None:
        """Before ``generate_many`` sends anything: each request must be plannable by at least one candidate."""
        self._check_open()
        route = as_route(provider)
        if route is None:
            self.provider(str(provider)).require_key()
        names = route.providers if route is not None else (self.provider(str(provider)).name,)
        for request in requests:
            refusal: BridgeError | None = None
            for name in names:
                try:
                    self._providers[name].plan(request, strict=strict)
                    refusal = None
                    break
                except InvalidRequestError as error:
                    refusal = refusal or error
            if refusal is not None:
                raise refusal
        return route

    def _context(self, *, cancel_on_deadline: bool, deadline: float | None) -> FlowContext:
        return FlowContext(cancel_on_deadline=cancel_on_deadline, retry=self._retry, deadline=deadline)

    @staticmethod
    def _deadline(timeout: object) -> float | None:
        seconds = check_timeout(timeout)
        return None if seconds is None else time.monotonic() + seconds

    @staticmethod
    def _left(deadline: float | None) -> float:
        """Seconds a download may take: what is left of the call's deadline (at least 1 s), else 60 s."""
        return 60.0 if deadline is None else max(1.0, deadline - time.monotonic())

    @staticmethod
    def _finish(result: PhotoMakerResult, plan_warnings: Sequence[Any], started: float) -> PhotoMakerResult:
        """Make sure the plan's warnings and the total time are on the result."""
        missing = [warning for warning in plan_warnings if warning not in result.warnings]
        timings = result.timings
        if timings.total_seconds is None:
            timings = attrs.evolve(timings, total_seconds=round(time.monotonic() - started, 6))
        created = result.created_at or datetime.datetime.now(datetime.UTC)
        return attrs.evolve(result, warnings=[*missing, *result.warnings], timings=timings, created_at=created)
