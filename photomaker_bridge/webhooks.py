"""Reading provider webhooks: what fal and Runware POST to a ``webhook_url`` given to ``submit``/``generate``.

``parse_webhook(provider, body)`` turns one delivery into the same :class:`~photomaker_bridge.PhotoMakerResult`
that :meth:`~photomaker_bridge.Bridge.result` returns (or raises the same typed error), and
``verify_fal_signature`` checks fal's Ed25519 signature before the body is trusted::

    from photomaker_bridge.webhooks import fetch_fal_jwks, parse_webhook, verify_fal_signature

    jwks = fetch_fal_jwks()                      # cache it: fal's keys change rarely
    verify_fal_signature(body, headers, jwks)    # WebhookVerificationError when it does not check out
    result = parse_webhook("fal", body)

What each provider sends (``docs/protocols/fal.md`` §1.12, ``docs/protocols/runware.md`` §4.3):

* **fal** POSTs once per request when it is done: ``{"request_id", "gateway_request_id", "status": "OK",
  "payload": <the result>}``, or ``"status": "ERROR"`` with ``"error": "Invalid status code: <n>"`` and the
  error body as ``payload``. A delivery may come more than once: deduplicate by ``request_id``. The body has
  no billed seconds, so the result's ``cost`` is ``None`` (``Bridge.result`` on the handle estimates it).
* **Runware** POSTs once per image, the task's result item (flat, or wrapped in ``data`` as the synchronous
  answers are), or ``{"errors": [...]}`` for a failed task: each delivery parses to a result holding the
  image(s) in it; deduplicate by the image's ``provider_image_id``. The cost is Runware's own.
* **Eachlabs** documents webhooks for Workflows V2 only, not predictions (``docs/protocols/eachlabs.md`` §2.10):
  the bridge neither asks for nor parses them.

No key is needed and nothing is sent, except by :func:`fetch_fal_jwks`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from collections.abc import Mapping
from typing import Any, Final

from ._http import HttpResponse
from .errors import ConfigurationError, GenerationFailedError, ProviderError, WebhookVerificationError
from .providers._fal_parse import error_for_answer, parse_output
from .providers._runware_parsing import parse_answer
from .providers._runware_tasks import TaskCollector, TaskInfo, summarize
from .result import PhotoMakerResult

__all__ = ["FAL_JWKS_URL", "FAL_SIGNATURE_TOLERANCE_SECONDS", "fetch_fal_jwks", "parse_webhook",
           "verify_fal_signature"]

FAL_JWKS_URL: Final = "https://rest.alpha.fal.ai/.well-known/jwks.json"
"""Where fal publishes the public keys of its webhook signatures (fal.md §1.12)."""

FAL_SIGNATURE_TOLERANCE_SECONDS: Final = 300.0
"""How far a delivery's timestamp may be from now: fal's guide checks "within 5 minutes" (fal.md §1.12)."""

_SIGNATURE_HEADERS: Final = ("x-fal-webhook-request-id", "x-fal-webhook-user-id", "x-fal-webhook-timestamp",
                             "x-fal-webhook-signature")
_STATUS_IN_ERROR: Final = re.compile(r"(\d{3})")


def parse_webhook(provider: str, body: bytes | str | Mapping[str, Any]) -> PhotoMakerResult:
    """One webhook delivery of ``provider`` (``"fal"`` or ``"runware"``) as a :class:`PhotoMakerResult`.

    ``body`` is the request body as received (bytes or text) or already parsed JSON. A delivery reporting a
    failure raises the typed :class:`~photomaker_bridge.ProviderError` that polling would have raised; a body
    that is not the provider's webhook raises :class:`~photomaker_bridge.GenerationFailedError` with it as
    ``raw``. ``"eachlabs"`` and unknown names raise :class:`~photomaker_bridge.ConfigurationError`.
    """
    if provider == "fal":
        return _parse_fal(_json(provider, body))
    if provider == "runware":
        return _parse_runware(_json(provider, body), body)
    if provider == "eachlabs":
        raise ConfigurationError("Eachlabs documents webhooks for Workflows V2 only, not for predictions "
                                 "(docs/protocols/eachlabs.md §2.10): there is no prediction webhook to parse")
    raise ConfigurationError(f"no webhook format known for provider {provider!r}; known: 'fal', 'runware'")


def _json(provider: str, body: bytes | str | Mapping[str, Any]) -> Any:
    if isinstance(body, Mapping):
        return body
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise GenerationFailedError(f"the {provider} webhook body is not JSON: {error}", provider=provider,
                                    raw=body if isinstance(body, str) else body[:2000]) from error


def _parse_fal(body: Any) -> PhotoMakerResult:
    if not isinstance(body, Mapping) or not isinstance(body.get("request_id"), str):
        raise GenerationFailedError("not a fal webhook body (no request_id)", provider="fal", raw=body)
    request_id: str = body["request_id"]
    payload = body.get("payload")
    if body.get("status") == "OK":
        if payload is None:
            # fal sends payload null with a payload_error when the result was not JSON (fal.md §1.12).
            raise GenerationFailedError(f"fal completed the request but could not send its result: "
                                        f"{body.get('payload_error') or 'no payload'}", provider="fal",
                                        request_id=request_id, raw=body)
        output = parse_output(payload, request_id=request_id)
        return PhotoMakerResult(images=output.images, provider="fal", request_ids=(request_id,), seed=output.seed,
                                raw=[payload], requested_images=None)
    if body.get("status") == "ERROR":
        match = _STATUS_IN_ERROR.search(str(body.get("error") or ""))
        status = int(match.group(1)) if match else 500
        error = error_for_answer(status, payload, request_id=request_id)
        error.raw = body
        raise error
    raise GenerationFailedError(f"a fal webhook with an unknown status {body.get('status')!r}", provider="fal",
                                request_id=request_id, raw=body)


def _parse_runware(body: Any, original: bytes | str | Mapping[str, Any]) -> PhotoMakerResult:
    if not isinstance(body, Mapping):
        raise GenerationFailedError("not a Runware webhook body (not a JSON object)", provider="runware", raw=body)
    # runware.md §4.3 [conflict]: the flat task object, or the synchronous answer's {"data": [...]} shape.
    wrapped = body if any(key in body for key in ("data", "errors", "error")) else {"data": [dict(body)]}
    answer = parse_answer(HttpResponse(200, {}, json.dumps(wrapped).encode()))
    task_uuids = list(dict.fromkeys(
        [item.task_uuid for item in answer.items if item.task_uuid]
        + [uuid for uuid, _ in answer.failures if uuid]))
    if not task_uuids:
        errors = [error for _, error in answer.failures]
        if errors:
            raise errors[0]
        raise GenerationFailedError("a Runware webhook naming no taskUUID", provider="runware", raw=body)
    collectors = []
    for task_uuid in task_uuids:
        collector = TaskCollector(TaskInfo(task_uuid=task_uuid, known=False))
        collector.add(answer)
        collectors.append(collector)
    summary = summarize(collectors, requested=None)
    if summary.error is not None:
        raise summary.error
    seeds = [image.seed for image in summary.images if image.seed is not None]
    return PhotoMakerResult(images=summary.images, provider="runware", request_ids=tuple(task_uuids),
                            seed=seeds[0] if seeds else None, cost=summary.cost, warnings=summary.warnings,
                            raw=[body], requested_images=None)


def verify_fal_signature(body: bytes, headers: Mapping[str, str], jwks: Mapping[str, Any], *,
                         now: float | None = None,
                         tolerance_seconds: float = FAL_SIGNATURE_TOLERANCE_SECONDS) -> None:
    """Check a fal webhook delivery: its four ``X-Fal-Webhook-*`` headers, a timestamp within
    ``tolerance_seconds`` of ``now``, and an Ed25519 signature over ``request_id \\n user_id \\n timestamp \\n
    sha256_hex(body)`` made by one of the keys in ``jwks`` (fal.md §1.12). Returns nothing when it checks out;
    raises :class:`~photomaker_bridge.WebhookVerificationError` saying why when it does not.

    ``body`` must be the exact bytes received (re-serialised JSON would not match). ``jwks`` is fal's
    ``{"keys": [...]}`` (:func:`fetch_fal_jwks`). Needs the ``cryptography`` package (the ``webhooks`` extra).
    """
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise ConfigurationError("verifying fal webhooks needs the cryptography package: "
                                 "pip install 'photomaker-bridge[webhooks]'") from error
    lowered = {str(name).lower(): str(value) for name, value in headers.items()}
    missing = [name for name in _SIGNATURE_HEADERS if not lowered.get(name)]
    if missing:
        raise WebhookVerificationError(f"the fal webhook lacks the header(s) {', '.join(missing)}")
    request_id, user_id, timestamp, signature = (lowered[name] for name in _SIGNATURE_HEADERS)
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise WebhookVerificationError(f"the fal webhook timestamp {timestamp!r} is not a number") from None
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_seconds:
        raise WebhookVerificationError(f"the fal webhook timestamp is {current - sent_at:.0f} s from now, beyond "
                                       f"the tolerance of {tolerance_seconds:.0f} s (a replay, or a wrong clock)")
    try:
        signature_bytes = bytes.fromhex(signature)
    except ValueError:
        raise WebhookVerificationError("the fal webhook signature is not hexadecimal") from None
    message = "\n".join([request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()]).encode()
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list) or not keys:
        raise WebhookVerificationError("the JWKS holds no keys to verify the fal webhook with")
    for key in keys:
        if not isinstance(key, Mapping) or key.get("kty") != "OKP" or key.get("crv") != "Ed25519":
            continue
        try:
            raw = base64.urlsafe_b64decode(str(key.get("x", "")) + "=" * (-len(str(key.get("x", ""))) % 4))
            Ed25519PublicKey.from_public_bytes(raw).verify(signature_bytes, message)
        except (InvalidSignature, ValueError, binascii.Error):
            continue
        return
    raise WebhookVerificationError("no key of the JWKS made the fal webhook's signature: do not trust its body")


def fetch_fal_jwks(url: str = FAL_JWKS_URL, *, timeout: float = 10.0) -> dict[str, Any]:
    """fal's published webhook keys (``{"keys": [...]}``) from ``url`` (an emulator's
    ``/.well-known/jwks.json`` in tests). Raises :class:`~photomaker_bridge.ProviderError` when they cannot be
    read. Keep the answer and fetch again when a signature stops verifying: the keys rotate rarely."""
    import requests

    try:
        response = requests.get(url, timeout=timeout)
    except requests.RequestException as error:
        raise ProviderError(f"could not read fal's webhook keys from {url}: {type(error).__name__}",
                            provider="fal") from error
    try:
        keys = response.json()
    except ValueError:
        keys = None
    if response.status_code != 200 or not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
        raise ProviderError(f"fal's webhook keys at {url} answered HTTP {response.status_code} without a key list",
                            provider="fal", status=response.status_code, raw=response.text[:2000])
    return keys
