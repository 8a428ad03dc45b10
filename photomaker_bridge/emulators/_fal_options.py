"""Knobs of the fal emulator for behaviour the reference marks [UNVERIFIED] (fal.md), one place for all."""

from __future__ import annotations

import attrs

from ._fal_patch import RUN_PREFIX

__all__ = ["FalOptions"]


@attrs.define
class FalOptions:
    """How the fal emulator settles questions the public material leaves open.

    Mutable, like :class:`~photomaker_bridge.emulators._common.EmulatorSettings`: a test may change an
    option while the emulator runs. Every default is the most likely behaviour of the real service.
    """

    app_id: str = "fal-ai/photomaker"
    """The one application hosted; submits to any other ``owner/alias`` answer 404."""
    app_subpaths: frozenset[str] = frozenset({""})
    """Sub-paths the app serves. The queue accepts any sub-path at submit (fal.md §1.3) and the app answers
    404 ``{"detail": "Not Found"}`` at result time for one it does not have (FastAPI routing) [UNVERIFIED]."""
    strict_types: bool = True
    """Refuse what a correct client never sends (booleans or strings for numbers, fractional integers)
    instead of applying pydantic's coercions, which the real service most likely applies [UNVERIFIED]. Strict
    is the default because the emulator exists to catch translation mistakes."""
    forbid_extra_fields: bool = False
    """Refuse unknown input fields (``value_error.extra``). pydantic ignores them by default, and so does fal
    as far as is known, so a misspelt field is silently dropped by the real service."""
    trigger_rule: bool = True
    """Enforce "exactly one whole-word ``img`` in the prompt" (fal.md §4.2, TencentARC pipeline)."""
    trigger_status: int = 422
    """The status a trigger-word violation answers: 422 with a ``detail`` list entry on ``prompt``, or e.g.
    500 with ``{"detail": "<message>"}``; how fal maps the pipeline's ``ValueError`` is [UNVERIFIED] (§4.2)."""
    honour_cancel_in_progress: bool = True
    """A cancel on a running request "sends a cancellation signal to the runner" (fal.md §1.7); whether the
    PhotoMaker app stops is [UNVERIFIED]. True: it completes at once with ``client_cancelled``; False: the
    cancel is acknowledged (202) and the request runs to its normal end."""
    result_pending_status: int = 400
    """Status of a result fetched before completion; body ``{"detail": "Request is still in progress"}``
    (fal.md §1.6, §7.3) [UNVERIFIED]."""
    ingress_gateway_errors: bool = False
    """Injected 502/503/504 faults come from fal's own servers by default: JSON with ``error_type`` and an
    ``x-fal-request-id`` header, which fal_client does not retry (fal.md §1.9). True answers like the ingress
    nginx instead (HTML body mentioning nginx, no request id), which fal_client retries up to 10 times."""
    token_lifetime_seconds: float = 3600.0
    """How long a CDN upload token from ``/storage/auth/token`` stays valid [UNVERIFIED]."""
    rejection_seconds: float = 0.05
    """How long the runner works on a request it rejects (bad input, bad archive): invalid requests go
    IN_PROGRESS then COMPLETED like any other (fal.md §1.4, TanStack/ai #396). Capped by the run time."""
    run_prefix: str = RUN_PREFIX
    """Path prefix under which the emulator plays fal's synchronous host ``fal.run``: ``POST
    /run/fal-ai/photomaker`` answers the app's output directly (fal.md SEED3's cURL example), where ``POST
    /fal-ai/photomaker`` is a queue submit (``queue.fal.run``). fal tells them apart by host; one emulator port
    needs a path. ``point_fal_client_at`` sets fal_client's ``RUN_URL_FORMAT`` to ``<base>/run/``."""
    stream_keepalive_seconds: float = 15.0
    """A ``status/stream`` sends an SSE comment line this often while nothing changes ("The server sends a comment
    line every 15 seconds", fal.md §1.5)."""
    status_stream_accepts_post: bool = True
    """Also answer ``POST .../status/stream``: the documented method is GET (fal.md §1.5), but
    ``fal_client.stream`` opens its SSE connections with POST; whether fal's queue accepts that is
    [UNVERIFIED]."""
    webhook_retry_delays: tuple[float, ...] = tuple(7.0 * 2**attempt for attempt in range(10))
    """Seconds before each retry of a failed webhook delivery. fal retries "10 times in the span of 2 hours"
    (fal.md §1.12) without saying when; the default doubles from 7 s, ten retries over 7161 s (just under 2 h).
    Tests set short delays."""
    webhook_timeout_seconds: float = 15.0
    """How long one webhook delivery waits for the receiver's answer [UNVERIFIED: not in fal's docs]."""
    webhook_user_id: str = "emulator-user"
    """``X-Fal-Webhook-User-Id`` of signed webhooks (the account's user id on fal)."""
