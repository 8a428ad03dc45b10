"""What the emulator sends out for a task: ``webhookURL`` POSTs and ``uploadEndpoint`` PUTs.

Webhooks (runware.md §4.3): "for batch requests with multiple results, each completed item triggers a separate
webhook call", and a non-2xx answer is retried with a backoff of 250 ms doubling up to 8 s.
Uploads (runware.md SEED ``uploadEndpoint``): "the generated content will be automatically uploaded using the HTTP
PUT method. The raw binary data of the media file is sent directly as the request body"; each image is PUT to
the one URL as soon as it is ready (with several images, each PUT replaces the last, as with a presigned URL),
with the image's MIME type as ``Content-Type`` and the webhook's retry policy [UNVERIFIED: no retry rule is
documented for uploads].

The emulator never leaves the machine: it sends only to loopback addresses, and counts a URL aimed anywhere
else as undeliverable (``webhooks_undeliverable``, ``upload_endpoint_undeliverable``).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from ._common import is_loopback
from ._runware_jobs import Job

if TYPE_CHECKING:
    from ._runware_core import RunwareEmulator

__all__ = ["deliver_webhooks", "put_uploads"]


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


async def _send(emulator: RunwareEmulator, session: aiohttp.ClientSession, method: str, url: str,
                attempts: int, event: str, **payload: Any) -> None:
    """Send one request, retrying a non-2xx answer or a connection failure; count ``<event>_delivered`` or
    ``<event>_failures``."""
    delay = 0.25
    for attempt in range(attempts):
        try:
            async with session.request(method, url, **payload) as response:
                if 200 <= response.status < 300:
                    emulator.state.counters[f"{event}_delivered"] += 1
                    return
        except (aiohttp.ClientError, OSError):
            pass
        emulator.state.counters[f"{event}_attempts_failed"] += 1
        if attempt + 1 < attempts:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 8.0)
    emulator.state.counters[f"{event}_failures"] += 1


async def deliver_webhooks(emulator: RunwareEmulator, job: Job) -> None:
    """POST each image of ``job`` to its ``webhookURL`` as it becomes ready, then its error if it fails."""
    url = job.spec.webhook_url
    if url is None:
        return
    if not is_loopback(urlsplit(url).hostname):
        emulator.state.counters["webhooks_undeliverable"] += 1
        return
    if job.fate == "stuck":
        return
    wrapped = emulator.options.webhook_body == "wrapped"
    attempts = emulator.options.webhook_max_attempts
    async with aiohttp.ClientSession() as session:
        for index in range(len(job.image_uuids)):
            await _sleep_until(job.image_ready_at(index))
            item = job.result_item(index, emulator.media)
            await _send(emulator, session, "POST", url, attempts, "webhooks",
                        json={"data": [item]} if wrapped else item)
        if job.fate == "fail":
            await _sleep_until(job.finished_at)
            await _send(emulator, session, "POST", url, attempts, "webhooks", json={"errors": [job.error()]})
        else:
            await _sleep_until(job.finished_at)
    emulator.count_end(job)


async def put_uploads(emulator: RunwareEmulator, job: Job) -> None:
    """PUT each image of ``job`` to its ``uploadEndpoint`` as it becomes ready."""
    url = job.spec.upload_endpoint
    if url is None or job.fate == "stuck":
        return
    if not is_loopback(urlsplit(url).hostname):
        emulator.state.counters["upload_endpoint_undeliverable"] += 1
        return
    async with aiohttp.ClientSession() as session:
        for index in range(len(job.image_uuids)):
            await _sleep_until(job.image_ready_at(index))
            data, content_type = job.image_data(index, emulator.media)
            await _send(emulator, session, "PUT", url, emulator.options.upload_max_attempts, "upload_endpoint",
                        data=data, headers={"Content-Type": content_type})
