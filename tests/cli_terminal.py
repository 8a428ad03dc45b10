"""Run ``photomaker-bridge`` in a pseudo-terminal and watch what it draws, with the time each piece arrived.

The CLI runs as a real process (``python -m photomaker_bridge``) whose stdin, stdout and stderr are the slave
side of a pty, so it sees a terminal and draws its live display. A thread reads the master side as bytes
arrive and keeps ``(time.monotonic(), text)`` pairs; :meth:`Terminal.wait_for` finds when a pattern first
appeared on the screen text (ANSI control sequences removed). ``time.monotonic()`` is the same clock the
emulators stamp their logs with, across processes (CLOCK_MONOTONIC), so "shown" can be compared with
"happened at the emulator".
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Mapping, Sequence

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Za-z0-9]")


def screen_text(raw: str) -> str:
    """``raw`` terminal output without control sequences (carriage returns become line breaks)."""
    return ANSI.sub("", raw).replace("\r", "\n")


class Terminal:
    """One CLI process in a pty of ``columns`` × ``rows``."""

    def __init__(self, arguments: Sequence[str], environment: Mapping[str, str], *, columns: int = 160,
                 rows: int = 40, cwd: str | None = None) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(rows),
               "PYTHONUNBUFFERED": "1", **environment}
        if "NO_COLOR" not in environment:
            env.pop("NO_COLOR", None)
        self.started = time.monotonic()
        self.process = subprocess.Popen([sys.executable, "-m", "photomaker_bridge", *arguments], stdin=slave,
                                        stdout=slave, stderr=slave, env=env, cwd=cwd, start_new_session=True)
        os.close(slave)
        self._master = master
        self._chunks: list[tuple[float, str]] = []
        self._lock = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:  # EIO: the process closed its side
                data = b""
            with self._lock:
                if not data:
                    self._closed = True
                    self._lock.notify_all()
                    return
                self._chunks.append((time.monotonic(), data.decode("utf-8", errors="replace")))
                self._lock.notify_all()

    @property
    def raw(self) -> str:
        """Everything drawn so far, control sequences included."""
        with self._lock:
            return "".join(text for _, text in self._chunks)

    @property
    def text(self) -> str:
        """Everything drawn so far, as plain text."""
        return screen_text(self.raw)

    def wait_for(self, pattern: str, timeout: float = 60.0) -> float:
        """The ``time.monotonic()`` at which ``pattern`` (a regex) first appeared on screen; fails after
        ``timeout`` seconds or when the process ended without drawing it."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                seen = ""
                for at, text in self._chunks:
                    seen += text
                    if compiled.search(screen_text(seen)):
                        return at
                if self._closed or time.monotonic() > deadline:
                    raise AssertionError(f"{pattern!r} never appeared; the screen was:\n{screen_text(seen)}")
                self._lock.wait(timeout=0.2)

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the process."""
        self.process.send_signal(signal.SIGINT)

    def finish(self, timeout: float = 60.0) -> int:
        """Wait for the process to exit and for its output to be read; returns the exit code."""
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        os.close(self._master)
        return code

    def kill(self) -> None:
        """Stop the process if it still runs (test clean-up)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

