"""The Eachlabs adapter: PhotoMaker as an Eachlabs prediction, created, then polled until it finishes.

Section numbers (§) refer to ``docs/protocols/eachlabs.md``; "seed page" to Eachlabs' own API page for
``photomaker-style`` (docs/protocols/eachlabs.md SEED). The protocol (§1–§2)::

    POST /v1/upload/presign        once per distinct local reference image, then PUT the bytes (§2.11)
    POST /v1/prediction/           {"model", "version": "0.0.1", "input": {...}} -> predictionID (§2.1–2.3)
    GET  /v1/prediction/{id}       until success | error | cancelled (§2.4–2.7)
    POST /v1/prediction/{id}/cancel      when nobody will collect it: deadline of generate, failure, abandon (§2.8)

The provider holds the settings and hands translation to ``_eachlabs_plan`` (its translation tables first,
pure: into a :class:`~photomaker_bridge.Plan`). The flows live in ``_eachlabs_flows`` (upload and create in
``_eachlabs_submit``, polling in ``_eachlabs_polling``, cancelling in ``_eachlabs_cancel``), reading the answers
in ``_eachlabs_parsing``, ``_eachlabs_errors`` and ``_eachlabs_result``, the polling schedule in ``_polling``.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from typing import ClassVar, Final, Literal

import attrs

from .._coordination import Limits
from .._http import Flow
from ..errors import ConfigurationError, InvalidRequestError
from ..jobs import CancelOutcome, JobHandle
from ..plan import Plan
from ..request import PhotoMakerRequest
from ..result import PhotoMakerResult
from ..styles import Style
from . import _eachlabs_flows
from ._durations import DurationCache, DurationCacheSetting
from ._eachlabs_plan import CAPABILITIES, STYLE_TO_EACHLABS, build_plan
from ._polling import DurationEstimate, PollPolicy
from ._steps import account_of
from .base import (
    Capability,
    FlowContext,
    IdFactory,
    Provider,
    check_duration_cache,
    check_limit,
    new_uuid,
)

__all__ = ["EachlabsModel", "EachlabsProvider"]

EachlabsModel = Literal["photomaker-style", "photomaker"]
"""The two Eachlabs slugs running TencentARC PhotoMaker (§3); they differ only in the default style."""

_MODEL_TO_TYPICAL_SECONDS: Final[Mapping[str, float]] = {
    "photomaker-style": 21.0,  # seed page: "Response time: ~21 seconds"
    "photomaker": 73.0,  # §5: "Estimated Processing Time: 73 seconds"
}
"""The first expected duration of a prediction, before any completed one has been learned from."""


# --------------------------------------------------------------------------------------------- provider

EACHLABS_POLLING: Final = PollPolicy(cold_min_interval=1.05, cold_max_interval=1.4)
"""Eachlabs' schedule. Cold (a new client, no length known yet): no more status calls than the seed page's own
loop polling every second (docs/protocols/eachlabs.md, SEED) — gaps of a tenth of the time elapsed, at least
1.05 s (a loop's second drifts by each answer's latency) and at most 1.4 s, so a prediction is noticed within
1.05 s for its first 10 s and within 1.4 s after (plus the typical time's own grid, docs/architecture.md
"Polling"). Warm: the defaults around the learned length."""


def _strip_slash(url: str) -> str:
    return str(url).rstrip("/")


def _check_model(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in _MODEL_TO_TYPICAL_SECONDS:
        raise ConfigurationError(f"unknown Eachlabs model {value!r}; use 'photomaker-style' or 'photomaker'")


@attrs.define(kw_only=True)
class EachlabsProvider(Provider):
    """Eachlabs' PhotoMaker models (``photomaker-style`` or ``photomaker``) over its prediction API.

    Every setting has a default; only the key is needed to send anything (``plan`` needs none)::

        provider = EachlabsProvider(api_key="...", model="photomaker")
        plan = provider.plan(PhotoMakerRequest(prompt="a woman img", images=["face.jpg"]))

    Polling is adaptive (see ``_polling``): it checks early, then tightens around the expected
    duration, which the instance learns from the predictions it completes (per model).
    """

    name: ClassVar[str] = "eachlabs"
    style_table: ClassVar[Mapping[Style, str]] = STYLE_TO_EACHLABS
    capabilities: ClassVar[tuple[Capability, ...]] = CAPABILITIES

    api_key: str | None = attrs.field(default=None, repr=False)
    """The Eachlabs API key; ``None`` reads ``EACHLABS_API_KEY`` when a request is sent."""
    base_url: str = attrs.field(default="https://api.eachlabs.ai", converter=_strip_slash)
    """Where the API lives (§1); point it at an emulator to test offline."""
    model: EachlabsModel = attrs.field(default="photomaker-style", validator=_check_model)
    """The model slug: ``photomaker-style`` (default style ``(No style)``, ~21 s) or ``photomaker``
    (default ``Photographic (Default)``, ~73 s). The bridge always sends the style, so only speed differs."""
    polling: PollPolicy = EACHLABS_POLLING
    """The shape of the polling schedule and the per-request timeout."""
    expected_seconds: float | None = None
    """The first expected duration of a prediction; ``None``: the model's published typical time."""
    concurrency: int | None = attrs.field(default=10, validator=check_limit)
    """Predictions in flight at once through one client; more wait for a slot. Eachlabs caps accounts with a
    balance of $10 or less at 10 (§2.3, a 429 past it); raise it for a larger balance, ``None`` for no cap."""
    per_minute: int | None = attrs.field(default=None, validator=check_limit)
    """Creates a minute through one client; ``None`` (default): no limit. Eachlabs' current contract has none
    (§2.3); its older plan table and the seed page say 60 a minute on the Pro plan."""
    lease_seconds: float | None = None
    """How long a created prediction keeps its slot when nobody polls it (a handle not collected yet): by then
    Eachlabs has finished it. ``None``: four times the expected duration, at least two minutes."""
    duration_cache: DurationCacheSetting = attrs.field(default=None, validator=check_duration_cache)
    """Keep learned prediction lengths between runs (``_durations``): ``True`` in the user's cache directory, or
    a path; ``None`` (default): learn per adapter only. The CLI turns it on (docs/architecture.md, "Polling")."""
    _estimates: dict[str, DurationEstimate] = attrs.field(init=False, factory=dict, repr=False, eq=False)

    # ------------------------------------------------------------------------------------------ settings

    def require_key(self) -> None:
        """Raise :class:`ConfigurationError` when neither ``api_key=`` nor ``EACHLABS_API_KEY`` is set."""
        self._key()

    def _key(self) -> str:
        key = self.api_key or os.environ.get("EACHLABS_API_KEY")
        if not key:
            raise ConfigurationError("Eachlabs needs an API key: set EACHLABS_API_KEY or pass api_key= "
                                     "(EachlabsProvider(api_key=...) or the client's provider settings)")
        return key

    def _url(self, path: str) -> str:
        return self.base_url + path

    def estimate(self) -> DurationEstimate:
        """The learned expected duration of this provider's model (seeded from its typical time)."""
        if self.model not in self._estimates:
            guess = self.expected_seconds or _MODEL_TO_TYPICAL_SECONDS[self.model]
            known = self.expected_seconds is not None
            cache = DurationCache.from_setting(self.duration_cache, self.name)
            self._estimates[self.model] = (
                cache.estimate(f"{self.name}|{self.model}|{self.base_url}", guess, known=known) if cache is not None
                else DurationEstimate(guess, known=known))
        return self._estimates[self.model]

    # ------------------------------------------------------------------------------------------- plan

    def plan(self, request: PhotoMakerRequest, *, strict: bool = False, new_id: IdFactory = new_uuid) -> Plan:
        """One create body per prediction (at most 4 images each), the uploads they need, and every adjustment
        (``_eachlabs_plan.build_plan``).

        ``provider_options["eachlabs"]`` is merged verbatim into every body after translation: the keys
        ``model``, ``version``, ``webhook_url``, ``webhook_secret`` and ``input`` (a mapping, merged into
        ``input``) go at the top level, where Eachlabs reads them (§2.1); every other key is a model input and
        goes in ``input``. Raises :class:`InvalidRequestError` for a Runware image UUID (only Runware can
        read it) and, when ``strict``, for any adjustment.
        """
        return build_plan(request, model=self.model, target=f"POST {self._url('/v1/prediction/')}", strict=strict)

    # ------------------------------------------------------------------------------------------- flows

    def headers(self) -> dict[str, str]:
        """The headers of an API request. The key goes as ``Authorization: Bearer``, the documented form (§1;
        the seed page's ``X-API-Key`` still works but is no longer documented), and only to the API: never to
        the presigned storage URL."""
        return {"Authorization": f"Bearer {self._key()}", "Content-Type": "application/json"}

    def with_webhook(self, plan: Plan, url: str) -> Plan:
        """Refused with :class:`ConfigurationError`: Eachlabs' create body takes a ``webhook_url``, but its
        documentation says "Currently, webhooks are only supported for Workflows V2" — not predictions (§2.10)."""
        raise ConfigurationError("Eachlabs documents webhooks for Workflows V2 only, not for predictions "
                                 "(docs/protocols/eachlabs.md §2.10): leave webhook_url out and collect the result "
                                 "with result() or generate()")

    def limits(self) -> Limits:
        """At most ``concurrency`` predictions in flight and ``per_minute`` creates a minute, per client."""
        lease = self.lease_seconds or max(120.0, 4 * self.estimate().seconds)
        return Limits(concurrency=self.concurrency, per_minute=self.per_minute, lease_seconds=lease)

    def account(self) -> str:
        """The provider and a hash of the key: how shared state names this account (never the key)."""
        return account_of(self.name, self._key())

    def submit_flow(self, plan: Plan, context: FlowContext) -> Flow[JobHandle]:
        """Upload, create the plan's predictions, return their handle (``_eachlabs_submit.submit``)."""
        return _eachlabs_flows.submit(self, plan, context)

    def result_flow(self, handle: JobHandle, context: FlowContext) -> Flow[PhotoMakerResult]:
        """Poll the handle's predictions and assemble one result (``_eachlabs_polling.result``)."""
        return _eachlabs_flows.result(self, handle, context)

    def generate_flow(self, plan: Plan, context: FlowContext) -> Flow[PhotoMakerResult]:
        """Submit, then collect (``_eachlabs_flows.generate``)."""
        return _eachlabs_flows.generate(self, plan, context)

    def cancel_flow(self, handle: JobHandle, context: FlowContext) -> Flow[tuple[CancelOutcome, ...]]:
        """Cancel the handle's predictions (``_eachlabs_cancel.cancel``)."""
        return _eachlabs_flows.cancel(self, handle, context)

    def handle_for(self, request_id: str) -> JobHandle:
        """A handle for predictions created earlier, from their ids (several separated by commas).

        Its submission time is unknown, so the first poll of each prediction happens at once and the
        duration it took is not learned from.
        """
        ids = tuple(part.strip() for part in request_id.split(",") if part.strip())
        if not ids:
            raise InvalidRequestError("request_id", request_id, "an Eachlabs predictionID (or several, "
                                      "separated by commas)")
        return JobHandle(provider=self.name, request_ids=ids, submitted_at=datetime.datetime.now(datetime.UTC),
                         details={"model": self.model, "resumed": True})
