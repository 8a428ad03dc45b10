"""Eachlabs' error answers → typed errors: a refused API request (§2.3, §2.7), a refused PUT to a presigned
storage URL (§2.11), a redirect, and a body that cannot be read. Pure: each function takes an HttpResponse and
returns a value or an error; no I/O.

Section numbers (§) refer to ``docs/protocols/eachlabs.md``. Eachlabs' HTTP errors are ``{"error": ...}``
with an optional integer ``status`` and free-form ``details`` (§2.3, MD-OAS ``Error``); they carry no error
code, so the exception class (from the HTTP status) is the signal and ``code`` stays ``None``. Failures of an
accepted prediction are not HTTP errors: ``_eachlabs_parsing`` reads them from the poll (§2.6).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from .._http import HttpResponse
from ..errors import ProviderError, ProviderRejectedError, ProviderUnavailableError
from .base import error_for_status

__all__ = ["PROVIDER", "http_error", "invalid_response", "json_object", "upload_error"]

PROVIDER: Final = "eachlabs"

_TRANSIENT_UPLOAD_STATUSES: Final = frozenset({408, 409, 429})
"""Refusals of a storage PUT that a later try may not meet (with every 5xx)."""


# ---------------------------------------------------------------------------------------------- raw bodies


def _raw(response: HttpResponse) -> Any:
    """The body as parsed JSON when it is JSON, else as text (for ``ProviderError.raw``)."""
    try:
        return response.json()
    except ValueError:
        return response.text()


def _shorten(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def invalid_response(response: HttpResponse, what: str, request_id: str | None) -> ProviderUnavailableError:
    """The error of an answer that is not what ``what`` should have returned (code ``invalid_response``)."""
    return ProviderUnavailableError(
        f"Eachlabs sent an unreadable answer to {what}: {_shorten(response.text()) or '<empty body>'}",
        provider=PROVIDER, status=response.status, code="invalid_response", request_id=request_id,
        raw=_raw(response),
    )


def json_object(response: HttpResponse, what: str, request_id: str | None) -> dict[str, Any]:
    """The answer's body as a JSON object, or :func:`invalid_response` when it is not one."""
    try:
        body = response.json()
    except ValueError:
        raise invalid_response(response, what, request_id) from None
    if not isinstance(body, dict):
        raise invalid_response(response, what, request_id)
    return body


def _error_message(raw: Any, status: int) -> str:
    """``error``, then ``details`` when there is one (the 402/429 explanation lives there, §2.3)."""
    if isinstance(raw, dict):
        error = raw.get("error") or raw.get("message")
        details = raw.get("details")
        text = str(error) if error else f"HTTP {status}"
        if details:
            text += ": " + (details if isinstance(details, str) else json.dumps(details))
        return text
    if isinstance(raw, str) and raw.strip():
        return f"HTTP {status}: {_shorten(raw)}"
    return f"HTTP {status}"


def _redirect_error(response: HttpResponse, what: str, request_id: str | None) -> ProviderUnavailableError:
    """A 3xx answer. No Eachlabs endpoint redirects (§1, §2.11) and the transports do not follow redirects
    (following one would send the API key to wherever ``Location`` points), so it is refused, not parsed:
    usually a ``base_url`` that is not the API's (``http://`` redirected to ``https://``, a proxy)."""
    location = response.header("location")
    where = f" to {_shorten(location, 200)}" if location else ""
    return ProviderUnavailableError(
        f"Eachlabs answered {what} with a redirect (HTTP {response.status}){where}; redirects are not followed "
        "so that the API key stays with the API: check base_url", provider=PROVIDER, status=response.status,
        code="unexpected_redirect", request_id=request_id, retryable=False, raw=_raw(response),
    )


def http_error(response: HttpResponse, *, request_id: str | None) -> ProviderError:
    """The typed error for an Eachlabs API answer with an error status (§2.3, §2.7, §2.11).

    400/404/422 → ProviderRejectedError, 401 → AuthenticationError, 402 → InsufficientCreditsError,
    429 → RateLimitedError with ``Retry-After`` and the ``details`` text, 5xx (and anything unreadable) →
    ProviderUnavailableError, 3xx → ProviderUnavailableError with code ``unexpected_redirect`` (not
    retryable). ``request_id`` is the prediction id when there is one, else ``X-Request-Id``.
    """
    if 300 <= response.status < 400:
        return _redirect_error(response, "an API request", request_id)
    raw = _raw(response)
    return error_for_status(response.status, _error_message(raw, response.status), provider=PROVIDER,
                            request_id=request_id, raw=raw, retry_after=response.header("retry-after"))


def upload_error(response: HttpResponse) -> ProviderError:
    """The typed error of a refused PUT to a presigned URL (S3 answers in XML: ``<Code>``, ``<Message>``).

    408, 409, 429 and 5xx → the transient error of that status (429 a RateLimitedError with ``Retry-After``);
    any other 4xx → ProviderRejectedError, since the refusal concerns the upload (an expired or mismatched
    signature, a too large file), not the Eachlabs key (§2.11); 3xx → ProviderUnavailableError with code
    ``unexpected_redirect``.
    """
    if 300 <= response.status < 400:  # an S3 region redirect, a proxy: not followed, not parsed (§2.11)
        return _redirect_error(response, "the upload of a reference image", None)
    text = response.text()
    code_match = re.search(r"<Code>([^<]*)</Code>", text)
    message_match = re.search(r"<Message>([^<]*)</Message>", text)
    message = message_match.group(1) if message_match else (_shorten(text) or f"HTTP {response.status}")
    code = code_match.group(1) if code_match else None
    if response.status in _TRANSIENT_UPLOAD_STATUSES or response.status >= 500:
        return error_for_status(response.status, f"uploading a reference image failed: {message}",
                                provider=PROVIDER, code=code, raw=text, retry_after=response.header("retry-after"))
    return ProviderRejectedError(f"uploading a reference image failed: {message}", provider=PROVIDER,
                                 status=response.status, code=code, raw=text)
