"""What every emulator shares: settings, fault rules, the request log, and the fault middleware.

Each emulator (``runware``, ``fal``, ``eachlabs``) is an aiohttp application built around one
:class:`EmulatorState`. The state owns the seeded random generator, so every fault drawn "for a fraction of
requests" and every duration drawn from a range is the same on every run with the same ``seed``.

Faults come in two families:

* **HTTP faults** (``status``, ``drop``, ``malformed``) are applied by :func:`fault_middleware` before the
  route handler runs, to the requests whose route and method match the rule.
* **Job faults** (``fail_job``, ``stuck_job``, ``partial``, ``slow_job``) are consulted by an emulator when it
  accepts a job (:meth:`EmulatorState.job_fault`): the job then fails after starting, never finishes, delivers
  fewer images than asked, or waits longer in the queue.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import re
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Literal

import attrs
from aiohttp import web

__all__ = [
    "Duration",
    "EmulatorSettings",
    "EmulatorState",
    "Fault",
    "FaultKind",
    "LoggedRequest",
    "fault_middleware",
    "is_loopback",
    "mean_seconds",
]

Duration = float | tuple[float, float]
"""Seconds: a fixed number, or ``(low, high)`` drawn uniformly from the emulator's seeded generator."""

FaultKind = Literal["status", "drop", "malformed", "fail_job", "stuck_job", "partial", "slow_job"]

HTTP_FAULT_KINDS: frozenset[str] = frozenset({"status", "drop", "malformed"})
JOB_FAULT_KINDS: frozenset[str] = frozenset({"fail_job", "stuck_job", "partial", "slow_job"})
INJECTABLE_STATUSES: frozenset[int] = frozenset({401, 402, 408, 409, 429, 500, 502, 503, 504})


