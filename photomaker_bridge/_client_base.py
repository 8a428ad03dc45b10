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
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs

from ._coordination import Coordinator
from ._http import Event
from ._retry import RetryPolicy
from .errors import ClientClosedError, ConfigurationError, InvalidRequestError, ProviderError
from .plan import Plan
from .providers import PROVIDER_NAMES, provider_class
from .providers.base import FlowContext, Provider
from .request import PhotoMakerRequest
from .result import BridgeWarning, GeneratedImage, PhotoMakerResult

__all__ = ["BridgeBase", "EventHandler", "check_timeout", "with_data"]

EventHandler = Callable[[Event], Any]
"""Receives progress events; in ``AsyncBridge`` it may also be a coroutine function."""

_OPEN_CLIENTS: weakref.WeakSet[BridgeBase] = weakref.WeakSet()
"""Every client not yet closed, so that a forked child can reset them."""


def _after_fork_in_child() -> None:
    for client in list(_OPEN_CLIENTS):
        client._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def check_timeout(timeout: object, *, name: str = "timeout") -> float | None:
    """``timeout`` as seconds, or ``None`` (no deadline); :class:`ConfigurationError` naming the value unless it is a
    finite positive number (``bool`` is refused: ``True`` is not a duration)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ConfigurationError(f"{name} must be a number of seconds (int or float) or None, got "
                                 f"{type(timeout).__name__} {timeout!r}")
    if not math.isfinite(timeout) or timeout <= 0:
        raise ConfigurationError(f"{name} must be a finite positive number of seconds (or None for no deadline), "
                                 f"got {timeout!r}")
    return float(timeout)


def check_webhook_url(value: object) -> str:
    """``value`` if it is an absolute ``http(s)`` URL with a host; else :class:`InvalidRequestError` naming
    ``webhook_url`` (checked before anything is uploaded or submitted)."""
    allowed = "an absolute http:// or https:// URL the provider can POST to"
    if not isinstance(value, str):
        raise InvalidRequestError("webhook_url", value, allowed)
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequestError("webhook_url", value, allowed)
    return value.strip()


class BridgeBase:
    """What both clients share (see the module docstring)."""

    def __init__(self, providers: Iterable[Provider] | None = None, *, retry: RetryPolicy | None = None) -> None:
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
        self._coordinator = Coordinator()
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
    def closed(self) -> bool:
        """Whether :meth:`close` (``aclose``) was called."""
        return self._closed

    def in_flight(self, provider: str) -> int:
        """Jobs of ``provider`` holding a slot of its limits in this client now (0 when it has no limits)."""
        adapter = self.provider(provider)
        return self._coordinator.in_flight(adapter.account()) if adapter.limits().active else 0

    def provider(self, name: str) -> Provider:
        """The adapter for ``name``; :class:`ConfigurationError` for an unknown name."""
        if name not in self._providers:
            known = ", ".join(sorted(self._providers))
            raise ConfigurationError(f"unknown provider {name!r}; known providers: {known}")
        return self._providers[name]

    def explain(self, request: PhotoMakerRequest, provider: str, *, strict: bool = False,
                webhook_url: str | None = None) -> Plan:
        """What ``provider`` (as configured here) would be sent for ``request`` (with ``webhook_url``: as
        :meth:`submit` would send it). No network, no key needed."""
        return self._plan(self.provider(provider), request, strict, webhook_url)

    @staticmethod
    def _plan(adapter: Provider, request: PhotoMakerRequest, strict: bool, webhook_url: str | None) -> Plan:
        plan = adapter.plan(request, strict=strict)
        if webhook_url is not None:
            plan = adapter.with_webhook(plan, check_webhook_url(webhook_url))
        return plan

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
        uploads = dict(self._coordinator.uploads)
        self._lock = threading.RLock()
        self._coordinator = Coordinator()
        self._coordinator.uploads.update(uploads)

    def _prepare(self, request: PhotoMakerRequest, provider: str, strict: bool,
                 webhook_url: str | None = None) -> tuple[Provider, Plan]:
        self._check_open()
        adapter = self.provider(provider)
        adapter.require_key()
        return adapter, self._plan(adapter, request, strict, webhook_url)

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


def with_data(result: PhotoMakerResult, payloads: Sequence[bytes | ProviderError]) -> PhotoMakerResult:
    """``result`` with each image's downloaded bytes; an image that failed keeps its URL, with a warning."""
    images: list[GeneratedImage] = []
    warnings = list(result.warnings)
    for index, (image, payload) in enumerate(zip(result.images, payloads, strict=True)):
        if isinstance(payload, ProviderError):
            images.append(image)
            warnings.append(BridgeWarning(field=f"images[{index}]", asked="download", sent=None,
                                          provider=result.provider, reason=f"the image stays a URL: {payload.message}"))
        else:
            images.append(attrs.evolve(image, data=payload))
    return attrs.evolve(result, images=images, warnings=warnings)
