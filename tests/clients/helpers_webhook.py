"""A loopback webhook receiver for the end-to-end tests: records every POST and lets a test wait for a number
of deliveries (on a condition variable the handler signals, never on a sleep)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

__all__ = ["Receiver", "receiver"]


class Receiver:
    """Records ``(headers, body)`` of each POST (header names lower-cased) and answers 200."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver._changed:
                    receiver.received.append(({name.lower(): value for name, value in self.headers.items()}, body))
                    receiver._changed.notify_all()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/photomaker?token=ours"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def wait_for(self, count: int, within: float = 30.0) -> list[tuple[dict[str, str], bytes]]:
        """The first ``count`` deliveries, once they have arrived (fails the test after ``within`` seconds: a
        generous bound, not a timing assertion)."""
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.received) >= count, timeout=within), (
                f"{len(self.received)} of {count} webhook deliveries arrived")
            return list(self.received[:count])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running receiver, shut down after the test."""
    running = Receiver()
    running.thread.start()
    yield running
    running.server.shutdown()
    running.server.server_close()
