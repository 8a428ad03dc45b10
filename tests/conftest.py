"""Suite-wide fixtures, and the guard that keeps every test off the real network.

The guard wraps ``socket.getaddrinfo`` and ``socket.socket.connect``: any attempt to resolve or reach an
address that is not loopback raises :class:`RealNetworkBlocked` (a ``RuntimeError``, so HTTP libraries do
not mistake it for a transient connection error and retry it) and is recorded; a test during which such an
attempt happened fails at teardown even if the code under test swallowed the exception.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from runware_sdks import install_runware_importer

# Proxies in the environment would route loopback traffic away from the emulators (fal.md §2).
for _name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_name, None)
os.environ["NO_PROXY"] = "127.0.0.1,localhost,::1"
# Keys from the developer's shell must never reach a test.
for _name in ("RUNWARE_API_KEY", "FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "EACHLABS_API_KEY"):
    os.environ.pop(_name, None)


install_runware_importer()


class RealNetworkBlocked(RuntimeError):
    """A test tried to reach a host that is not loopback."""


_blocked: list[str] = []
_real_getaddrinfo = socket.getaddrinfo
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback(host: object) -> bool:
    if host is None or host in ("localhost", "localhost.", b"localhost"):
        return True
    text = host.decode() if isinstance(host, bytes) else str(host)
    try:
        return ipaddress.ip_address(text.split("%")[0]).is_loopback
    except ValueError:
        return False


def _refuse(host: object) -> RealNetworkBlocked:
    _blocked.append(str(host))
    return RealNetworkBlocked(f"tests may only reach loopback; something tried to reach {host!r}")


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if not _is_loopback(host):
        raise _refuse(host)
    return _real_getaddrinfo(host, *args, **kwargs)


def _address_host(address: Any) -> object:
    if isinstance(address, tuple) and address:
        return address[0]
    return "localhost"  # AF_UNIX paths are local


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(_address_host(address)):
        raise _refuse(_address_host(address))
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(_address_host(address)):
        raise _refuse(_address_host(address))
    return _real_connect_ex(self, address)


socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]
socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _no_real_network() -> Iterator[None]:
    """Fail any test during which something tried to leave loopback, even if the error was swallowed."""
    start = len(_blocked)
    yield
    attempts = _blocked[start:]
    if attempts:
        pytest.fail(f"test tried to reach the real network: {sorted(set(attempts))}", pytrace=False)


# --- The CLI's learned-lengths cache ----------------------------------------------------------------------
# The CLI keeps learned job lengths in the user's cache directory (providers/_durations). The suite never
# writes there, and CLI tests do not learn from each other: off for every test (and the processes they start)
# unless a test turns it on with a file of its own.
os.environ["PHOTOMAKER_BRIDGE_DURATION_CACHE"] = "off"


# --- Ctrl-C in the processes the tests start -------------------------------------------------------------------
# A suite started in the background by a non-interactive shell (`cmd &`) inherits SIGINT ignored, and so would
# every process it starts: the interruption tests' SIGINT would then be ignored, as it rightly is for such a
# program, and their runs would finish instead of stopping. The tests are about what Ctrl-C does, so the suite
# takes SIGINT back for itself and its children.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# --- Secrets -----------------------------------------------------------------------------------------------
# Every API key used in the suite is either an emulator key ("emulator-" + 24 hex digits, EmulatorSettings'
# default) or registered in SECRETS by the test that invents it. No log record produced during a test may
# contain one; tests/test_secrets.py checks exception messages and reprs the same way.

import logging  # noqa: E402
import re  # noqa: E402

SECRETS: set[str] = set()
"""Keys invented by tests (not emulator defaults); tests add theirs with ``register_secret``."""

KEY_PATTERN = re.compile(r"emulator-[0-9a-f]{24}")


def register_secret(key: str) -> str:
    """Remember ``key`` as a secret that must never be printed; returns it."""
    SECRETS.add(key)
    return key


def leaked_secrets(text: str) -> list[str]:
    """The secrets (emulator keys and registered keys) that appear in ``text``."""
    found = KEY_PATTERN.findall(text)
    found += [secret for secret in SECRETS if secret and secret in text]
    return found


class _RecordingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a broken format string is still a record
            text = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            text += " " + repr(record.exc_info[1]) + " " + str(record.exc_info[1])
        self.records.append(text)


_recorder = _RecordingHandler()
logging.getLogger().addHandler(_recorder)
logging.getLogger().setLevel(logging.DEBUG)


@pytest.fixture(autouse=True)
def _no_secret_in_logs() -> Iterator[None]:
    """Fail any test during which a log record contained an API key."""
    start = len(_recorder.records)
    yield
    leaks = [text for text in _recorder.records[start:] if leaked_secrets(text)]
    if leaks:
        pytest.fail(f"an API key reached a log record: {leaks[0][:300]!r}", pytrace=False)
