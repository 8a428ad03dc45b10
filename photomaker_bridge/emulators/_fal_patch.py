"""Point the official ``fal_client`` at a local server (the fal emulator) for the length of a block."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from urllib.parse import urlsplit

__all__ = ["RUN_PREFIX", "point_fal_client_at"]

RUN_PREFIX = "/run"
"""Where the fal emulator serves the synchronous host ``fal.run`` (``FalOptions.run_prefix``)."""

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_NO_PROXY_NAMES = ("NO_PROXY", "no_proxy")


def _no_proxy_with(hosts: tuple[str, ...], current: str) -> str:
    entries: list[str] = []
    for entry in [*current.split(","), *hosts]:
        if entry.strip() and entry.strip() not in entries:
            entries.append(entry.strip())
    return ",".join(entries)


@contextlib.contextmanager
def point_fal_client_at(base_url: str) -> Iterator[None]:
    """Send every ``fal_client`` call made inside the block to ``base_url`` (for example
    ``emulators.fal.url``) instead of fal's hosts, and put things back afterwards.

    ``fal_client`` 1.0.3 keeps its hosts in four module constants of ``fal_client.client``:
    ``QUEUE_URL_FORMAT`` (submit, status, result, cancel: ``queue.fal.run``), ``RUN_URL_FORMAT`` (``run()`` and
    ``stream()``: the synchronous host ``fal.run``), ``REST_URL`` (storage tokens and the fallback upload) and
    ``CDN_URL`` (uploads). It reads them when each call is made, so patching them works at any time, whereas
    its environment variables (``FAL_RUN_HOST``, ``FAL_QUEUE_RUN_HOST``) are read only once, at import, always
    mean ``https://``, and do not cover uploads. This context manager sets the queue, storage and CDN constants
    to the base URL and ``RUN_URL_FORMAT`` to ``<base>/run/``, where the emulator plays ``fal.run`` (a submit
    and a run use the same path on different hosts; one emulator port tells them apart by this prefix), and
    restores the previous values on exit. It also adds the loopback names and the base URL's host to
    ``NO_PROXY``/``no_proxy`` for the block, since fal_client's transport honours proxy variables and would
    otherwise send loopback traffic to a proxy.

    Create the fal clients you use inside the block, and use them only there: a client copies ``REST_URL``
    when it first uploads (its ``CDNTokenManager`` is created then), so a client first used for an upload
    inside the block keeps asking the emulator for upload tokens afterwards, and one that already uploaded
    before the block keeps asking fal. For the same reason prefer ``fal_client.SyncClient(key=...)`` or
    ``fal_client.AsyncClient(key=...)`` to the module-level functions (``fal_client.subscribe``,
    ``fal_client.upload``), which share one client created at import.

    The patch is process-wide (module constants and environment variables), so do not run fal calls meant
    for the real service in other threads meanwhile. Blocks may be nested; each restores what it found.

    >>> with point_fal_client_at("http://127.0.0.1:8765"):
    ...     import fal_client.client
    ...     fal_client.client.QUEUE_URL_FORMAT
    'http://127.0.0.1:8765/'
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
    import fal_client.client as fal_module

    base = base_url.rstrip("/")
    replacements = {
        "QUEUE_URL_FORMAT": base + "/",
        "RUN_URL_FORMAT": base + RUN_PREFIX + "/",
        "REST_URL": base,
        "CDN_URL": base,
    }
    saved_constants = {name: getattr(fal_module, name) for name in replacements}
    saved_environment = {name: os.environ.get(name) for name in _NO_PROXY_NAMES}
    hosts = (*_LOOPBACK_HOSTS, parts.hostname)
    try:
        for name, value in replacements.items():
            setattr(fal_module, name, value)
        # urllib (and so httpx) lets lower-case no_proxy win over NO_PROXY: set both to the union.
        no_proxy = _no_proxy_with(hosts, ",".join(value for value in saved_environment.values() if value))
        for name in _NO_PROXY_NAMES:
            os.environ[name] = no_proxy
        yield
    finally:
        for name, value in saved_constants.items():
            setattr(fal_module, name, value)
        for name, previous in saved_environment.items():
            if previous is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = previous
