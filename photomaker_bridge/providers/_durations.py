"""Learned job lengths kept between runs: an opt-in JSON file in the user's cache directory.

A client learns how long a provider's jobs take (``_polling.DurationEstimate``) and polls around that time. A new
client — every CLI run — knows nothing yet and polls on the cold schedule, which bounds the lag but costs polls.
With ``duration_cache=True`` on any adapter (``FalProvider``, ``EachlabsProvider``, ``RunwareProvider``; the
CLI's default) the adapter starts from what earlier clients learned and saves what it learns after each
completed job, so a run starts warm (docs/architecture.md, "Polling").

The file (``job-lengths.json`` in ``platformdirs.user_cache_dir("photomaker-bridge")``, or any path given) maps
``provider|model|endpoint`` to ``{"seconds", "samples", "updated"}``; the endpoint keeps an emulator's or a
proxy's lengths apart from the service's. It holds no key, prompt or image. Reading or writing it never fails a
call: an unreadable file counts as empty, a failed write is logged at DEBUG and skipped. Writes replace the file
atomically; two processes saving at the same moment may lose one of the two updates (the next job saves again).
This is a stopgap: routing's shared state (issues 11 and 13) may take its place.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Final

from .._logging import provider_logger
from ._polling import DurationEstimate

__all__ = ["ENVIRONMENT_VARIABLE", "DurationCache", "DurationCacheSetting", "cli_setting", "default_path",
           "starting_estimate"]

DurationCacheSetting = bool | str | os.PathLike[str] | None
"""An adapter's ``duration_cache``: ``None``/``False`` off, ``True`` the default file, or a path."""

ENVIRONMENT_VARIABLE: Final = "PHOTOMAKER_BRIDGE_DURATION_CACHE"
"""Read by the CLI only: another file for its cache, or ``off`` (docs/cli.md)."""

_MAX_ENTRIES: Final = 64
"""Entries kept (the most recently updated): emulators on random ports would otherwise grow the file forever."""

_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def default_path() -> Path:
    """``job-lengths.json`` in the user's cache directory (``~/.cache/photomaker-bridge`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("photomaker-bridge", appauthor=False)) / "job-lengths.json"


def cli_setting() -> DurationCacheSetting:
    """The CLI's ``duration_cache``: on (the default file) unless :data:`ENVIRONMENT_VARIABLE` names another file
    or says ``off`` (also ``0``, ``false``, ``no`` or empty)."""
    value = os.environ.get(ENVIRONMENT_VARIABLE)
    if value is None:
        return True
    if value.strip().lower() in ("", "0", "off", "false", "no"):
        return None
    return value


def starting_estimate(setting: DurationCacheSetting, provider: str, key: str, expected: float | None,
                      typical: float) -> DurationEstimate:
    """An adapter's first estimate: ``expected`` (the caller's, known) or ``typical`` (a guess); with a
    ``duration_cache`` setting, what the file holds under ``key`` wins and every update is saved."""
    guess, known = expected or typical, expected is not None
    cache = DurationCache.from_setting(setting, provider)
    return cache.estimate(key, guess, known=known) if cache is not None else DurationEstimate(guess, known=known)


def _lock(path: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path, threading.Lock())


class DurationCache:
    """The learned-lengths file of one adapter (several adapters and clients may share one file)."""

    def __init__(self, path: Path, provider: str) -> None:
        self.path = path
        """The JSON file."""
        self.provider = provider
        """Whose logger reports a failed write."""

    @classmethod
    def from_setting(cls, setting: DurationCacheSetting, provider: str) -> DurationCache | None:
        """The cache an adapter's ``duration_cache`` setting asks for, or ``None``."""
        if setting is None or setting is False:
            return None
        path = default_path() if setting is True else Path(os.fspath(setting)).expanduser()
        return cls(path, provider)

    def estimate(self, key: str, guess: float, *, known: bool) -> DurationEstimate:
        """The estimate for ``key``: what the file holds, else ``guess`` (``known`` when the caller gave it).
        Every later update is saved."""
        entry = self._read().get(key)
        estimate = DurationEstimate(guess, known=known, on_update=lambda updated: self.save(key, updated))
        if isinstance(entry, dict):
            seconds, samples = entry.get("seconds"), entry.get("samples")
            if isinstance(seconds, int | float) and not isinstance(seconds, bool) and 0 < seconds < 86_400:
                estimate.seconds, estimate.known = float(seconds), True
                estimate.samples = samples if isinstance(samples, int) and samples > 0 else 1
        return estimate

    def save(self, key: str, estimate: DurationEstimate) -> None:
        """Write ``estimate`` under ``key``, keeping the other entries."""
        with _lock(self.path):
            entries = self._read()
            entries[key] = {"seconds": round(estimate.seconds, 4), "samples": estimate.samples,
                            "updated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
            newest = sorted(entries.items(), key=lambda item: str(item[1].get("updated", "")), reverse=True)
            try:
                self._write(dict(newest[:_MAX_ENTRIES]))
            except OSError as error:
                provider_logger(self.provider).debug("learned job lengths not saved to %s: %s", self.path, error)

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        entries = loaded.get("lengths") if isinstance(loaded, dict) else None
        if not isinstance(entries, dict):
            return {}
        return {str(key): value for key, value in entries.items() if isinstance(value, dict)}

    def _write(self, entries: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".job-lengths-", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                json.dump({"version": 1, "lengths": entries}, file, indent=1, sort_keys=True)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
