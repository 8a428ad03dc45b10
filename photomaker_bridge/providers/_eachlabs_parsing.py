"""Eachlabs answers → prediction ids, snapshots of a prediction, presigned uploads, or typed errors. Pure: each
function takes an HttpResponse (or a parsed body) and returns a value or raises; no I/O.

Section numbers (§) refer to ``docs/protocols/eachlabs.md``. Refused requests (HTTP error statuses) are read by
``_eachlabs_errors``. Failures of an accepted prediction are not HTTP errors: they arrive on a 200 poll with
``status: "error"`` and the detail in ``output``, either a plain string or a classified envelope with an
``error_code`` (§2.6); :func:`failure_error` reads them. ``_eachlabs_result`` assembles the result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

import attrs

from .._http import HttpResponse
from ..errors import ContentPolicyError, GenerationFailedError, ProviderError, ProviderRejectedError
from ._eachlabs_errors import PROVIDER, http_error, invalid_response, json_object, upload_error

__all__ = [
    "PROVIDER",
    "PredictionSnapshot",
    "PresignedUpload",
    "failure_error",
    "http_error",
    "parse_create",
    "parse_prediction",
    "parse_presign",
    "upload_error",
]

# ---------------------------------------------------------------------------------------------------- tables

_STATUS_TO_PHASE: Final[Mapping[str, Literal["queued", "running", "succeeded", "failed", "cancelled"]]] = {
    # §2.5: the documented sets disagree; REST callers see `created` (with `starting` folded in), then
    # `processing`, then one terminal status. `failed` is the older spelling of `error`; both spellings of
    # cancelled are accepted.
    "created": "queued",
    "starting": "queued",
    "processing": "running",
    "success": "succeeded",
    "error": "failed",
    "failed": "failed",
    "cancelled": "cancelled",
    "canceled": "cancelled",
}

_ERROR_CODE_TO_ERROR: Final[Mapping[str, type[ProviderError]]] = {
    # V1 error codes (§2.6, MD-BR errors.mdx). The input was refused, only later than at create: the same
    # problem is a 400 "Invalid input for model" when Eachlabs validates at once (§3.1 says the timing is
    # unverified), so the exception type must not depend on when it validates. Resending the same request
    # fails again; a caller fixes the input (or the image URL) instead.
    "INPUT_VALIDATION_ERROR": ProviderRejectedError,
    "INPUT_DOWNLOAD_ERROR": ProviderRejectedError,
    "PROVIDER_BAD_REQUEST": ProviderRejectedError,
    "PROVIDER_REJECTED": ProviderRejectedError,
}
"""Failure codes that mean "the input was refused"; every other code is a :class:`GenerationFailedError`."""

_RETRYABLE_ERROR_CODES: Final = frozenset({
    # Transient by their meaning (§2.6); used only when the envelope carries no `retryable` flag itself.
    "PROVIDER_RATE_LIMIT", "PROVIDER_SERVER_ERROR", "NETWORK_ERROR", "EXECUTION_TIMEOUT", "WORKER_LOST",
})

_NOT_CONTENT_POLICY_CODES: Final = frozenset({"INPUT_VALIDATION_ERROR", "INPUT_DOWNLOAD_ERROR"})
"""Codes whose message may mention "safety" (``disable_safety_checker``) without being a safety refusal."""

# PROVIDER_REJECTED includes content-safety refusals (§2.6) but nothing marks them apart from the message;
# these are the words safety filters use (Replicate/Cog's "NSFW content detected", "flagged as sensitive").
_CONTENT_POLICY_WORDS: Final = re.compile(
    r"nsfw|content[ _-]?polic|safety[ _-]?(check|filter|system)|unsafe|sensitive content|flagged as|"
    r"inappropriate|moderation",
    re.IGNORECASE,
)

# A plain-string failure carries no `retryable` flag, yet Eachlabs' own example of one is transient ("This model
# is temporarily rate limited. Retry shortly.", §2.6): a small heuristic reads the words that say "try later".
_TRANSIENT_WORDS: Final = re.compile(r"temporar|\bretr(y|ie)|rate[ _-]?limit", re.IGNORECASE)

_DEFAULT_NUM_OUTPUTS: Final = 1
"""``num_outputs`` when the input leaves it out (§3.1)."""


# ------------------------------------------------------------------------------------------------- create


def parse_create(response: HttpResponse) -> str:
    """The ``predictionID`` of a create answer (§2.2), or the typed error of a refused create (§2.3)."""
    request_id = response.header("x-request-id")
    if not 200 <= response.status < 300:
        raise http_error(response, request_id=request_id)
    body = json_object(response, "the create request", request_id)
    prediction_id = body.get("predictionID")
    # The seed page treats any `status` other than "success" as a failure of the create.
    if body.get("status", "success") != "success" or not isinstance(prediction_id, str) or not prediction_id:
        raise invalid_response(response, "the create request (no predictionID)", request_id)
    return prediction_id


# -------------------------------------------------------------------------------------------------- polls


@attrs.frozen
class PredictionSnapshot:
    """One poll's view of a prediction that has not failed."""

    prediction_id: str
    status: str
    """The status as Eachlabs spelt it."""
    phase: Literal["queued", "running", "succeeded"]
    """``queued`` (created/starting, or a status we do not know: keep polling), ``running``, ``succeeded``."""
    image_urls: tuple[str, ...] = ()
    """The output URLs of a success, in order."""
    cost: Decimal | None = None
    """``metrics.cost`` in USD, exact, when reported."""
    predict_time: float | None = None
    """``metrics.predict_time`` in seconds, when reported."""
    seed: int | None = None
    """The ``seed`` the prediction ran with, from the echoed ``input`` (``None`` when random)."""
    requested_images: int = _DEFAULT_NUM_OUTPUTS
    """``num_outputs`` from the echoed ``input``."""
    safety_checker: bool = True
    """Whether the safety checker was on (``disable_safety_checker`` not true): it drops flagged images."""
    raw: Any = attrs.field(default=None, repr=False)
    """The body as received."""

    @property
    def finished(self) -> bool:
        """Whether the prediction succeeded (failures raise instead of giving a snapshot)."""
        return self.phase == "succeeded"


