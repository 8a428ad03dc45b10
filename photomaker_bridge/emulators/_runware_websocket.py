"""Runware's WebSocket transport: handshake, ping/pong, one frame per image, session resume (runware.md §3).

Every client frame is a JSON array of tasks; every server frame is an object with ``data`` or ``errors``.
The first task must be ``authentication``; the answer carries a ``connectionSessionUUID``. Results belong to
the *session*, not the socket: if the socket goes away, undelivered frames wait in the session for
``session_buffer_seconds`` and are replayed when a client authenticates again with that
``connectionSessionUUID`` (docs/protocols/runware.md §3.4, from the legacy SDK's repository docs).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import attrs
from aiohttp import WSCloseCode, WSMsgType, web

from ._runware_core import EMULATOR_KEY, RunwareEmulator, is_dry_run
from ._runware_errors import error_item, errors_response
from ._runware_jobs import Job

__all__ = ["Connection", "Session", "websocket_handler"]

MAX_FRAME_BYTES = 64 * 1024 * 1024
"""Largest client frame accepted: four inline face photos fit easily (the real limit is unknown)."""


@attrs.define(eq=False)
class Connection:
    """One open socket: serialises its writes and remembers the last traffic for the idle timeout."""

    emulator: RunwareEmulator
    socket: web.WebSocketResponse
    lock: asyncio.Lock = attrs.field(factory=asyncio.Lock)
    session: Session | None = None
    last_activity: float = attrs.field(factory=time.monotonic)

    async def send(self, payload: dict[str, Any]) -> bool:
        """Send one frame; ``False`` if the socket is gone."""
        text = json.dumps(payload)
        async with self.lock:
            if self.socket.closed:
                return False
            try:
                await self.socket.send_str(text)
            except (ConnectionError, RuntimeError):
                return False
        self.last_activity = time.monotonic()
        self.emulator.state.counters["ws_frames_sent"] += 1
        return True


@attrs.define(eq=False)
class Session:
    """An authenticated session: the socket currently attached, and frames waiting for one."""

    session_uuid: str
    connection: Connection | None = None
    outbox: list[dict[str, Any]] = attrs.field(factory=list)
    detached_at: float | None = None

    async def deliver(self, payload: dict[str, Any]) -> None:
        """Send a frame on the attached socket, or keep it for a resume."""
        if self.connection is not None and await self.connection.send(payload):
            return
        self.outbox.append(payload)

    async def attach(self, connection: Connection) -> None:
        """Bind a socket to the session and replay what it missed, oldest first."""
        self.connection = connection
        self.detached_at = None
        connection.session = self
        while self.outbox and self.connection is connection:
            payload = self.outbox.pop(0)
            if not await connection.send(payload):
                self.outbox.insert(0, payload)
                break

    def detach(self, connection: Connection) -> None:
        """Forget a socket that closed, if it is still the attached one."""
        if self.connection is connection:
            self.connection = None
            self.detached_at = time.monotonic()


async def _stream_job(emulator: RunwareEmulator, session: Session, job: Job) -> None:
    """Push a sync job's images one frame each as they become ready, then its error if it fails.

    "The server pushes exactly numberResults frames", one per image (runware.md §3.2); a ``partial`` job
    pushes fewer, a stuck one nothing.
    """
    if job.fate == "stuck":
        return
    try:
        for index in range(len(job.image_uuids)):
            await asyncio.sleep(max(0.0, job.image_ready_at(index) - time.monotonic()))
            await session.deliver({"data": [job.result_item(index, emulator.media)]})
    except Exception as error:  # an emulator bug must reach the client as an error, not as a silent hang
        emulator.state.counters["internal_errors"] += 1
        await session.deliver({"errors": [error_item(
            "internalServerError", f"Internal server error: {error}", task_type=job.spec.task_type,
            task_uuid=job.spec.task_uuid)]})
        return
    await asyncio.sleep(max(0.0, job.finished_at - time.monotonic()))
    emulator.count_end(job)
    if job.fate == "fail":
        await session.deliver({"errors": [job.error()]})


def _open_session(emulator: RunwareEmulator, requested: object) -> Session:
    """The session to attach: a live buffered one named by ``connectionSessionUUID``, else a new one."""
    now = time.monotonic()
    buffer_seconds = emulator.options.session_buffer_seconds
    for stale in [session for session in emulator.sessions.values()
                  if session.detached_at is not None and now - session.detached_at > buffer_seconds]:
        del emulator.sessions[stale.session_uuid]  # its buffered results are gone, as on the real service
    if isinstance(requested, str) and requested:
        session = emulator.sessions.get(requested)
        if session is not None:
            emulator.state.counters["ws_resumes"] += 1
            return session
        # An unknown or expired session UUID is echoed back on a fresh session (runware.md §9.1).
        session = Session(requested)
    else:
        session = Session(emulator.new_uuid())
    emulator.sessions[session.session_uuid] = session
    return session


async def _authenticate(emulator: RunwareEmulator, connection: Connection, task: dict[str, Any]) -> None:
    error = emulator.check_api_key(task.get("apiKey"))
    if error is not None:
        # The current failure shape; the legacy SDK recognises it by errors[i].taskType == "authentication"
        # (runware.md §3.1).
        await connection.send({"errors": [error]})
        if emulator.options.close_after_auth_failure:
            await connection.socket.close(code=WSCloseCode.POLICY_VIOLATION, message=b"authentication failed")
        return
    if connection.session is not None:
        connection.session.detach(connection)
    session = _open_session(emulator, task.get("connectionSessionUUID"))
    previous = session.connection
    if previous is not None and previous is not connection:
        previous.session = None
    await connection.send({"data": [{"taskType": "authentication",
                                     "connectionSessionUUID": session.session_uuid}]})
    await session.attach(connection)


async def _handle_frame(emulator: RunwareEmulator, connection: Connection, text: str, *, origin: str,
                        path: str, dry_run: bool) -> None:
    try:
        payload = json.loads(text)
    except ValueError:
        await connection.send({"errors": [error_item("invalidPayload", "The message is not valid JSON.")]})
        return
    if not isinstance(payload, list) or not payload:
        await connection.send({"errors": [error_item(
            "invalidPayload", "Each message must be a JSON array of task objects.")]})
        return
    for task in payload:
        task_type = task.get("taskType") if isinstance(task, dict) else None
        if task_type == "ping":
            # Pings are answered at any time, even before authentication completes: the legacy SDK sends its
            # first ping right after the auth frame, before the reply (runware.md §3.3).
            emulator.state.counters["pings"] += 1
            await connection.send({"data": [{"taskType": "ping", "pong": True}]})
            continue
        if task_type == "authentication":
            assert isinstance(task, dict)
            await _authenticate(emulator, connection, task)
            continue
        session = connection.session
        if session is None:
            # A task before a successful handshake. The real answer is [UNVERIFIED]; the legacy SDK treats
            # missingApiKey as an authentication problem (runware.md §6).
            task_uuid = task.get("taskUUID") if isinstance(task, dict) else None
            await connection.send({"errors": [error_item(
                "missingApiKey", "Authenticate first: the first message must be an authentication task.",
                parameter="apiKey", value_type="string",
                task_type=task_type if isinstance(task_type, str) else None,
                task_uuid=task_uuid if isinstance(task_uuid, str) else None)]})
            continue
        outcome = emulator.handle_task(task, origin=origin, path=path, dry_run=dry_run)
        if outcome.data:
            # An ACK, an upload or a getResponse answer: one frame, every item in it (runware.md §3.2).
            await session.deliver({"data": outcome.data})
        if outcome.errors:
            await session.deliver({"errors": outcome.errors})
        if outcome.job is not None:
            emulator.spawn(_stream_job(emulator, session, outcome.job))


async def _receive(connection: Connection, idle_timeout: float | None) -> Any:
    """The next message, or ``None`` when the connection has been idle for ``idle_timeout`` seconds."""
    while True:
        if idle_timeout is None:
            return await connection.socket.receive()
        remaining = idle_timeout - (time.monotonic() - connection.last_activity)
        if remaining <= 0:
            return None
        try:
            return await connection.socket.receive(timeout=remaining)
        except TimeoutError:
            continue


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    """The WebSocket endpoint (``/`` and ``/v1``)."""
    emulator = request.app[EMULATOR_KEY]
    socket = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES)
    if not socket.can_prepare(request).ok:
        return errors_response([error_item("invalidPayload", "This endpoint speaks WebSocket; send tasks with "
                                           "POST /v1 for REST.")], status=426)
    await socket.prepare(request)
    emulator.state.counters["ws_connections"] += 1
    emulator.sockets.add(socket)
    connection = Connection(emulator, socket)
    origin = f"{request.scheme}://{request.host}"
    # The legacy JS SDK's dryRun option connects to "...?sdk=js&version=...&dryRun=1" (runware.md §2.1).
    dry_run = is_dry_run(request.query.get("dryRun"))
    try:
        while not emulator.closing.is_set():
            message = await _receive(connection, emulator.options.idle_timeout)
            if message is None:
                # Closed after 120 s without traffic (runware.md §3.3), with a normal close frame.
                emulator.state.counters["ws_idle_closes"] += 1
                await socket.close(code=WSCloseCode.OK, message=b"idle timeout")
                break
            if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
            data = message.data if message.type == WSMsgType.TEXT else message.data.decode("utf-8", "replace")
            connection.last_activity = time.monotonic()
            emulator.state.record("WS", request.path, {}, {}, data.encode())
            await _handle_frame(emulator, connection, data, origin=origin, path=request.path, dry_run=dry_run)
    finally:
        if connection.session is not None:
            connection.session.detach(connection)
        emulator.sockets.discard(socket)
        if not socket.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await socket.close(code=WSCloseCode.GOING_AWAY)
    return socket

