"""The emulators in a process of their own, so that the benchmark process holds only the client being measured.

Shared by the benchmarks that measure the client alone (``client_overhead.py``, ``fal_memory.py``,
``detection_lag.py``). The child starts one group of emulators per entry of ``groups`` (each with its own
settings: a job time per group, say), prints their URLs as one JSON line, then answers commands on stdin, one
JSON line each, until stdin closes:

* ``["polls", group, provider]``: ``{request_id: status calls}`` the emulator received since the last ``reset``;
* ``["reset", group, provider]``: empty log and counters (jobs already accepted are kept);
* ``["count", group, provider, method, path suffix]``: requests received since the last reset.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

KEY = "emulator-0123456789abcdef01234567"
"""The key every emulator of the child accepts."""

_CHILD = r"""
import json, re, sys
from photomaker_bridge.emulators import EmulatorSettings, start_emulators

groups = json.loads(sys.argv[1])
contexts, running = [], []
for group in groups:
    group = {key: tuple(value) if isinstance(value, list) else value for key, value in group.items()}
    settings = {name: EmulatorSettings(api_key=KEY, max_in_flight=100_000, seed=index, **group)
                for index, name in enumerate(("runware", "fal", "eachlabs"))}
    context = start_emulators(**settings)
    running.append(context.__enter__())
    contexts.append(context)
print(json.dumps([{"runware": item.runware.url, "fal": item.fal.url, "eachlabs": item.eachlabs.url}
                  for item in running]), flush=True)
STATUS = {"fal": re.compile(r"/requests/([^/]+)/status$"), "eachlabs": re.compile(r"^/v1/prediction/([^/]+)$")}
for line in sys.stdin:
    command, group, name, *rest = json.loads(line)
    emulator = running[group][name]
    if command == "count":
        method, suffix = rest
        print(sum(1 for logged in list(emulator.log) if logged.method == method and logged.path.endswith(suffix)),
              flush=True)
        continue
    if command == "reset":
        emulator.reset()
        print("null", flush=True)
        continue
    counts = {}
    for logged in list(emulator.log):
        found = STATUS[name].search(logged.path) if logged.method == "GET" else None
        if found:
            counts[found.group(1)] = counts.get(found.group(1), 0) + 1
    print(json.dumps(counts), flush=True)
for context in contexts:
    context.__exit__(None, None, None)
"""


class EmulatorProcess:
    """A child process running one group of the three emulators per settings mapping in ``groups``."""

    def __init__(self, groups: list[Mapping[str, Any]]) -> None:
        script = _CHILD.replace("KEY", repr(KEY))
        self.process = subprocess.Popen([sys.executable, "-c", script, json.dumps(groups)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.urls: list[dict[str, str]] = json.loads(self._line())
        """Per group: ``{"runware": url, "fal": url, "eachlabs": url}``."""

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the emulator process ended")
        return line

    def _ask(self, *command: Any) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return json.loads(self._line())

    def polls(self, group: int, provider: str) -> dict[str, int]:
        """Status calls per request id the emulator ``provider`` of ``group`` received since its last reset."""
        counts: dict[str, int] = self._ask("polls", group, provider)
        return counts

    def count(self, group: int, provider: str, method: str, suffix: str) -> int:
        """Requests ``method`` to a path ending in ``suffix`` that one emulator received since its last reset."""
        counted: int = self._ask("count", group, provider, method, suffix)
        return counted

    def reset(self, group: int, provider: str) -> None:
        """Forget the log and counters of one emulator."""
        self._ask("reset", group, provider)

    def stop(self) -> None:
        """Close stdin (the child stops its emulators and exits)."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(30)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def adapters(urls: Mapping[str, str], **fal_and_eachlabs: Any) -> list[Any]:
    """The three adapters pointed at one group's emulators, as a new client would make them (nothing known
    about job lengths unless ``fal_and_eachlabs`` says so: ``expected_seconds=...``)."""
    from photomaker_bridge.providers.eachlabs import EachlabsProvider
    from photomaker_bridge.providers.fal import FalProvider
    from photomaker_bridge.providers.runware import RunwareProvider

    return [RunwareProvider(api_key=KEY, base_url=urls["runware"] + "/v1"),
            FalProvider(key=KEY, base_url=urls["fal"], **fal_and_eachlabs),
            EachlabsProvider(api_key=KEY, base_url=urls["eachlabs"], concurrency=None, **fal_and_eachlabs)]


async def eachlabs_photo_url(session: Any, base: str, photo: bytes) -> str:
    """Upload ``photo`` (a JPEG) to the Eachlabs emulator at ``base`` as a plain client would (presign, then PUT
    with the ``aiohttp`` ``session``); returns its public URL."""
    async with session.post(f"{base}/v1/upload/presign", json={"content_type": "image/jpeg",
                                                               "file_type": "image"}) as response:
        presigned = await response.json()
    put_headers = {"Content-Type": "image/jpeg", **presigned.get("required_headers", {})}
    async with session.put(presigned["presigned_url"], data=photo, headers=put_headers) as response:
        response.raise_for_status()
    url: str = presigned["public_url"]
    return url


def median_range(values: list[float]) -> str:
    """``median (min–max)`` with three significant decimals."""
    import statistics

    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"