def _check_kind(instance: Fault, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in HTTP_FAULT_KINDS | JOB_FAULT_KINDS:
        allowed = ", ".join(sorted(HTTP_FAULT_KINDS | JOB_FAULT_KINDS))
        raise ValueError(f"fault kind {value!r} is not one of: {allowed}")


@attrs.frozen
class Fault:
    """One fault-injection rule.

    A rule applies to the requests (HTTP faults) or jobs (job faults) it *matches*: ``route`` is a regular
    expression searched in the request path (``None`` matches every path), ``method`` an HTTP method
    (``None`` matches all). Among the matching ones it fires on the ``nth`` (1-based) only, or on a ``rate``
    fraction drawn from the seeded generator, or on every one when both are ``None``; ``times`` caps how
    often it fires in total.
    """

    kind: FaultKind = attrs.field(validator=_check_kind)
    """``status``: answer ``status`` in the provider's own error shape; ``drop``: close the connection
    without an answer; ``malformed``: answer 200 with a body that is not valid JSON; ``fail_job``: accept the
    job, then fail it once it starts; ``stuck_job``: accept the job and never finish it; ``partial``: finish
    the job with ``images`` images instead of the number asked; ``slow_job``: keep the job queued ``seconds``
    longer than its drawn queue time (a slow tail: ``Fault("slow_job", seconds=2.0, rate=0.05)``)."""
    status: int | None = None
    """The HTTP status for ``kind="status"``: one of 401, 402, 408, 409, 429, 500, 502, 503, 504."""
    retry_after: float | None = None
    """Seconds sent in a ``Retry-After`` header with the status (429 usually)."""
    route: str | None = None
    """Regular expression searched in the request path; ``None`` matches every route."""
    method: str | None = None
    """HTTP method to match (``"POST"``, ``"GET"``, ...); ``None`` matches every method."""
    body: str | None = None
    """HTTP faults only: regular expression searched in the request body (decoded as UTF-8); ``None`` matches
    every body. Runware's uploads, tasks and polls all go to ``POST /v1``: ``body='"taskType":"getResponse"'``
    aims at the polls alone."""
    nth: int | None = None
    """Fire on the Nth matching request or job only (1-based)."""
    rate: float | None = None
    """Fire on this fraction (0–1) of matching requests or jobs, drawn from the seeded generator."""
    times: int | None = None
    """Fire at most this many times; ``None`` is unlimited."""
    images: int | None = None
    """For ``partial``: how many images the job delivers (default: one fewer than asked, at least 0)."""
    message: str | None = None
    """For ``fail_job`` and ``status``: the error message the provider would send (a default otherwise)."""
    seconds: float | None = None
    """For ``slow_job``: the extra seconds the job waits in the queue (default: 10 × the queue and run time)."""

    def __attrs_post_init__(self) -> None:
        if self.kind == "status" and self.status not in INJECTABLE_STATUSES:
            allowed = ", ".join(str(code) for code in sorted(INJECTABLE_STATUSES))
            raise ValueError(f"fault status {self.status!r} is not one of: {allowed}")
        if self.nth is not None and self.nth < 1:
            raise ValueError(f"fault nth must be >= 1, got {self.nth}")
        if self.rate is not None and not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be within 0..1, got {self.rate}")

    @classmethod
    def parse(cls, text: str) -> Fault:
        """Build a rule from the CLI form ``kind[:status][,key=value...]``.

        Examples: ``status:429,retry_after=2``, ``status:503,rate=0.1``, ``drop,nth=3``,
        ``fail_job,route=/v1/prediction``, ``partial,images=1``.
        """
        head, _, rest = text.partition(",")
        kind, _, status = head.partition(":")
        values: dict[str, object] = {"kind": kind.strip()}
        if status:
            values["status"] = int(status)
        for item in filter(None, (part.strip() for part in rest.split(","))):
            key, separator, value = item.partition("=")
            if not separator:
                raise ValueError(f"fault option {item!r} is not key=value")
            key = key.strip()
            converters: dict[str, Callable[[str], object]] = {
                "status": int, "retry_after": float, "route": str, "method": str.upper, "body": str, "nth": int,
                "rate": float, "times": int, "images": int, "message": str, "seconds": float,
            }
            if key not in converters:
                raise ValueError(f"unknown fault option {key!r}; allowed: {', '.join(sorted(converters))}")
            values[key] = converters[key](value.strip())
        return cls(**values)  # type: ignore[arg-type]


def mean_seconds(duration: Duration) -> float:
    """The mean of a :data:`Duration`: the value itself, or the middle of its range."""
    return (duration[0] + duration[1]) / 2 if isinstance(duration, tuple) else float(duration)


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is this machine. The emulators
    send webhooks and uploads only to such hosts: they never leave the machine."""
    if not host:
        return False
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _new_api_key() -> str:
    return "emulator-" + secrets.token_hex(12)


@attrs.define
class EmulatorSettings:
    """How one emulator behaves. Mutable: tests may change it while the emulator runs."""

    api_key: str = attrs.field(factory=_new_api_key, repr=False)
    """The key the emulator accepts (a fresh random one by default). Never shown in a repr."""
    seed: int = 0
    """Seed of the generator behind rates, duration ranges, generated IDs' order and random image seeds."""
    latency: Duration = 0.0
    """Seconds added before every HTTP answer."""
    queue_time: Duration = 0.0
    """Seconds a job waits in the queue before it starts running."""
    run_time: Duration = 0.05
    """Seconds a job runs once started."""
    faults: list[Fault] = attrs.field(factory=list)
    """Fault rules, checked in order; the first that fires wins."""
    allow_data_uris: bool = True
    """fal only: whether ``image_archive_url`` may be a data URI (the real service reportedly refuses them,
    fal.md §3.3); set ``False`` to reproduce that."""
    max_in_flight: int = 10
    """Eachlabs only: non-terminal predictions allowed per key before a 429 (eachlabs.md §2.3)."""
    per_minute: int | None = None
    """Eachlabs only: predictions one key may create in any 60-second window before a 429 with
    ``Retry-After``. ``None`` (default): no such limit, as Eachlabs' current contract says ("There is no
    per-second request limit on predictions. A 429 means an account concurrency cap", eachlabs.md §2.3); set 60
    to reproduce the older plan table and the model's API page ("Rate limit: 60 requests/minute", §6). Creates
    and synchronous runs count, polls do not (eachlabs.md §6.4)."""
    cost_per_image: float = 0.0013
    """Runware only: the USD ``cost`` reported per image when ``includeCost`` is true (runware.md §7)."""
    cost_per_second: float = 0.00108
    """Eachlabs only: USD per second of ``predict_time`` reported as ``metrics.cost`` (eachlabs.md §5)."""
    external_urls_reachable: bool = False
    """Whether an input image URL that is not the emulator's own storage counts as downloadable. The
    emulators never touch the network, so by default such a URL fails the way an unreachable one does on the
    real service; set ``True`` to treat it as a valid face photo instead."""


@attrs.frozen
class LoggedRequest:
    """One request as the emulator received it (headers as sent, so tests can assert on auth)."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)
    received_at: float
    """``time.monotonic()`` when the request arrived."""

    def json(self) -> object:
        """The body parsed as JSON."""
        return json.loads(self.body)


ErrorResponder = Callable[[int, Fault], web.StreamResponse]
"""Builds the provider's own error answer for an injected HTTP status."""


@attrs.define
class EmulatorState:
    """The mutable heart of one emulator: settings, generator, log and counters."""

    name: str
    settings: EmulatorSettings = attrs.field(factory=EmulatorSettings)
    log: list[LoggedRequest] = attrs.field(factory=list)
    """Every request received, in order (WebSocket frames are logged with method ``"WS"``)."""
    counters: Counter[str] = attrs.field(factory=Counter)
    """Counts by event name: ``requests``, ``route:<METHOD> <path>``, ``fault:<kind>``, and whatever the
    emulator adds (``jobs_created``, ``jobs_completed``, ``uploads``, ``cancels`` ...)."""
    random: random.Random = attrs.field(init=False)
    # Keyed by (position, rule) so that replacing the fault list starts the new rules' counts afresh.
    _matches: Counter[tuple[int, Fault]] = attrs.field(init=False, factory=Counter)
    _fired: Counter[tuple[int, Fault]] = attrs.field(init=False, factory=Counter)

    def __attrs_post_init__(self) -> None:
        self.random = random.Random(self.settings.seed)

    def reset(self) -> None:
        """Forget the log, the counters and how often each fault fired; re-seed the generator."""
        self.log.clear()
        self.counters.clear()
        self._matches.clear()
        self._fired.clear()
        self.random.seed(self.settings.seed)

    def draw(self, duration: Duration) -> float:
        """A number of seconds from a fixed value or a ``(low, high)`` range."""
        if isinstance(duration, tuple):
            low, high = duration
            return self.random.uniform(low, high)
        return float(duration)

    def record(self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str],
               body: bytes) -> LoggedRequest:
        """Append a request to the log and count it."""
        entry = LoggedRequest(method, path, dict(query), dict(headers), body, time.monotonic())
        self.log.append(entry)
        self.counters["requests"] += 1
        self.counters[f"route:{method} {path}"] += 1
        return entry

    def _fires(self, index: int, fault: Fault) -> bool:
        key = (index, fault)
        self._matches[key] += 1
        if fault.times is not None and self._fired[key] >= fault.times:
            return False
        if fault.nth is not None:
            fires = self._matches[key] == fault.nth
        elif fault.rate is not None:
            fires = self.random.random() < fault.rate
        else:
            fires = True
        if fires:
            self._fired[key] += 1
            self.counters[f"fault:{fault.kind}"] += 1
        return fires

    def _first_firing(self, kinds: frozenset[str], path: str, method: str | None, body: bytes = b"") -> Fault | None:
        for index, fault in enumerate(self.settings.faults):
            if fault.kind not in kinds:
                continue
            if fault.route is not None and not re.search(fault.route, path):
                continue
            if fault.body is not None and not re.search(fault.body, body.decode("utf-8", errors="replace")):
                continue
            if method is not None and fault.method is not None and fault.method.upper() != method.upper():
                continue
            if self._fires(index, fault):
                return fault
        return None

    def http_fault(self, path: str, method: str, body: bytes = b"") -> Fault | None:
        """The HTTP fault (status, drop, malformed) that fires for this request, if any."""
        return self._first_firing(frozenset(HTTP_FAULT_KINDS), path, method, body)

    def job_fault(self, path: str = "") -> Fault | None:
        """The job fault (fail_job, stuck_job, partial, slow_job) that fires for a job accepted on ``path``."""
        return self._first_firing(frozenset(JOB_FAULT_KINDS), path, None)

    def queue_seconds(self, fault: Fault | None) -> float:
        """How long a job waits in the queue: its drawn ``queue_time``, plus a ``slow_job`` fault's extra."""
        drawn = max(0.0, self.draw(self.settings.queue_time))
        if fault is None or fault.kind != "slow_job":
            return drawn
        extra = fault.seconds
        if extra is None:
            extra = 10 * (mean_seconds(self.settings.queue_time) + mean_seconds(self.settings.run_time))
        return drawn + max(0.0, extra)

    async def delay(self) -> None:
        """Sleep for the configured latency."""
        seconds = self.draw(self.settings.latency)
        if seconds > 0:
            await asyncio.sleep(seconds)


