"""The fal adapter: ``fal-ai/photomaker`` through fal's queue, spoken by the official ``fal_client``.

Reference: ``docs/protocols/fal.md`` (sections cited as §n). :class:`FalProvider` holds the settings and
hands translation to ``_fal_plan`` (pure: into a :class:`~photomaker_bridge.Plan`). The flows live in
``_fal_flow`` (and the ``_fal_*`` steps it drives), the performers that run their operations in
``_fal_sync_performer`` and ``_fal_async_performer``, and the seam with ``fal_client`` (its clients as the
bridge configures them, its errors mapped to the bridge's) in ``_fal_client`` — the only module that knows
``fal_client``'s internals. The translation tables and the
decisions the reference leaves open are in ``_fal_plan``.
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

import attrs

from .._connections import ConnectionLimits
from .._coordination import Limits
from .._http import Flow
from ..errors import ConfigurationError
from ..jobs import CancelOutcome, JobHandle
from ..plan import FieldMapping, Plan
from ..request import PhotoMakerRequest
from ..result import PhotoMakerResult
from ..styles import Style
from ._durations import DurationCacheSetting, starting_estimate
from ._fal_flow import FalFlows
from ._fal_operations import StreamSlots
from ._fal_parse import PROVIDER
from ._fal_plan import CAPABILITIES, STYLE_TO_FAL, Pipeline, build_plan
from ._polling import DurationEstimate, PollPolicy
from ._steps import account_of
from .base import Capability, FlowContext, IdFactory, Provider, check_duration_cache, check_limit, new_uuid

if TYPE_CHECKING:
    from ._fal_async_performer import FalAsyncPerformer
    from ._fal_sync_performer import FalSyncPerformer

__all__ = ["FalProvider", "Priority"]

Priority = Literal["normal", "low"]
"""fal's queue priorities (fal.md §1.2)."""

TYPICAL_SECONDS: Final = 15.0
"""What a fal PhotoMaker request is expected to take before any has completed: SDXL at 1024², 50 steps on
an A6000 runs ~10–30 s (fal.md §4.3, [UNVERIFIED]: fal publishes no latency); learned from completed ones."""