def _integer(value: Any) -> int | None:
    # The input echo holds whatever the caller sent; Eachlabs' own snippets send numbers as strings (§3.1).
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    return None


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _output_urls(output: Any) -> tuple[str, ...] | None:
    """A success's ``output``: a list of URLs, or one URL string (§2.4); ``None`` when it is neither."""
    if output is None or output == "":
        return ()
    if isinstance(output, str):
        return (output,)
    if isinstance(output, list) and all(isinstance(item, str) for item in output):
        return tuple(item for item in output if item)
    return None


def parse_prediction(response: HttpResponse, prediction_id: str) -> PredictionSnapshot:
    """A poll's answer (§2.4–§2.7): a snapshot while queued, running or succeeded; a typed error otherwise.

    Raises the HTTP error of a refused poll (401, 404, 5xx), :class:`ProviderUnavailableError` with code
    ``invalid_response`` for a body that is not a prediction, and the failure of a failed or cancelled
    prediction (see :func:`failure_error`).
    """
    if not 200 <= response.status < 300:
        raise http_error(response, request_id=prediction_id)
    body = json_object(response, f"the poll of prediction {prediction_id}", prediction_id)
    status = body.get("status")
    if not isinstance(status, str) or not status:
        raise invalid_response(response, f"the poll of prediction {prediction_id} (no status)", prediction_id)
    # A status we do not know is not terminal: keep polling (§2.5).
    phase = _STATUS_TO_PHASE.get(status.lower(), "queued")
    if phase == "failed" or phase == "cancelled":
        raise failure_error(body, prediction_id, status=response.status)
    fields: dict[str, Any] = {"prediction_id": prediction_id, "status": status, "raw": body}
    model_input = _object(body.get("input"))
    fields["seed"] = _integer(model_input.get("seed"))
    fields["requested_images"] = _integer(model_input.get("num_outputs")) or _DEFAULT_NUM_OUTPUTS
    fields["safety_checker"] = model_input.get("disable_safety_checker") is not True
    if phase != "succeeded":
        # In flight `output` and `metrics` are undocumented (§2.4, §7): whatever they hold is ignored.
        return PredictionSnapshot(phase=phase, **fields)
    urls = _output_urls(body.get("output"))
    if urls is None:
        raise invalid_response(response, f"the poll of prediction {prediction_id} (output is not URLs)",
                                prediction_id)
    metrics = _object(body.get("metrics"))
    predict_time = _number(metrics.get("predict_time"))
    return PredictionSnapshot(phase="succeeded", image_urls=urls, cost=_number(metrics.get("cost")),
                              predict_time=None if predict_time is None else float(predict_time), **fields)


