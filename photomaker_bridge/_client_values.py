"""The client's pure checks and result helpers: a timeout's value, a webhook URL, downloaded bytes put into a
result. No I/O; shared by both clients (``_client_base``, ``_sync_client``, ``_async_client``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from urllib.parse import urlsplit

import attrs

from .errors import ConfigurationError, InvalidRequestError, ProviderError
from .result import BridgeWarning, GeneratedImage, PhotoMakerResult

__all__ = ["check_timeout", "check_webhook_url", "with_data"]


def check_timeout(timeout: object, *, name: str = "timeout") -> float | None:
    """``timeout`` as seconds, or ``None`` (no deadline); :class:`ConfigurationError` naming the value unless it is a
    finite positive number (``bool`` is refused: ``True`` is not a duration)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ConfigurationError(f"{name} must be a number of seconds (int or float) or None, got "
                                 f"{type(timeout).__name__} {timeout!r}")
    if not math.isfinite(timeout) or timeout <= 0:
        raise ConfigurationError(f"{name} must be a finite positive number of seconds (or None for no deadline), "
                                 f"got {timeout!r}")
    return float(timeout)


def check_webhook_url(value: object) -> str:
    """``value`` if it is an absolute ``http(s)`` URL with a host; else :class:`InvalidRequestError` naming
    ``webhook_url`` (checked before anything is uploaded or submitted)."""
    allowed = "an absolute http:// or https:// URL the provider can POST to"
    if not isinstance(value, str):
        raise InvalidRequestError("webhook_url", value, allowed)
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequestError("webhook_url", value, allowed)
    return value.strip()


def with_data(result: PhotoMakerResult, payloads: Sequence[bytes | ProviderError]) -> PhotoMakerResult:
    """``result`` with each image's downloaded bytes; an image that failed keeps its URL, with a warning."""
    images: list[GeneratedImage] = []
    warnings = list(result.warnings)
    for index, (image, payload) in enumerate(zip(result.images, payloads, strict=True)):
        if isinstance(payload, ProviderError):
            images.append(image)
            warnings.append(BridgeWarning(field=f"images[{index}]", asked="download", sent=None,
                                          provider=result.provider, reason=f"the image stays a URL: {payload.message}"))
        else:
            images.append(attrs.evolve(image, data=payload))
    return attrs.evolve(result, images=images, warnings=warnings)
