"""Downloading generated images on demand (``GeneratedImage.fetch`` / ``afetch``)."""

from __future__ import annotations

import aiohttp
import requests

__all__ = ["afetch_bytes", "fetch_bytes"]


def fetch_bytes(url: str, *, timeout: float) -> bytes:
    """The body at ``url`` (sync); raises ``requests.HTTPError`` for a non-2xx answer."""
    response = requests.get(url, timeout=timeout)
    response.raise_for_status()
    return response.content


async def afetch_bytes(url: str, *, timeout: float) -> bytes:
    """The body at ``url`` (async); raises ``aiohttp.ClientResponseError`` for a non-2xx answer."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session, \
            session.get(url) as response:
        response.raise_for_status()
        return await response.read()
