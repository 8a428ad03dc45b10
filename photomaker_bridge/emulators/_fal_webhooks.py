"""fal's webhooks: the body POSTed to ``fal_webhook`` when a request completes, its signature, its retries.

fal.md §1.12 (docs.fal.ai "Webhooks"): when a request submitted with ``?fal_webhook=<url>`` is done, fal POSTs
``{"request_id", "gateway_request_id", "status": "OK", "payload": <result>}`` (or ``"status": "ERROR"`` with
``"error": "Invalid status code: <n>"`` and the error body as ``payload``) and retries a failed delivery "10
times in the span of 2 hours". Each delivery is signed with Ed25519: headers ``X-Fal-Webhook-Request-Id``,
``X-Fal-Webhook-User-Id``, ``X-Fal-Webhook-Timestamp`` and ``X-Fal-Webhook-Signature`` (hex) over
``"\\n".join([request_id, user_id, timestamp, sha256_hex(body)])``, verifiable with the public keys of fal's
JWKS, which the emulator serves at ``/.well-known/jwks.json``.

The emulator never leaves the machine: a webhook URL that is not loopback is counted
(``webhooks_undeliverable``) and never contacted.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import attrs

from ._common import is_loopback
from ._fal_jobs import Job

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from .fal import FalEmulator

__all__ = ["WebhookSigner", "deliver_webhook", "webhook_body"]

_CHECK_SECONDS = 0.02
"""How often a pending webhook checks whether its request has completed (requests settle lazily)."""


def webhook_body(job: Job, origin: str) -> dict[str, Any]:
    """What fal POSTs for a completed request (docs' examples, fal.md §1.12)."""
    final = job.final
    assert final is not None
    body: dict[str, Any] = {"request_id": job.request_id, "gateway_request_id": job.request_id}
    if final.status == 200:
        body.update(status="OK", payload=final.answer_body(origin))
    else:
        # A cancelled request (499 client_cancelled) is reported like any other error [UNVERIFIED]: whether fal
        # calls the webhook for it is not documented.
        body.update(status="ERROR", error=f"Invalid status code: {final.status}", payload=final.answer_body(origin))
    return body


@attrs.define
class WebhookSigner:
    """Ed25519 signing of webhook bodies, and the JWKS that publishes the public key.

    Needs the ``cryptography`` package (the ``emulators`` and ``dev`` extras); without it ``available`` is
    false and webhooks go out unsigned.
    """

    user_id: str
    _key: Ed25519PrivateKey | None = attrs.field(init=False, default=None)
    available: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        try:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        except ImportError:  # pragma: no cover - exercised only without the extra
            return
        self._key = Ed25519PrivateKey.generate()
        self.available = True

    def jwks(self) -> dict[str, Any]:
        """``{"keys": [...]}`` with the public key as an OKP/Ed25519 JWK (``x`` is base64url, RFC 8037)."""
        if self._key is None:
            return {"keys": []}
        raw = self._key.public_key().public_bytes_raw()
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "use": "sig", "alg": "EdDSA"}]}

    def headers(self, request_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
        """The four ``X-Fal-Webhook-*`` headers for ``body`` (none when signing is unavailable)."""
        if self._key is None:
            return {}
        timestamp = str(int(time.time() if now is None else now))
        message = "\n".join([request_id, self.user_id, timestamp, hashlib.sha256(body).hexdigest()])
        return {
            "X-Fal-Webhook-Request-Id": request_id,
            "X-Fal-Webhook-User-Id": self.user_id,
            "X-Fal-Webhook-Timestamp": timestamp,
            "X-Fal-Webhook-Signature": self._key.sign(message.encode()).hex(),
        }


async def deliver_webhook(emulator: FalEmulator, job: Job, origin: str) -> None:
    """Wait for ``job`` to complete, then POST its webhook, retrying on the configured schedule."""
    url = job.webhook_url
    counters = emulator.state.counters
    if not url:
        return
    if not is_loopback(urlsplit(url).hostname):
        counters["webhooks_undeliverable"] += 1
        return
    while emulator.phase(job) != "COMPLETED":
        await asyncio.sleep(_CHECK_SECONDS)
    body = json.dumps(webhook_body(job, origin)).encode()
    options = emulator.options
    delays = (0.0, *options.webhook_retry_delays)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=options.webhook_timeout_seconds)) as session:
        for attempt, delay in enumerate(delays):
            await asyncio.sleep(delay)
            headers: Mapping[str, str] = {"Content-Type": "application/json",
                                          **emulator.signer.headers(job.request_id, body)}
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    if 200 <= response.status < 300:
                        counters["webhooks_delivered"] += 1
                        return
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass
            counters["webhooks_attempts_failed"] += 1
            if attempt == len(delays) - 1:
                counters["webhooks_failures"] += 1