def _failure_text(output: Any) -> str | None:
    if isinstance(output, str) and output.strip():
        return output.strip()
    if isinstance(output, list):
        # "some legacy integrations preserve an object or array" (§2.6): the first readable item.
        for item in output:
            text = _failure_text(item) if not isinstance(item, dict) else _failure_text(item.get("error"))
            if text:
                return text
    return None


def failure_error(body: Mapping[str, Any], prediction_id: str, *, status: int | None = 200) -> ProviderError:
    """The typed error of a prediction that ended in ``error``/``failed`` or was cancelled (§2.5, §2.6, §2.8).

    * cancelled → :class:`GenerationFailedError`, code ``cancelled``;
    * a classified envelope → its ``error_code`` and ``retryable``; input refusals (INPUT_VALIDATION_ERROR,
      INPUT_DOWNLOAD_ERROR, PROVIDER_BAD_REQUEST, PROVIDER_REJECTED) → :class:`ProviderRejectedError`, the
      rest → :class:`GenerationFailedError`;
    * a plain string → :class:`GenerationFailedError` with that message, retryable when it says so
      ("temporarily", "retry", "rate limit");
    * a message that names a safety filter (NSFW, content policy ...) → :class:`ContentPolicyError`.
    """
    state = str(body.get("status", "")).lower()
    raw = dict(body)
    if _STATUS_TO_PHASE.get(state) == "cancelled":
        return GenerationFailedError(f"prediction {prediction_id} was cancelled", provider=PROVIDER, status=status,
                                     code="cancelled", request_id=prediction_id, raw=raw)
    output = body.get("output")
    code: str | None = None
    retryable: bool | None = None
    if isinstance(output, dict):
        error_code = output.get("error_code")
        code = error_code if isinstance(error_code, str) and error_code else None
        headline, detail = output.get("error"), output.get("error_message")
        parts = [str(part) for part in (headline, detail) if part]
        message = ": ".join(dict.fromkeys(parts)) or "the prediction failed"
        flag = output.get("retryable")
        retryable = flag if isinstance(flag, bool) else None
    else:
        fallback = body.get("error") or body.get("message")  # not in any spec; read defensively (§2.6)
        message = _failure_text(output) or (str(fallback) if fallback else "the prediction failed")
        # No flag and no code: the words decide (§2.6, "This model is temporarily rate limited. Retry shortly.").
        retryable = _TRANSIENT_WORDS.search(message) is not None
    if retryable is None:
        retryable = code in _RETRYABLE_ERROR_CODES
    error_class = _ERROR_CODE_TO_ERROR.get(code or "", GenerationFailedError)
    if code not in _NOT_CONTENT_POLICY_CODES and _CONTENT_POLICY_WORDS.search(message):
        error_class = ContentPolicyError
    return error_class(message, provider=PROVIDER, status=status, code=code, request_id=prediction_id,
                       retryable=retryable, raw=raw)


# ------------------------------------------------------------------------------------------------- upload


@attrs.frozen
class PresignedUpload:
    """Where to PUT a file and where it will be served (``POST /v1/upload/presign``, §2.11)."""

    presigned_url: str
    public_url: str
    required_headers: Mapping[str, str] = attrs.field(factory=dict)


def parse_presign(response: HttpResponse) -> PresignedUpload:
    """The presign answer (§2.11), or the typed error of a refused presign (400, 401, 500)."""
    request_id = response.header("x-request-id")
    if not 200 <= response.status < 300:
        raise http_error(response, request_id=request_id)
    body = json_object(response, "the upload presign request", request_id)
    presigned, public = body.get("presigned_url"), body.get("public_url")
    headers = body.get("required_headers") or {}
    if not (isinstance(presigned, str) and presigned and isinstance(public, str) and public
            and isinstance(headers, dict)):
        raise invalid_response(response, "the upload presign request", request_id)
    return PresignedUpload(presigned, public, {str(name): str(value) for name, value in headers.items()})
