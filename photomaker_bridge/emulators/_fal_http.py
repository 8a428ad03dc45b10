"""fal's own answers on the wire: JSON error bodies, their headers, and the API-key check."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Mapping

from aiohttp import web

from ._common import Fault
from ._fal_options import FalOptions

__all__ = [
    "ERROR_TYPE_HEADER",
    "REQUEST_ID_HEADER",
    "UNAUTHORIZED_DETAIL",
    "check_api_key",
    "fault_answer",
    "json_answer",
    "origin_of",
    "request_error",
]

REQUEST_ID_HEADER = "x-fal-request-id"
"""Set on answers from fal's own servers; fal_client's ingress heuristic never retries those (fal.md §1.9)."""
ERROR_TYPE_HEADER = "X-Fal-Error-Type"
"""Carries the same value as a request error's ``error_type`` (fal.md §1.4, §1.6)."""
UNAUTHORIZED_DETAIL = "Unauthorized"
"""``detail`` of a 401; the exact real text is [UNVERIFIED] (fal.md §5)."""

# What fal's servers answer for each injectable status: (detail, error_type). error_type values and their
# statuses come from fal's request-error table (fal.md §1.4); the 4xx texts are [UNVERIFIED].
_FAULT_ANSWERS: dict[int, tuple[str, str | None]] = {
    401: (UNAUTHORIZED_DETAIL, None),
    402: ("User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing.", None),
    408: ("Request timed out", "request_timeout"),
    409: ("Conflict", None),
    429: ("Too many requests: concurrent request limit reached", None),
    500: ("Internal server error", "internal_error"),
    502: ("The runner sent an incomplete response", "runner_incomplete_response"),
    503: ("No runner could be allocated to handle the request", "runner_scheduling_failure"),
    504: ("Request timed out", "request_timeout"),
}

_NGINX_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1>"
    "</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
_REASONS = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}


def json_answer(status: int, body: object, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON response (``application/json``) with optional extra headers."""
    return web.Response(status=status, text=json.dumps(body), content_type="application/json",
                        headers=dict(headers or {}))


def request_error(status: int, detail: str, error_type: str, request_id: str | None = None) -> web.Response:
    """fal's flat request error: ``{"detail", "error_type"}`` plus ``X-Fal-Error-Type`` (fal.md §1.6)."""
    headers = {ERROR_TYPE_HEADER: error_type}
    if request_id is not None:
        headers[REQUEST_ID_HEADER] = request_id
    return json_answer(status, {"detail": detail, "error_type": error_type}, headers)


def fault_answer(status: int, fault: Fault, options: FalOptions) -> web.Response:
    """fal's own answer for an injected HTTP status (the ``error_response`` of the fault middleware).

    Server errors carry ``x-fal-request-id`` because fal's servers set it, and fal_client then surfaces them
    at once instead of retrying ten times (fal.md §1.9); ``options.ingress_gateway_errors`` switches 502-504
    to the nginx page that fal_client does retry.
    """
    if status in _REASONS and options.ingress_gateway_errors:
        page = _NGINX_PAGE.format(status=status, reason=_REASONS[status])
        return web.Response(status=status, text=page, content_type="text/html")
    detail, error_type = _FAULT_ANSWERS.get(status, ("Error", None))
    detail = fault.message or detail
    if error_type is None:
        return json_answer(status, {"detail": detail})
    request_id = str(uuid.uuid4()) if status >= 500 else None
    return request_error(status, detail, error_type, request_id)


def check_api_key(request: web.Request, api_key: str) -> web.Response | None:
    """``None`` when the request carries ``Authorization: Key <api_key>``, else fal's 401 (fal.md §5)."""
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "key" and secrets.compare_digest(credentials.strip().encode(), api_key.encode()):
        return None
    return json_answer(401, {"detail": UNAUTHORIZED_DETAIL})


def origin_of(request: web.Request) -> str:
    """``scheme://host[:port]`` the client used to reach the emulator: every URL it hands out is built on it,
    so the emulator works behind any port or host name without configuration."""
    return str(request.url.origin())
