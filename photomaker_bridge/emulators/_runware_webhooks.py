"""Webhook delivery for tasks sent with ``webhookURL`` (runware.md §4.3).

"For batch requests with multiple results, each completed item triggers a separate webhook call", and a
non-2xx answer is retried with a backoff of 250 ms doubling up to 8 s. The emulator never leaves the
machine: it posts only to loopback addresses, and counts a webhook aimed anywhere else as undeliverable.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from ._runware_jobs import Job

if TYPE_CHECKING:
    from ._runware_core import RunwareEmulator

__all__ = ["deliver_webhooks"]


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


async def _post(emulator: RunwareEmulator, session: aiohttp.ClientSession, url: str,
                body: dict[str, Any]) -> None:
    delay = 0.25
    for attempt in range(emulator.options.webhook_max_attempts):
        try:
            async with session.post(url, json=body) as response:
                if 200 <= response.status < 300:
                    emulator.state.counters["webhooks_delivered"] += 1
                    return
        except (aiohttp.ClientError, OSError):
            pass
        if attempt + 1 < emulator.options.webhook_max_attempts:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 8.0)
    emulator.state.counters["webhook_failures"] += 1


async def deliver_webhooks(emulator: RunwareEmulator, job: Job) -> None:
    """POST each image of ``job`` to its ``webhookURL`` as it becomes ready, then its error if it fails."""
    url = job.spec.webhook_url
    if url is None:
        return
    if not _is_loopback(urlsplit(url).hostname):
        emulator.state.counters["webhooks_undeliverable"] += 1
        return
    if job.fate == "stuck":
        return
    wrapped = emulator.options.webhook_body == "wrapped"
    async with aiohttp.ClientSession() as session:
        for index in range(len(job.image_uuids)):
            await _sleep_until(job.image_ready_at(index))
            item = job.result_item(index, emulator.media)
            await _post(emulator, session, url, {"data": [item]} if wrapped else item)
        if job.fate == "fail":
            await _sleep_until(job.finished_at)
            await _post(emulator, session, url, {"errors": [job.error()]})
        else:
            await _sleep_until(job.finished_at)
    emulator.count_end(job)
