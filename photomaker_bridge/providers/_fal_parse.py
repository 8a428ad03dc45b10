"""Reading fal's answers (docs/protocols/fal.md): queue statuses, results, and every error shape.

Pure functions over JSON values, with no ``fal_client`` import, so they are tested from the reference's own
bodies. ``providers/fal.py`` feeds them what ``fal_client`` hands over (its status objects, the body of a
``FalClientHTTPError``); the flows (``_fal_flow`` and its ``_fal_*`` steps) turn their output into a result.

Lenient at the provider's edge: only the fields read here must be present, anything
else fal adds is ignored, and a body that cannot be read becomes a :class:`ProviderUnavailableError`
carrying it as ``raw``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal

import attrs

from ..errors import (
    AuthenticationError,
    ContentPolicyError,
    GenerationFailedError,
    ProviderError,
    ProviderRejectedError,
    ProviderUnavailableError,
)
from ..images import parse_data_uri
from ..result import GeneratedImage
from .base import error_for_status

__all__ = [
    "PROVIDER",
    "FalLogLine",
    "FalOutput",
    "FalStatus",
    "FalSubmission",
    "error_for_answer",
    "error_for_completed",
    "parse_logs",
    "parse_output",
    "parse_status",
    "parse_submit",
    "total_inference_time",
    "unreadable",
    "unreadable_archive",
]

PROVIDER: Final = "fal"

QueueState = Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]

REQUEST_ID_HEADER: Final = "x-fal-request-id"
TIMEOUT_TYPE_HEADER: Final = "x-fal-request-timeout-type"
ERROR_TYPE_HEADER: Final = "x-fal-error-type"

# fal's request-error types (fal.md §1.4, D-ERR request-errors table) -> (our error class, retryable).
# Queue/runner capacity problems are ProviderUnavailableError (fallback-worthy); failures of a job that had
# started are GenerationFailedError, retryable because fal does not bill 5xx and the same input may pass
# on another runner (D-REL); bad_request is the caller's input.
_FAL_ERROR_TYPE_TO_ERROR: Final[Mapping[str, tuple[type[ProviderError], bool]]] = {
    "request_timeout": (GenerationFailedError, True),
    "startup_timeout": (ProviderUnavailableError, True),
    "runner_scheduling_failure": (ProviderUnavailableError, True),
    "runner_connection_timeout": (ProviderUnavailableError, True),
    "runner_connection_refused": (ProviderUnavailableError, True),
    "runner_connection_error": (ProviderUnavailableError, True),
    "runner_disconnected": (GenerationFailedError, True),
    "runner_incomplete_response": (GenerationFailedError, True),
    "runner_server_error": (GenerationFailedError, True),
    "client_disconnected": (GenerationFailedError, True),
    "client_cancelled": (GenerationFailedError, False),
    "bad_request": (ProviderRejectedError, False),
    "internal_error": (ProviderUnavailableError, True),
}


@attrs.frozen
class FalLogLine:
    """One line of a request's logs (fal.md §1.4: ``{message, level, source, timestamp}``)."""

    message: str
    level: str | None = None
    timestamp: str | None = None

    @property
    def key(self) -> tuple[str | None, str]:
        """What identifies a line across polls: fal returns a moving window of lines, so a line seen twice
        is recognised by ``(timestamp, message)`` (fal.md §1.4)."""
        return self.timestamp, self.message


@attrs.frozen
class FalStatus:
    """One queue status (fal.md §1.4), whether read from JSON or converted from ``fal_client``'s objects."""

    state: QueueState
    queue_position: int | None = None
    """0-indexed position while ``IN_QUEUE``."""
    logs: tuple[FalLogLine, ...] = ()
    metrics: Mapping[str, Any] = attrs.field(factory=dict)
    """``COMPLETED`` only: ``{"inference_time": seconds}`` ("legacy apps might not return metrics")."""
    error: str | None = None
    """``COMPLETED`` with a request error: its message (fal never sends a FAILED state, fal.md §6)."""
    error_type: str | None = None

    @property
    def inference_time(self) -> float | None:
        """Seconds the runner worked, when fal reports it (``metrics.inference_time``)."""
        value = self.metrics.get("inference_time")
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
        return None

    @property
    def failed(self) -> bool:
        """Whether the request completed with a request error."""
        return self.state == "COMPLETED" and (self.error is not None or self.error_type is not None)


@attrs.frozen
class FalSubmission:
    """What a submit answered (fal.md §1.3)."""

    request_id: str
    queue_position: int | None = None


@attrs.frozen
class FalOutput:
    """A successful ``fal-ai/photomaker`` result: ``{"images": [...], "seed": int}`` (fal.md §4.1)."""

    images: tuple[GeneratedImage, ...]
    seed: int | None
    raw: Any = attrs.field(repr=False, eq=False)


