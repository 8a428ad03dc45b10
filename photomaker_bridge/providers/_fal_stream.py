"""fal's status stream (docs/protocols/fal.md §1.5): ``GET .../requests/{id}/status/stream`` answers with
server-sent events, one ``data:`` line with a status object per change, closed after ``COMPLETED``, with a comment
line every 15 s while nothing changes. fal-js follows a request this way; ``fal_client`` polls instead.

The bridge listens to it while it knows no job length (a new client: polling around a guess either wastes calls
or notices late, docs/architecture.md "Polling"): a listen ends at each change of state, so that each change — the
completion included — is seen the moment fal sends it, in about two requests per job. A listen is also bounded
(``FalStatusStream.seconds``): the performer returns the statuses read so far, and the flow listens again. The
parsing is pure (:class:`EventReader`, :class:`Listen`); the two readers below are the only I/O.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Final

import httpx

from ._fal_parse import FalStatus, parse_status

__all__ = ["STREAM_SUFFIX", "EventReader", "Listen", "aread_stream", "read_stream"]

STREAM_SUFFIX: Final = "/stream"
"""Appended to a request's status URL (§1.5)."""


class EventReader:
    """Server-sent events, fed line by line: each event's ``data:`` lines joined, comments skipped (the SSE
    format: an event ends at a blank line; a line starting with ``:`` is a comment)."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self._data: list[str] = []

    def feed(self, line: str) -> FalStatus | None:
        """The status an event ends with at ``line``, if it ends one."""
        if line.startswith(":"):
            return None
        if line.startswith("data:"):
            self._data.append(line[5:].removeprefix(" "))
            return None
        if line.strip() or not self._data:
            return None  # another field (event:, id:, retry:) or a blank line between comments
        text, self._data = "\n".join(self._data), []
        try:
            body = json.loads(text)
        except json.JSONDecodeError:
            body = text
        return parse_status(body, request_id=self.request_id)


class Listen:
    """One listen's statuses, fed line by line (what both readers share): over once a status's state is no longer
    ``known``, the state the flow last saw."""

    def __init__(self, request_id: str, known: str) -> None:
        self.reader = EventReader(request_id)
        self.known = known
        self.statuses: list[FalStatus] = []

    def over(self, line: str) -> bool:
        """Take ``line``; whether the listen has what it waited for."""
        status = self.reader.feed(line)
        if status is None:
            return False
        self.statuses.append(status)
        return status.state != self.known


def _params(with_logs: bool) -> dict[str, str]:
    return {"logs": "1"} if with_logs else {}


def read_stream(client: httpx.Client, status_url: str, request_id: str, with_logs: bool, seconds: float,
                known: str) -> tuple[FalStatus, ...]:
    """Listen to the stream until a status's state is no longer ``known`` (the state the flow last saw), or for
    about ``seconds`` (a read waits at most that long; the listen ends at the first line after it): the statuses
    read, ending with the new state (``COMPLETED`` when the request completed). A state change ends the listen so
    that the flow reports it at once; log lines within one state come with it. No answer at all (no status line
    and headers) is an error, for the flow's retry policy: only a quiet open stream ends a listen quietly."""
    listen = Listen(request_id, known)
    ends = time.monotonic() + seconds
    with client.stream("GET", status_url + STREAM_SUFFIX, params=_params(with_logs),
                       timeout=httpx.Timeout(30.0, read=max(seconds, 1.0))) as response:
        try:
            for line in response.iter_lines():
                if listen.over(line) or time.monotonic() >= ends:
                    break
        except httpx.ReadTimeout:
            pass  # nothing new within the listen: what was read stands
    return tuple(listen.statuses)


async def aread_stream(client: httpx.AsyncClient, status_url: str, request_id: str, with_logs: bool,
                       seconds: float, known: str) -> tuple[FalStatus, ...]:
    """The async twin of :func:`read_stream` (the listen ends after ``seconds`` exactly)."""
    listen = Listen(request_id, known)
    async with client.stream("GET", status_url + STREAM_SUFFIX, params=_params(with_logs),
                             timeout=httpx.Timeout(30.0)) as response:
        try:
            async with asyncio.timeout(seconds):
                async for line in response.aiter_lines():
                    if listen.over(line):
                        break
        except TimeoutError:
            pass  # the listen is over: what was read stands
    return tuple(listen.statuses)
