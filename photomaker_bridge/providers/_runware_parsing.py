"""Reading Runware's answers: envelopes, result items and error items, into result pieces or typed errors.

Pure functions over :class:`~photomaker_bridge._http.HttpResponse` values and parsed bodies; no I/O. Every
shape in runware.md is accepted: the ``data`` / ``errors`` envelope (§2.2, §2.3), a ``data`` object instead of
an array (§5.4 [CONFLICT]), the singular ``error`` object and the legacy ``error: true`` / ``errorId`` shapes
(§2.3), error items inside ``data`` (the legacy SDK's ``_is_error_response``, §5.2), ``getResponse`` items with
``status`` and a per-item ``error`` (§2.5, §4.2), and mixed success and failure in one body (§2.5).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from .._http import HttpResponse
from ..errors import (
    AuthenticationError,
    ContentPolicyError,
    GenerationFailedError,
    InsufficientCreditsError,
    ProviderError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitedError,
)
from .base import error_for_status, parse_retry_after

__all__ = ["PROVIDER", "ResponseItem", "RunwareAnswer", "error_from_item", "invalid_response", "parse_answer",
           "read_body"]

PROVIDER: Final = "runware"

# Runware's error codes (runware.md §6) → our class and whether a later identical request may succeed.
# Retry classes follow the new SDK's errors.py (runware.md §6: "retry provider, timeout, connection, rateLimit
# and serverError. Never retry validation, auth, quota or safety").
_RUNWARE_CODE_TO_ERROR: Final[Mapping[str, tuple[type[ProviderError], bool]]] = {
    "invalidApiKey": (AuthenticationError, False),
    "missingApiKey": (AuthenticationError, False),
    "insufficientCredits": (InsufficientCreditsError, False),
    "rateLimitExceeded": (RateLimitedError, True),
    "inferenceRateLimitExceeded": (RateLimitedError, True),
    "unknownParameter": (ProviderRejectedError, False),
    "unsupportedParameter": (ProviderRejectedError, False),
    "incompatibleParameters": (ProviderRejectedError, False),
    "valueTooLarge": (ProviderRejectedError, False),
    "arrayTooSmall": (ProviderRejectedError, False),
    "modelNotFound": (ProviderRejectedError, False),
    "mediaNotFound": (ProviderRejectedError, False),
    # getResponse for an id Runware does not know (or no longer keeps): the id is the refused input, and
    # asking again will not find it either.
    "taskNotFound": (ProviderRejectedError, False),
    "taskExpired": (ProviderRejectedError, False),
    # Our taskUUIDs are fresh UUID v4s, so a conflict means the same task array was sent twice (a resend, or a
    # taskUUID fixed through provider_options): the request itself is refused and an identical resend is
    # refused again; nothing failed on Runware's side. A retry must re-plan with new ids.
    "conflictTaskUUID": (ProviderRejectedError, False),
    "nsfwContentDetected": (ContentPolicyError, False),
    "contentPolicyViolation": (ContentPolicyError, False),
    "promptBlocked": (ContentPolicyError, False),
    "imageBlocked": (ContentPolicyError, False),
    "timeoutProvider": (GenerationFailedError, True),
    "inferenceError": (GenerationFailedError, True),
    "noAvailableServer": (GenerationFailedError, True),
    "modelUnavailable": (GenerationFailedError, True),
    "taskFailed": (GenerationFailedError, False),
    "taskFailedOrNotFound": (GenerationFailedError, False),
    "internalServerError": (ProviderUnavailableError, True),
    "serviceUnavailable": (ProviderUnavailableError, True),
    "unknownError": (ProviderUnavailableError, True),
}

# The legacy WebSocket auth failure carries only an errorId; 19 is "Invalid api key" (runware.md §2.3, §6).
_LEGACY_ERROR_ID_TO_ERROR: Final[Mapping[str, type[ProviderError]]] = {"19": AuthenticationError}

# The new SDK folds any code naming credits, balance or quota into its quota bucket (runware.md §6).
_QUOTA_CODE = re.compile(r"Credits|Balance|Quota")

# getResponse states (runware.md §4.2): processing | success | error, with pending (one docs version) and the
# queued/scheduled/waiting states the legacy SDK tolerates.
_PENDING_STATUSES: Final = frozenset({"processing", "pending", "queued", "scheduled", "waiting", "running"})
_ERROR_STATUSES: Final = frozenset({"error", "failed"})


@attrs.frozen(kw_only=True)
class ResponseItem:
    """One item of ``data`` / ``errors`` (or a singular ``error`` object): only the fields we read, all optional
    (lenient at the provider's edge)."""

    task_type: str | None = None
    task_uuid: str | None = None
    image_uuid: str | None = None
    image_url: str | None = None
    image_base64_data: str | None = None
    image_data_uri: str | None = None
    seed: int | None = None
    cost: Decimal | None = None
    nsfw_content: bool | None = None
    status: str | None = None
    code: str | None = None
    message: str | None = None
    parameter: Any = None
    error: Any = None
    error_id: Any = None
    error_message: str | None = None

    @property
    def is_error(self) -> bool:
        """An error item: a code, a legacy ``error``/``errorId``, or a ``getResponse`` item in error."""
        return (self.code is not None or self.error_id is not None or self.error not in (None, False)
                or (self.status or "").lower() in _ERROR_STATUSES)

    @property
    def is_pending(self) -> bool:
        """A ``getResponse`` item for an image not generated yet."""
        return (self.status or "").lower() in _PENDING_STATUSES

    @property
    def has_output(self) -> bool:
        """Whether the item carries an image (URL, base64 or data URI)."""
        return bool(self.image_url or self.image_base64_data or self.image_data_uri)


def _structure_bool(value: Any, _: Any) -> bool:
    # JSON booleans only (and their string spellings): cattrs' default bool() would read "false" as True.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"not a boolean: {value!r}")


def _structure_decimal(value: Any, _: Any) -> Decimal:
    # Costs go through str() so that the float 0.0013 becomes Decimal("0.0013"), not its binary expansion.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"not a number: {value!r}")
    try:
        return Decimal(str(value))
    except InvalidOperation as error:
        raise ValueError(f"not a number: {value!r}") from error


def _structure_int(value: Any, _: Any) -> int:
    # The legacy SDK coerces numbers sent as strings (runware.md §5.2); fractions are refused, not truncated.
    if isinstance(value, bool):
        raise ValueError(f"not an integer: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise ValueError(f"not an integer: {value!r}")


def _make_converter() -> cattrs.Converter:
    made = cattrs.Converter()
    made.register_structure_hook(bool, _structure_bool)
    made.register_structure_hook(Decimal, _structure_decimal)
    made.register_structure_hook(int, _structure_int)
    made.register_structure_hook(Any, lambda value, _: value)
    made.register_structure_hook(ResponseItem, make_dict_structure_fn(
        ResponseItem, made,
        task_type=override(rename="taskType"),
        task_uuid=override(rename="taskUUID"),
        image_uuid=override(rename="imageUUID"),
        image_url=override(rename="imageURL"),
        image_base64_data=override(rename="imageBase64Data"),
        image_data_uri=override(rename="imageDataURI"),
        nsfw_content=override(rename="NSFWContent"),
        error_id=override(rename="errorId"),
        error_message=override(rename="errorMessage"),
    ))
    return made


_converter = _make_converter()


def invalid_response(message: str, *, status: int | None, raw: Any, request_id: str | None = None,
                      ) -> ProviderUnavailableError:
    return ProviderUnavailableError(message, provider=PROVIDER, status=status, code="invalid_response",
                                    request_id=request_id, raw=raw)


def _structure_item(value: Any, *, status: int, body: Any, request_id: str | None) -> ResponseItem:
    if not isinstance(value, Mapping):
        raise invalid_response(f"Runware sent an item that is not an object: {value!r:.120}", status=status,
                                raw=body, request_id=request_id)
    try:
        return _converter.structure(dict(value), ResponseItem)
    except cattrs.BaseValidationError as error:
        details = "; ".join(cattrs.transform_error(error))
        raise invalid_response(f"Runware sent an item the bridge cannot read: {details}", status=status,
                                raw=body, request_id=request_id) from error


def read_body(response: HttpResponse, *, request_id: str | None = None) -> Any:
    """The body as JSON. A body that is not JSON becomes the error its status means (401 → authentication,
    429 → rate limited ...), or ``ProviderUnavailableError(code="invalid_response")`` on a 2xx/3xx status."""
    try:
        return response.json()
    except ValueError as error:
        text = response.text()
        snippet = text[:200].strip() or "<empty body>"
        if response.status >= 400:
            raise error_for_status(response.status, f"Runware answered HTTP {response.status}: {snippet}",
                                   provider=PROVIDER, request_id=request_id, raw=text,
                                   retry_after=response.header("retry-after")) from error
        raise invalid_response(f"Runware answered HTTP {response.status} with a body that is not JSON: {snippet}",
                                status=response.status, raw=text, request_id=request_id) from error


def _error_fields(item: ResponseItem) -> tuple[str | None, str, Any]:
    """``(code, message, parameter)`` of an error item in any of its shapes."""
    code, message, parameter = item.code, item.message or item.error_message, item.parameter
    nested = item.error
    if isinstance(nested, Mapping):  # getResponse per-item error / singular error object (runware.md §2.5, §2.3)
        code = code or (str(nested["code"]) if nested.get("code") is not None else None)
        message = message or (str(nested["message"]) if nested.get("message") is not None else None)
        parameter = parameter if parameter is not None else nested.get("parameter")
    elif isinstance(nested, str) and nested:  # old docs: "it will return the error property" (runware.md §2.3)
        message = message or nested
    if code is None and item.error_id is not None:
        code = str(item.error_id)
    return code, message or "Runware reported an error without a message", parameter


def error_from_item(item: Mapping[str, Any] | ResponseItem, *, status: int | None, raw: Any,
                    request_id: str | None = None, retry_after: str | None = None,
                    all_errors: Sequence[Any] = ()) -> ProviderError:
    """The typed error for one Runware error item (runware.md §6).

    The code decides the class; an unknown code falls back to the HTTP status when it is an error status,
    else (an error reported for an accepted task in a 2xx answer or a ``getResponse`` poll) to
    :class:`GenerationFailedError`. ``request_id`` is the item's ``taskUUID``, else the one given.
    """
    parsed = item if isinstance(item, ResponseItem) else _structure_item(item, status=status or 0, body=raw,
                                                                          request_id=request_id)
    code, message, parameter = _error_fields(parsed)
    if parameter:
        shown = ", ".join(str(name) for name in parameter) if isinstance(parameter, list) else str(parameter)
        message = f"{message} (parameter: {shown})"
    task_uuid = parsed.task_uuid or request_id
    known = _RUNWARE_CODE_TO_ERROR.get(code or "")
    error_class: type[ProviderError] | None = None
    retryable: bool | None = None
    if known is not None:
        error_class, retryable = known
    elif code is not None and code in _LEGACY_ERROR_ID_TO_ERROR:
        error_class = _LEGACY_ERROR_ID_TO_ERROR[code]
    elif code is not None and (code.startswith(("invalid", "missing"))):
        error_class = ProviderRejectedError  # validation family invalid<Param>/missing<Param> (runware.md §6)
    elif code is not None and _QUOTA_CODE.search(code):
        error_class = InsufficientCreditsError
    if error_class is None:
        if status is not None and status >= 400:
            return error_for_status(status, message, provider=PROVIDER, code=code, request_id=task_uuid,
                                    raw=raw, retry_after=retry_after)
        error_class, retryable = GenerationFailedError, False
    fields: dict[str, Any] = {"provider": PROVIDER, "status": status, "code": code, "request_id": task_uuid,
                              "raw": raw, "retryable": retryable}
    if error_class is RateLimitedError:
        return RateLimitedError(message, retry_after=parse_retry_after(retry_after), **fields)
    if error_class is ProviderRejectedError:
        return ProviderRejectedError(message, errors=all_errors, **fields)
    return error_class(message, **fields)


@attrs.frozen
class RunwareAnswer:
    """One Runware body, read: the result items and the errors, each error with the task it names."""

    status: int
    """The HTTP status."""
    body: Any
    """The parsed JSON body as received."""
    items: tuple[ResponseItem, ...]
    """Every non-error item of ``data`` (results, ACKs, ``processing`` poll items)."""
    failures: tuple[tuple[str | None, ProviderError], ...]
    """``(taskUUID or None, error)`` for every error item; ``None`` when the error names no task (auth, rate
    limit, server errors concern the whole request)."""

    def items_for(self, task_uuid: str) -> list[ResponseItem]:
        """The non-error items of one task."""
        return [item for item in self.items if item.task_uuid == task_uuid]

    def failures_for(self, task_uuid: str) -> list[ProviderError]:
        """The errors of one task, followed by the errors that name no task (they concern every task)."""
        return ([error for uuid, error in self.failures if uuid == task_uuid]
                + [error for uuid, error in self.failures if uuid is None])


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def parse_answer(response: HttpResponse, *, request_id: str | None = None) -> RunwareAnswer:
    """Read any Runware REST answer into items and typed errors.

    Raises (rather than returning) when the body says nothing usable: not JSON, not an object, an error status
    without error items, or a 2xx body with neither ``data`` nor errors. ``request_id`` (the first taskUUID
    sent) is what an error naming no task carries.
    """
    body = read_body(response, request_id=request_id)
    status = response.status
    retry_after = response.header("retry-after")
    if not isinstance(body, Mapping):
        if status >= 400:
            raise error_for_status(status, f"Runware answered HTTP {status}", provider=PROVIDER,
                                   request_id=request_id, raw=body, retry_after=retry_after)
        raise invalid_response(f"Runware answered with JSON that is not an object: {body!r:.120}",
                                status=status, raw=body, request_id=request_id)
    error_items: list[ResponseItem] = []
    items: list[ResponseItem] = []
    for value in _as_list(body.get("data")):
        item = _structure_item(value, status=status, body=body, request_id=request_id)
        (error_items if item.is_error else items).append(item)
    for value in _as_list(body.get("errors")):
        error_items.append(_structure_item(value, status=status, body=body, request_id=request_id))
    legacy = body.get("error")
    if isinstance(legacy, Mapping) or (isinstance(legacy, str) and legacy):
        # The singular {"error": {...}} object (runware.md §2.3: CLI websocket_test, new SDK parse_api_error).
        nested = dict(legacy) if isinstance(legacy, Mapping) else {"message": legacy}
        error_items.append(_structure_item(nested, status=status, body=body, request_id=request_id))
    elif legacy is True or body.get("errorId") is not None:
        # {"error": true, "errorId": 19, "errorMessage": ...} from the old WebSocket API (runware.md §2.3).
        error_items.append(_structure_item({key: value for key, value in body.items() if key != "data"},
                                           status=status, body=body, request_id=request_id))
    if not error_items and status >= 400:
        raise error_for_status(status, f"Runware answered HTTP {status} without an error item", provider=PROVIDER,
                               request_id=request_id, raw=body, retry_after=retry_after)
    if not error_items and "data" not in body:
        raise invalid_response("Runware answered without data or errors", status=status, raw=body,
                                request_id=request_id)
    raw_errors = [value for value in _as_list(body.get("errors"))]
    failures = tuple(
        (item.task_uuid, error_from_item(item, status=status, raw=body, request_id=request_id,
                                         retry_after=retry_after, all_errors=raw_errors or [body]))
        for item in error_items
    )
    return RunwareAnswer(status=status, body=body, items=tuple(items), failures=failures)