def unreadable(message: str, raw: Any, *, request_id: str | None = None,
               status: int | None = None) -> ProviderUnavailableError:
    """The error for an answer that does not have the documented shape."""
    return ProviderUnavailableError(f"fal sent an answer the bridge cannot read: {message}", provider=PROVIDER,
                                    status=status, request_id=request_id, raw=raw)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_submit(body: Any) -> FalSubmission:
    """The request id (and queue position) of a submit answer."""
    if not isinstance(body, Mapping) or not isinstance(body.get("request_id"), str) or not body["request_id"]:
        raise unreadable("a submit answer without a request_id", body)
    return FalSubmission(body["request_id"], _int_or_none(body.get("queue_position")))


def parse_logs(value: Any) -> tuple[FalLogLine, ...]:
    """Log entries as fal sends them (``null`` when logs were not asked for); malformed entries are skipped."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        return ()
    lines = []
    for entry in value:
        if isinstance(entry, Mapping) and isinstance(entry.get("message"), str):
            level = entry.get("level")
            timestamp = entry.get("timestamp")
            lines.append(FalLogLine(entry["message"], level if isinstance(level, str) else None,
                                    timestamp if isinstance(timestamp, str) else None))
    return tuple(lines)


def parse_status(body: Any, *, request_id: str | None = None) -> FalStatus:
    """A status body (fal.md §1.4). Any state other than the three documented ones is unreadable: fal never
    sends FAILED or CANCELLED (``fal_client`` itself raises ``Unknown status`` for them)."""
    if not isinstance(body, Mapping):
        raise unreadable("a status answer that is not a JSON object", body, request_id=request_id)
    state = body.get("status")
    if state == "IN_QUEUE":
        return FalStatus("IN_QUEUE", queue_position=_int_or_none(body.get("queue_position")))
    if state == "IN_PROGRESS":
        return FalStatus("IN_PROGRESS", logs=parse_logs(body.get("logs")))
    if state == "COMPLETED":
        metrics = body.get("metrics")
        error, error_type = body.get("error"), body.get("error_type")
        return FalStatus("COMPLETED", logs=parse_logs(body.get("logs")),
                         metrics=dict(metrics) if isinstance(metrics, Mapping) else {},
                         error=error if isinstance(error, str) else None,
                         error_type=error_type if isinstance(error_type, str) else None)
    raise unreadable(f"unknown queue status {state!r}", body, request_id=request_id)


def _image(entry: Any, seed: int | None) -> GeneratedImage:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("url"), str) or not entry["url"]:
        raise ValueError("an image without a url")
    url: str = entry["url"]
    content_type = entry.get("content_type") if isinstance(entry.get("content_type"), str) else None
    data: bytes | None = None
    if url[:5].lower() == "data:":
        # fal may inline a file as a data URI (sync mode, JS types' file_data); keep the bytes, drop the URL.
        uri_type, data = parse_data_uri(url)  # ValueError when malformed
        content_type = content_type or uri_type
    return GeneratedImage(url=None if data is not None else url, data=data, content_type=content_type,
                          width=_int_or_none(entry.get("width")), height=_int_or_none(entry.get("height")),
                          seed=seed)


def parse_output(body: Any, *, request_id: str | None = None) -> FalOutput:
    """The images and seed of a successful result (fal.md §1.6, §4.1); ``seed`` goes on every image, since
    fal reports one seed per call."""
    if not isinstance(body, Mapping) or not isinstance(body.get("images"), list):
        raise unreadable("a result without an images list", body, request_id=request_id, status=200)
    seed = _int_or_none(body.get("seed"))
    try:
        images = tuple(_image(entry, seed) for entry in body["images"])
    except ValueError as error:
        raise unreadable(str(error), body, request_id=request_id, status=200) from error
    return FalOutput(images, seed, body)


def _lower_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in (headers or {}).items()}


def _field_of(entry: Mapping[str, Any]) -> str:
    location = entry.get("loc")
    if isinstance(location, Sequence) and not isinstance(location, str) and location:
        return str(location[-1])
    return "input"


def _describe_detail(detail: Sequence[Any]) -> str:
    """``num_images: ensure this value is less than or equal to 4; prompt: ...`` from a 422 detail list."""
    parts = []
    for entry in detail:
        if isinstance(entry, Mapping):
            parts.append(f"{_field_of(entry)}: {entry.get('msg', entry.get('type', 'invalid'))}")
        else:
            parts.append(str(entry))
    return "; ".join(parts) or "no detail given"


def _is_content_policy(entry: Any) -> bool:
    # Newer fal apps report safety refusals as detail entries typed "content_policy_violation"
    # (docs.fal.ai/errors, fal.md §1.6 "newer apps add url/ctx"); whether PhotoMaker does is [UNVERIFIED].
    return isinstance(entry, Mapping) and "content_policy" in str(entry.get("type", ""))


def error_for_answer(status: int, body: Any, headers: Mapping[str, str] | None = None, *,
                     request_id: str | None = None, error_type: str | None = None) -> ProviderError:
    """The typed error for a non-2xx answer of any queue endpoint (fal.md §1.4, §1.6, §5).

    ``body`` is the parsed JSON (or the text when it was not JSON); ``error_type`` overrides the body's and
    the ``X-Fal-Error-Type`` header's (``fal_client`` has already read them). ``request_id`` is the request
    the call was about; without one (a submit) the ``x-fal-request-id`` header names it, when fal sent one.
    """
    lowered = _lower_headers(headers)
    request_id = request_id or lowered.get(REQUEST_ID_HEADER)
    detail = body.get("detail") if isinstance(body, Mapping) else None
    if error_type is None and isinstance(body, Mapping) and isinstance(body.get("error_type"), str):
        error_type = body["error_type"]
    error_type = error_type or lowered.get(ERROR_TYPE_HEADER)
    if isinstance(detail, list):
        if any(_is_content_policy(entry) for entry in detail):
            return ContentPolicyError(f"fal refused the request on content policy: {_describe_detail(detail)}",
                                      provider=PROVIDER, status=status, code="content_policy_violation",
                                      request_id=request_id, raw=body)
        # FastAPI validation errors (fal.md §1.6): name each field (loc[-1]) so the caller knows what to fix.
        return ProviderRejectedError(f"fal rejected the input: {_describe_detail(detail)}", errors=detail,
                                     provider=PROVIDER, status=status, code=error_type, request_id=request_id,
                                     raw=body)
    if isinstance(detail, str):
        message = detail
    elif isinstance(body, str) and body.strip():
        message = body.strip()[:500]
    else:
        message = f"HTTP {status}"
    fields: dict[str, Any] = {"provider": PROVIDER, "status": status, "code": error_type, "request_id": request_id,
                              "raw": body}
    if status in (401, 403):
        return AuthenticationError(f"fal refused the API key ({message}); check FAL_KEY or FalProvider(key=...)",
                                   **fields)
    if status == 504 and lowered.get(TIMEOUT_TYPE_HEADER) == "user":
        # The start timeout the caller set (X-Fal-Request-Timeout) expired; fal says do not resubmit blindly
        # (fal.md §1.9, §6: ISS fal-ai/fal #776).
        return GenerationFailedError(f"fal gave up before a runner took the request: {message}",
                                     retryable=False, **fields)
    known = _FAL_ERROR_TYPE_TO_ERROR.get(error_type or "")
    if known is not None:
        error_class, retryable = known
        return error_class(message, retryable=retryable, **fields)
    return error_for_status(status, message, provider=PROVIDER, code=error_type, request_id=request_id, raw=body,
                            retry_after=lowered.get("retry-after"))


def error_for_completed(status: FalStatus, *, request_id: str | None) -> ProviderError:
    """The typed error for a request that COMPLETED with ``error``/``error_type`` (fal.md §1.4)."""
    message = status.error or status.error_type or "the request failed"
    raw = {"status": status.state, "error": status.error, "error_type": status.error_type,
           "metrics": dict(status.metrics)}
    known = _FAL_ERROR_TYPE_TO_ERROR.get(status.error_type or "")
    if known is not None:
        error_class, retryable = known
        return error_class(message, provider=PROVIDER, code=status.error_type, request_id=request_id,
                           retryable=retryable, raw=raw)
    return GenerationFailedError(message, provider=PROVIDER, code=status.error_type, request_id=request_id, raw=raw)


def total_inference_time(statuses: Iterable[FalStatus | None]) -> float | None:
    """The sum of ``metrics.inference_time`` over calls, or ``None`` when any call did not report it."""
    total = 0.0
    for status in statuses:
        seconds = None if status is None else status.inference_time
        if seconds is None:
            return None
        total += seconds
    return total


def unreadable_archive(error: BaseException) -> bool:
    """Whether fal refused the request because it could not download or open the photo archive (fal.md §1.6:
    a 422 ``detail`` item on ``image_archive_url`` of type ``file_download_error``)."""
    if not isinstance(error, ProviderError) or error.status != 422:
        return False
    details = error.errors if isinstance(error, ProviderRejectedError) else []
    return any(isinstance(entry, Mapping) and entry.get("type") == "file_download_error"
               and "image_archive_url" in [str(part) for part in entry.get("loc") or ()] for entry in details)
