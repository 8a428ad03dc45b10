"""Eachlabs' HTTP error bodies, with the exact texts of the protocol reference (§2.3, §2.7, §2.11).

Every Eachlabs error is JSON with a required ``error`` string; some shared paths add an integer ``status``
and a ``details`` text (MD-OAS ``components.schemas.Error``, eachlabs.md §2.3). Key order follows the
documented examples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from aiohttp import web

from ._common import Fault

__all__ = [
    "CANNOT_CANCEL",
    "CONTENT_TYPE_REQUIRED",
    "CREATE_FAILED",
    "INTERNAL_ERROR",
    "INVALID_API_KEY",
    "INVALID_INPUT",
    "INVALID_REQUEST_BODY",
    "MODEL_NOT_FOUND",
    "MODEL_REQUIRED",
    "PAYMENT_REQUIRED_DETAILS",
    "PREDICTION_NOT_FOUND",
    "PRESIGN_FAILED",
    "SYNC_NOT_SUPPORTED",
    "error_response",
    "injected_error",
    "rate_limit_exceeded",
    "too_many_requests",
]

INVALID_API_KEY = "Invalid or missing API key"
"""401 on every authenticated route (MD ``authentication.mdx``, ``errors.mdx``; eachlabs.md §2.3)."""
INVALID_REQUEST_BODY = "invalid request body"
"""A body that is not a JSON object (MD-OAS ``UnprocessableEntity``; eachlabs.md §6.3)."""
MODEL_REQUIRED = "model field is required"
"""400 when ``model`` is missing (eachlabs.md §2.3)."""
MODEL_NOT_FOUND = "Model not found"
"""Unknown model slug (MD ``errors.mdx``; the 404 status is [UNVERIFIED], eachlabs.md §2.3)."""
INVALID_INPUT = "Invalid input for model"
"""400 when ``input`` does not match the model schema (eachlabs.md §2.3, §6.3)."""
CREATE_FAILED = "Failed to create prediction"
"""500 on create (eachlabs.md §2.3)."""
PREDICTION_NOT_FOUND = "Prediction not found"
"""404 on get and cancel (eachlabs.md §2.7, §2.8)."""
INTERNAL_ERROR = "Internal server error"
"""500 on get (eachlabs.md §2.7)."""
CONTENT_TYPE_REQUIRED = "content_type is required"
"""400 on presign (eachlabs.md §2.11)."""
PRESIGN_FAILED = "Failed to generate presigned URL"
"""500 on presign (eachlabs.md §2.11)."""
CANNOT_CANCEL = "Prediction cannot be cancelled because it has already finished"
"""Cancel of a finished prediction. [UNVERIFIED] Eachlabs documents only that cancel is "accepted only while
non-terminal" (eachlabs.md §2.8), not the answer; this text and the status (an emulator option) are guesses."""

SYNC_NOT_SUPPORTED = "synchronous execution is not enabled for this model; create a prediction and poll it"
"""400 of ``/v1/prediction/run`` for a model without synchronous execution. [UNVERIFIED] text: the spec says only
that "unsupported models return a bad request error" (eachlabs.md §2.9)."""

PAYMENT_REQUIRED_DETAILS = (
    "the estimated cost of your in-flight executions exceeds your current balance ($1.00). please wait for "
    "an active execution to finish or top up your balance"
)
"""``details`` of the 402 body (MD ``errors.mdx`` commit 5fe6322; eachlabs.md §2.3)."""

_TOO_MANY_REQUESTS_DETAILS = (
    "Account rate limited: accounts with a balance of $10.00 or less are limited to {limit} concurrent "
    "executions. Keep your balance above $10.00 for higher concurrency, or wait for an active execution to "
    "finish."
)

# [UNVERIFIED] Eachlabs documents no bodies for these statuses (eachlabs.md §2.3 lists 400/401/402/404/429/500
# only). They would come from its gateway; lower-case status texts match the style of its 402/429 bodies.
_GATEWAY_ERRORS: dict[int, str] = {
    408: "request timeout",
    409: "conflict",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
}


def error_response(status: int, error: str, *, details: str | None = None, with_status: bool = False,
                   headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON error answer ``{"status"?, "error", "details"?}`` with the given HTTP status and headers."""
    body: dict[str, object] = {}
    if with_status:
        body["status"] = status
    body["error"] = error
    if details is not None:
        body["details"] = details
    return web.json_response(body, status=status, headers=dict(headers or {}))


def too_many_requests(limit: int, details: str | None = None,
                      headers: Mapping[str, str] | None = None) -> web.Response:
    """The 429 of the account concurrency cap (MD ``errors.mdx``; eachlabs.md §2.3, §6.4).

    With the default cap of 10 the text is the documented one word for word; another cap changes only the
    number in it.
    """
    text = details if details is not None else _TOO_MANY_REQUESTS_DETAILS.format(limit=limit)
    return error_response(429, "too many requests", details=text, with_status=True, headers=headers)


def rate_limit_exceeded(seconds: float, headers: Mapping[str, str] | None = None) -> web.Response:
    """The 429 of the per-minute limit: the body the plan-table docs gave it, "Rate limit exceeded. Please retry
    after 60 seconds." (MD ``errors.mdx`` before commit 5fe6322, eachlabs.md §2.3), with the actual wait."""
    wait = max(1, math.ceil(seconds))
    return error_response(429, f"Rate limit exceeded. Please retry after {wait} seconds.", headers=headers)


def _server_error_text(path: str) -> str:
    # Each route documents its own 500 text (eachlabs.md §2.3, §2.7, §2.11).
    stripped = path.rstrip("/")
    if stripped == "/v1/prediction":
        return CREATE_FAILED
    if stripped == "/v1/upload/presign":
        return PRESIGN_FAILED
    return INTERNAL_ERROR


def injected_error(status: int, fault: Fault, path: str, max_in_flight: int) -> web.Response:
    """Eachlabs' own answer for an injected HTTP status on ``path``.

    ``fault.message``, when set, replaces the ``details`` text of the bodies that carry one (402, 429) and
    the ``error`` text of the others.
    """
    message = fault.message
    if status == 402:
        return error_response(402, "payment required", details=message or PAYMENT_REQUIRED_DETAILS,
                              with_status=True)
    if status == 429:
        return too_many_requests(max_in_flight, message)
    if status == 401:
        return error_response(401, message or INVALID_API_KEY)
    if status == 500:
        return error_response(500, message or _server_error_text(path))
    return error_response(status, message or _GATEWAY_ERRORS.get(status, "error"))