MALFORMED_BODY = b'{"data": [{"taskType": "photoMaker", "status": "succ'
"""What a ``malformed`` fault answers: JSON cut off mid-string."""


def fault_middleware(state: EmulatorState, error_response: ErrorResponder,
                     skip: Sequence[str] = ()) -> Callable[..., Awaitable[web.StreamResponse]]:
    """An aiohttp middleware that logs each request, adds latency and applies HTTP faults.

    ``error_response(status, fault)`` builds the provider's own error answer for an injected status.
    Paths starting with a prefix in ``skip`` (for example served image files) are logged but never faulted.
    """

    @web.middleware
    async def middleware(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        body = await request.read() if request.can_read_body else b""
        state.record(request.method, request.path, request.query, request.headers, body)
        await state.delay()
        if any(request.path.startswith(prefix) for prefix in skip):
            return await handler(request)
        fault = state.http_fault(request.path, request.method, body)
        if fault is None:
            return await handler(request)
        if fault.kind == "status":
            assert fault.status is not None
            response = error_response(fault.status, fault)
            if fault.retry_after is not None:
                response.headers["Retry-After"] = f"{fault.retry_after:g}"
            return response
        if fault.kind == "malformed":
            return web.Response(status=200, body=MALFORMED_BODY, content_type="application/json")
        # drop: abort the TCP connection so the client sees a reset, not an HTTP answer.
        transport = request.transport
        if transport is not None:
            transport.abort()
        raise ConnectionResetError("emulator dropped the connection (fault injection)")

    return middleware
