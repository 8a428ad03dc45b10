"""Downloading generated images on demand (``GeneratedImage.fetch`` / ``afetch``).

Failures become :class:`~photomaker_bridge.ProviderUnavailableError` (``code="download_failed"``), named after
the host that serves the image, with the HTTP status when there was one; the message leaves out the URL's
query string (signed URLs carry credentials there).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp
import requests

from .errors import ProviderUnavailableError

__all__ = ["afetch_bytes", "fetch_bytes"]


def _failure(url: str, detail: str, status: int | None = None) -> ProviderUnavailableError:
    parts = urlsplit(url)
    where = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return ProviderUnavailableError(f"could not download {where}: {detail}", provider=parts.hostname or "unknown",
                                    status=status, code="download_failed")


def fetch_bytes(url: str, *, timeout: float) -> bytes:
    """The body at ``url`` (sync)."""
    try:
        response = requests.get(url, timeout=timeout)
    except requests.RequestException as error:
        raise _failure(url, type(error).__name__) from error
    if response.status_code >= 400:
        raise _failure(url, f"HTTP {response.status_code}", response.status_code)
    return response.content


async def afetch_bytes(url: str, *, timeout: float) -> bytes:
    """The body at ``url`` (async)."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session, \
                session.get(url) as response:
            if response.status >= 400:
                raise _failure(url, f"HTTP {response.status}", response.status)
            return await response.read()
    except (TimeoutError, aiohttp.ClientError) as error:
        raise _failure(url, type(error).__name__) from error