@attrs.define
class FalProvider(Provider):
    """The fal adapter. ``FalProvider()`` reads ``FAL_KEY`` (or ``FAL_KEY_ID`` + ``FAL_KEY_SECRET``) when
    first used; ``FalProvider(key="id:secret")`` sets it explicitly.

    ``base_url`` points this adapter's ``fal_client`` clients at another server (the fal emulator:
    ``FalProvider(key=emulators.fal.api_key, base_url=emulators.fal.url)``): their requests for fal's hosts go
    there instead. Only these clients are pointed there — nothing process-wide changes — so clients for fal
    itself and for an emulator can be open side by side (``providers/_fal_client``).
    """

    name: ClassVar[str] = PROVIDER
    style_table: ClassVar[Mapping[Style, str]] = STYLE_TO_FAL
    capabilities: ClassVar[tuple[Capability, ...]] = CAPABILITIES

    key: str | None = attrs.field(default=None, repr=False)
    """The fal API key (``"key_id:key_secret"``); ``None`` reads ``FAL_KEY`` or ``FAL_KEY_ID``+``FAL_KEY_SECRET``."""
    pipeline: Pipeline = "photomaker"
    """``base_pipeline``: ``photomaker`` (identity fidelity) or ``photomaker-style`` (stylised)."""
    application: str = "fal-ai/photomaker"
    """The fal application the payloads are submitted to."""
    base_url: str | None = None
    """Another server for fal_client (an emulator), e.g. ``http://127.0.0.1:8765``; ``None``: fal itself."""
    polling: PollPolicy = attrs.field(factory=lambda: PollPolicy(first_check=1.0, min_interval=0.25,
                                                                  max_interval=5.0))
    """The shape of the polling schedule (``_polling``): an early check, then tightening around the expected
    end. fal_client's own loop polls ten times a second (fal.md §1.8), too eager for the real service
    (fal.md §6, ISS fal-ai/fal #573); this one polls a handful of times per request."""
    expected_seconds: float | None = None
    """Submit-to-completion seconds to expect before any request has completed (default
    ``TYPICAL_SECONDS``); afterwards the schedule learns from completed requests."""
    poll_interval: float | None = None
    """A fixed number of seconds between status calls instead of the adaptive schedule (tests use a few
    hundredths against the emulator)."""
    with_logs: bool = True
    """Ask for the request's logs at every status call and turn new lines into ``log`` events."""
    concurrency: int | None = attrs.field(default=None, validator=check_limit)
    """Requests in flight at once through one client; ``None`` (default): no limit (fal documents none for
    queue requests)."""
    per_minute: int | None = attrs.field(default=None, validator=check_limit)
    """Submissions a minute through one client; ``None`` (default): no limit."""
    priority: Priority | None = None
    """Queue priority of every submission (fal.md §1.2 ``X-Fal-Queue-Priority``): ``"normal"`` or ``"low"``;
    ``None``: fal's default (normal)."""
    hint: str | None = None
    """A runner hint for every submission (fal.md §1.2 ``X-Fal-Runner-Hint``): fal routes requests with the same
    hint to the same runner when it can; ``None``: none."""
    start_timeout: float | None = None
    """Seconds fal may keep a submission waiting for a runner before giving up on it, above 1 (fal.md §1.2
    ``X-Fal-Request-Timeout``; expired: a 504 error); ``None``: fal's default."""
    duration_cache: DurationCacheSetting = attrs.field(default=None, validator=check_duration_cache)
    """Keep learned request lengths between runs (``_durations``): ``True`` in the user's cache directory, or a
    path; ``None`` (default): learn per adapter only. The CLI turns it on (docs/architecture.md, "Polling")."""
    status_stream: bool = True
    """While this adapter knows no request length (a new client, before its first request completes), follow each
    request on fal's status stream (fal.md §1.5: one request per job, the completion seen as fal sends it) instead
    of polling on the cold schedule; at most 8 requests at once, the others poll. ``False``: always poll. Not
    with ``poll_interval`` (a fixed cadence asked for) or ``expected_seconds`` (a length already known)."""
    _estimate: DurationEstimate = attrs.field(init=False, repr=False, eq=False)
    """Learned submit-to-completion time, shared by every call made with this adapter."""
    _streams: StreamSlots = attrs.field(init=False, repr=False, eq=False, factory=StreamSlots)
    """The status-stream slots of this adapter's calls."""

    def __attrs_post_init__(self) -> None:
        if self.pipeline not in ("photomaker", "photomaker-style"):
            raise ConfigurationError(f"pipeline must be 'photomaker' or 'photomaker-style', got {self.pipeline!r}")
        if self.poll_interval is not None and not self.poll_interval > 0:
            raise ConfigurationError(f"poll_interval must be a positive number of seconds, got {self.poll_interval!r}")
        if self.priority not in (None, "normal", "low"):
            raise ConfigurationError(f"priority must be 'normal', 'low' or None, got {self.priority!r}")
        if self.hint is not None and (not isinstance(self.hint, str) or not self.hint.strip()):
            raise ConfigurationError(f"hint must be a non-empty string or None, got {self.hint!r}")
        if self.start_timeout is not None and (isinstance(self.start_timeout, bool)
                                               or not isinstance(self.start_timeout, int | float)
                                               or not math.isfinite(self.start_timeout) or self.start_timeout <= 1):
            # fal_client refuses 1 s or less (fal.md §1.2, fal_client _headers.MIN_REQUEST_TIMEOUT_SECONDS).
            raise ConfigurationError(f"start_timeout must be a number of seconds above 1, or None, "
                                     f"got {self.start_timeout!r}")
        if self.expected_seconds is not None and not self.expected_seconds > 0:
            raise ConfigurationError(f"expected_seconds must be positive, got {self.expected_seconds!r}")
        key = f"{PROVIDER}|{self.application}|{self.pipeline}|{self.base_url or 'fal'}"
        self._estimate = starting_estimate(self.duration_cache, PROVIDER, key, self.expected_seconds, TYPICAL_SECONDS)

    # -- credentials ----------------------------------------------------------------------------------------

    def resolved_key(self) -> str:
        """The key to use: ``key``, else ``FAL_KEY``, else ``FAL_KEY_ID:FAL_KEY_SECRET`` (fal.md §5)."""
        if self.key:
            return self.key
        if os.environ.get("FAL_KEY"):
            return os.environ["FAL_KEY"]
        key_id, secret = os.environ.get("FAL_KEY_ID"), os.environ.get("FAL_KEY_SECRET")
        if key_id and secret:
            return f"{key_id}:{secret}"
        raise ConfigurationError("fal needs an API key: set FAL_KEY (or FAL_KEY_ID and FAL_KEY_SECRET), "
                                 "or pass FalProvider(key=...)")

    def require_key(self) -> None:
        """Raise :class:`ConfigurationError` naming ``FAL_KEY``, ``FAL_KEY_ID``/``FAL_KEY_SECRET`` and
        ``key=`` when no key is configured."""
        self.resolved_key()

    # -- translation ----------------------------------------------------------------------------------------

    def plan(self, request: PhotoMakerRequest, *, strict: bool = False, new_id: IdFactory = new_uuid) -> Plan:
        """The ``fal-ai/photomaker`` arguments for ``request`` (one per submission), the files to upload first,
        and every adjustment (``_fal_plan``). Pure: no network, no key. ``new_id`` is unused: fal assigns the
        request ids."""
        target = f"fal queue: {self.application}" + (f" (at {self.base_url})" if self.base_url else "")
        return build_plan(request, pipeline=self.pipeline, target=target, submit_options=self._submit_options(),
                          strict=strict)

    def with_webhook(self, plan: Plan, url: str) -> Plan:
        """``plan`` submitted with ``?fal_webhook=url``: fal POSTs the outcome there when the request is done
        (fal.md §1.12; parse it with :mod:`photomaker_bridge.webhooks`)."""
        return attrs.evolve(plan, submit_options={**plan.submit_options, "webhook_url": url},
                            mapping=(*plan.mapping, FieldMapping("webhook_url", "fal_webhook", url,
                                                                 "query parameter of every submission")))

    def _submit_options(self) -> dict[str, Any]:
        settings = {"priority": self.priority, "hint": self.hint, "start_timeout": self.start_timeout}
        return {name: value for name, value in settings.items() if value is not None}

    # -- flows ----------------------------------------------------------------------------------------------

    def _flows(self) -> FalFlows:
        if self.poll_interval is not None:
            fixed = self.poll_interval
            policy = PollPolicy(first_check=fixed, approach=1.0, min_interval=fixed, max_interval=fixed,
                                cold_min_interval=fixed, cold_max_interval=fixed)
        else:
            policy = self.polling
        streams = self._streams if self.status_stream and self.poll_interval is None else None
        return FalFlows(self.application, policy, self._estimate, self.with_logs, self.account(), self.limits(),
                        streams)

    def limits(self) -> Limits:
        """The client-side limits set on this adapter (none by default)."""
        return Limits(concurrency=self.concurrency, per_minute=self.per_minute)

    def account(self) -> str:
        """The provider and a hash of the key: how shared state names this account (never the key)."""
        return account_of(self.name, self.resolved_key())

    def cancel_flow(self, handle: JobHandle, context: FlowContext) -> Flow[tuple[CancelOutcome, ...]]:
        """Cancel every request of ``handle`` (fal.md §1.7)."""
        return self._flows().cancel(handle, context)

    def submit_flow(self, plan: Plan, context: FlowContext) -> Flow[JobHandle]:
        """Upload the zip (once per distinct content per client), submit every payload, return the handle."""
        return self._flows().submit(plan, context, None)

    def result_flow(self, handle: JobHandle, context: FlowContext) -> Flow[PhotoMakerResult]:
        """Poll each request of ``handle``, fetch the results, and assemble one result."""
        return self._flows().result(handle, context, None)

    def generate_flow(self, plan: Plan, context: FlowContext) -> Flow[PhotoMakerResult]:
        """Submit, then collect; a call abandoned midway cancels its requests."""
        return self._flows().generate(plan, context)

    def handle_for(self, request_id: str) -> JobHandle:
        """A handle for a request submitted earlier (by any process) to this adapter's application."""
        return JobHandle(provider=self.name, request_ids=(request_id,),
                         submitted_at=datetime.datetime.now(datetime.UTC),
                         details={"application": self.application, "submitted_at_known": False})

    def sync_performer(self, connections: ConnectionLimits | None = None) -> FalSyncPerformer:
        """Runs the flows' fal operations with one ``fal_client.SyncClient`` (created on first use), its httpx
        pool set to ``connections``."""
        from ._fal_sync_performer import FalSyncPerformer  # imports fal_client and httpx: only once a client needs them

        self._streams.fit(None if connections is None else connections.max_connections)
        return FalSyncPerformer(self, connections)

    def async_performer(self, connections: ConnectionLimits | None = None) -> FalAsyncPerformer:
        """Runs the flows' fal operations with one ``fal_client.AsyncClient`` (created on first use), its httpx
        pool set to ``connections``."""
        from ._fal_async_performer import FalAsyncPerformer

        self._streams.fit(None if connections is None else connections.max_connections)
        return FalAsyncPerformer(self, connections)

