"""The package's loggers, and how the command line turns them on.

Loggers (standard :mod:`logging`, silent until an application configures logging):

* ``photomaker_bridge.<provider>`` (``runware``, ``fal``, ``eachlabs``) — INFO: the job's state changes as the
  flows report them (uploading, submitted, queued, running, completed, failed); DEBUG: the provider's log
  lines, and one line per HTTP request and response the bridge's transports send: method, URL without its
  query string, status, seconds, and the provider's request id when the answer names one. Never a header,
  never a body: keys travel in headers, images in bodies.
* fal's traffic goes through ``fal_client`` and ``httpx``, which log on their own loggers (``fal_client``,
  ``httpx`` at INFO per request, ``httpcore`` at DEBUG per socket step).

:func:`cli_logging` is what ``-v`` / ``-vv`` / ``--quiet`` do in the CLI; a library user configures
logging as usual (``logging.basicConfig(level=logging.DEBUG)``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from ._http import Event

__all__ = ["ROOT_LOGGER", "cli_logging", "log_event", "provider_logger", "redact_urls"]

ROOT_LOGGER = "photomaker_bridge"
"""The name of the package's root logger."""

_URL_QUERY = re.compile(r"(https?://[^\s?#\"'<>]+)[?#][^\s\"'<>]*")

# Other libraries' loggers the CLI sets, by verbosity (0 default, 1 -v, 2 -vv): httpx logs every fal request at
# INFO with its full URL, httpcore every socket step at DEBUG, urllib3 every requests call at DEBUG with the
# query string (a presigned upload's signature) — our own DEBUG lines already cover all of them.
_THIRD_PARTY_LEVELS = {
    "httpx": (logging.WARNING, logging.WARNING, logging.INFO),
    "fal_client": (logging.WARNING, logging.INFO, logging.DEBUG),
    "httpcore": (logging.WARNING, logging.WARNING, logging.WARNING),
    "urllib3": (logging.WARNING, logging.WARNING, logging.WARNING),
    "aiohttp": (logging.WARNING, logging.WARNING, logging.WARNING),
}


@functools.cache
def provider_logger(provider: str) -> logging.Logger:
    """``photomaker_bridge.<provider>`` (looked up once: every progress event of every call asks for it)."""
    return logging.getLogger(f"{ROOT_LOGGER}.{provider}")


def redact_urls(text: str) -> str:
    """``text`` with every URL's query string and fragment cut (presigned URLs carry signatures there)."""
    return _URL_QUERY.sub(r"\1?…", text)


def log_event(event: Event) -> None:
    """Log a flow's progress event: state changes at INFO, the provider's log lines at DEBUG."""
    logger = provider_logger(event.provider)
    level = logging.DEBUG if event.kind == "log" else logging.INFO
    if not logger.isEnabledFor(level):
        return
    parts = [event.kind]
    if event.request_id:
        parts.append(event.request_id)
    if event.queue_position is not None:
        parts.append(f"position {event.queue_position}")
    if event.message:
        parts.append(redact_urls(event.message))
    logger.log(level, " ".join(parts))


class _RedactingFilter(logging.Filter):
    """Lets through warnings from anywhere, and below that only the records of the loggers the CLI's verbosity
    is about; cuts URL query strings out of every record it prints (other libraries log full URLs)."""

    _ABOUT = frozenset({ROOT_LOGGER, "httpx", "fal_client"})

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING and record.name.split(".", 1)[0] not in self._ABOUT:
            return False
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: show it as it is
            message = str(record.msg)
        record.msg, record.args = redact_urls(message), ()
        return True


@contextlib.contextmanager
def cli_logging(verbosity: int, console: Console) -> Iterator[None]:
    """Logging for one CLI run: ``verbosity`` -1 (``--quiet``: errors only), 0 (warnings), 1 (``-v``: job
    state changes), 2 (``-vv``: every request and response, fal's httpx lines too). Records go to ``console``
    (stderr), above a live display when there is one. Levels and handler are put back afterwards."""
    from rich.logging import RichHandler

    package_level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    handler: logging.Handler
    if console.is_terminal:
        handler = RichHandler(console=console, show_path=False, markup=False, rich_tracebacks=False,
                              log_time_format="%H:%M:%S")
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = _PlainHandler(console)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_RedactingFilter())
    handler.setLevel(package_level)
    levels = {ROOT_LOGGER: package_level}
    for name, by_verbosity in _THIRD_PARTY_LEVELS.items():
        levels[name] = by_verbosity[max(0, min(verbosity, 2))] if verbosity >= 0 else logging.ERROR
    loggers = {name: logging.getLogger(name) for name in levels}
    previous = {name: logger.level for name, logger in loggers.items()}
    root = logging.getLogger()
    root.addHandler(handler)
    for name, logger in loggers.items():
        logger.setLevel(levels[name])
    try:
        yield
    finally:
        root.removeHandler(handler)
        for name, logger in loggers.items():
            logger.setLevel(previous[name])


class _PlainHandler(logging.Handler):
    """One plain line per record on the console's stream (not a terminal)."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._console.file.write(self.format(record) + "\n")
            self._console.file.flush()
        except Exception:  # a closed stream must not break the run
            self.handleError(record)
