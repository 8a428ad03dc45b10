"""A real ``redis-server`` for the state tests: started on a free loopback port, with no persistence, stopped
(and restarted on the same port) on demand. No fake Redis anywhere (docs/scaling.md, "Testing")."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

REQUIRE = "PHOTOMAKER_REQUIRE_REDIS"


def redis_binary() -> str:
    """The path of ``redis-server``; skips the test without it, unless ``PHOTOMAKER_REQUIRE_REDIS=1`` (CI), where
    its absence is an error."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get(REQUIRE) == "1":
            raise RuntimeError(f"{REQUIRE}=1 but redis-server is not installed (apt-get install redis-server)")
        pytest.skip("redis-server is not installed (apt-get install redis-server, or set PHOTOMAKER_REQUIRE_REDIS=1 "
                    "to make its absence an error)")
    return binary


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1:port``."""

    def __init__(self, folder: Path) -> None:
        self.binary = redis_binary()
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers PING (within 30 s)."""
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder), "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode} (port {self.port} taken?)")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer PING within 30 s")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for it."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class ReplyDropper:
    """A loopback TCP proxy in front of a real redis-server that loses exactly the replies a test asks it to: the
    command reaches Redis and runs, then the connection closes before its reply is passed on — what a network
    failure between the two does. ``refusing``: every connection is closed at once (Redis is unreachable)."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.refusing = False
        self._drop: bytes | None = None
        self._then_refuse = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.dropped = 0
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<proxy port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def drop_reply_to(self, command: bytes, *, then_refuse: bool = False) -> None:
        """Lose the reply to the next command containing ``command`` (e.g. ``b"EVALSHA"``); ``then_refuse``: and
        refuse every connection after it (so the client's retry fails too)."""
        self._drop = command
        self._then_refuse = then_refuse

    def close(self) -> None:
        """Stop listening."""
        self._listener.close()

    def _spawn(self, target: Any, *arguments: Any) -> None:
        thread = threading.Thread(target=target, args=arguments, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            armed = threading.Event()
            self._spawn(self._forward, client, upstream, armed)
            self._spawn(self._backward, upstream, client, armed)

    def _forward(self, client: socket.socket, upstream: socket.socket, armed: threading.Event) -> None:
        try:
            while data := client.recv(65536):
                if self.refusing:
                    break
                if self._drop is not None and self._drop in data:
                    self._drop = None
                    armed.set()
                upstream.sendall(data)
        except OSError:
            pass

    def _backward(self, upstream: socket.socket, client: socket.socket, armed: threading.Event) -> None:
        try:
            while data := upstream.recv(65536):
                if armed.is_set():  # the command ran; its reply is lost with the connection
                    self.dropped += 1
                    self.refusing = self.refusing or self._then_refuse
                    break
                client.sendall(data)
        except OSError:
            pass
        for each in (client, upstream):
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)
            each.close()
