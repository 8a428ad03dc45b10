"""``photomaker-bridge emulate``: run the three emulators in the foreground until interrupted.

It prints where they listen and what a client needs to reach them — the emulator API keys as ``export`` lines
to paste into a shell, a ready-to-paste ``photomaker-bridge generate --base-url ...`` per provider, and how to
point the Runware SDK and fal_client at them — then serves until Ctrl-C or SIGTERM. ``--port`` and
``--api-key`` fix the ports and the key, so that scripts can hard-code them.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from photomaker_bridge._cli_emulate import add_emulate_arguments
from photomaker_bridge.emulators._common import Duration, EmulatorSettings, Fault
from photomaker_bridge.emulators._runner import PROVIDER_NAMES, Emulators, start_emulators

__all__ = ["add_emulate_arguments", "run_emulate"]

_ENVIRONMENT_NAMES = {"runware": "RUNWARE_API_KEY", "fal": "FAL_KEY", "eachlabs": "EACHLABS_API_KEY"}
_NO_PROXY = "127.0.0.1,localhost,::1"
_EXIT_USAGE = 2


class _UsageError(Exception):
    """A bad option value; the message names the option."""


def _duration(option: str, text: str | None) -> Duration | None:
    if text is None:
        return None
    low_text, separator, high_text = text.strip().partition("-")
    try:
        low = float(low_text)
        high = float(high_text) if separator else low
    except ValueError:
        raise _UsageError(f"{option}: {text!r} is not SECONDS or LOW-HIGH (e.g. 0.5 or 1-3)") from None
    if low < 0 or high < low:
        raise _UsageError(f"{option}: {text!r} must be >= 0, with LOW <= HIGH")
    return (low, high) if separator else low


def _faults(specifications: list[str]) -> dict[str, list[Fault]]:
    faults: dict[str, list[Fault]] = {name: [] for name in PROVIDER_NAMES}
    for specification in specifications:
        target, separator, rest = specification.partition(":")
        if separator and target in PROVIDER_NAMES:
            names, text = [target], rest
        else:
            names, text = list(PROVIDER_NAMES), specification
        try:
            fault = Fault.parse(text)
        except (ValueError, TypeError) as error:
            raise _UsageError(f"--fault {specification!r}: {error}") from None
        for name in names:
            faults[name].append(fault)
    return faults


def _ports(text: str | None) -> dict[str, int]:
    if text is None:
        return {}
    try:
        first = int(text)
    except ValueError:
        raise _UsageError(f"--port: {text!r} is not a port number") from None
    if not 1 <= first <= 65535 - len(PROVIDER_NAMES) + 1:
        raise _UsageError(f"--port: {first} is not allowed; 1 to {65535 - len(PROVIDER_NAMES) + 1} "
                          f"(the emulators use PORT to PORT+{len(PROVIDER_NAMES) - 1})")
    return {name: first + index for index, name in enumerate(PROVIDER_NAMES)}


def _settings(arguments: argparse.Namespace) -> dict[str, EmulatorSettings]:
    latency = _duration("--latency", arguments.latency)
    queue_time = _duration("--queue-time", arguments.queue_time)
    run_time = _duration("--run-time", arguments.run_time)
    seed = 0
    if arguments.seed is not None:
        try:
            seed = int(arguments.seed)
        except ValueError:
            raise _UsageError(f"--seed: {arguments.seed!r} is not an integer") from None
    faults = _faults(arguments.fault)
    key = arguments.api_key
    if key is not None and (not key.strip() or any(character.isspace() for character in key)):
        raise _UsageError("--api-key: the key is empty or contains spaces; a non-empty word is allowed")
    settings: dict[str, EmulatorSettings] = {}
    for name in PROVIDER_NAMES:
        settings[name] = EmulatorSettings(seed=seed, faults=faults[name])
        if key is not None:
            settings[name].api_key = key
        if latency is not None:
            settings[name].latency = latency
        if queue_time is not None:
            settings[name].queue_time = queue_time
        if run_time is not None:
            settings[name].run_time = run_time
    return settings


def _base_urls(emulators: Emulators) -> dict[str, str]:
    """What ``generate --base-url`` takes for each emulator."""
    return {"runware": emulators.runware.rest_url, "fal": emulators.fal.url, "eachlabs": emulators.eachlabs.url}


def _generate_example(name: str, base_url: str) -> str:
    return (f"photomaker-bridge generate --provider {name} --base-url {base_url} "
            "--prompt 'a portrait of a person img' --sample-faces 1 --out results/")


def _description(emulators: Emulators) -> dict[str, object]:
    base_urls = _base_urls(emulators)
    return {
        "note": "the api_key values are emulator keys: only these local emulators accept them",
        "emulators": {
            "runware": {"url": emulators.runware.url, "rest_url": emulators.runware.rest_url,
                        "ws_url": emulators.runware.ws_url, "api_key": emulators.runware.api_key},
            "fal": {"url": emulators.fal.url, "api_key": emulators.fal.api_key},
            "eachlabs": {"url": emulators.eachlabs.url, "api_key": emulators.eachlabs.api_key},
        },
        "environment": {
            **{_ENVIRONMENT_NAMES[handle.name]: handle.api_key for handle in emulators},
            "NO_PROXY": _NO_PROXY,
        },
        "generate": {name: _generate_example(name, url) for name, url in base_urls.items()},
    }


def _print_text(emulators: Emulators, output: TextIO) -> None:
    runware, fal, eachlabs = emulators.runware, emulators.fal, emulators.eachlabs
    lines = [
        "photomaker-bridge emulators are running on loopback (Ctrl-C to stop).",
        "",
        f"  runware   REST {runware.rest_url}   WebSocket {runware.ws_url}",
        f"  fal       {fal.url}",
        f"  eachlabs  {eachlabs.url}",
        "",
        "# Paste into another shell (emulator keys: accepted only by these emulators, not real credentials):",
        *(f"export {_ENVIRONMENT_NAMES[handle.name]}={handle.api_key}" for handle in emulators),
        f"export NO_PROXY={_NO_PROXY}",
        "",
        "# Then generate against an emulator (--base-url is what points the CLI here):",
        *(_generate_example(name, url) for name, url in _base_urls(emulators).items()),
        "",
        "# Runware SDK:  Runware(api_key=os.environ['RUNWARE_API_KEY'], url=" + repr(runware.ws_url) + ")",
        "# Runware REST: POST " + runware.rest_url + " with 'Authorization: Bearer $RUNWARE_API_KEY'",
        "# fal_client:   with point_fal_client_at(" + repr(fal.url) + "): "
        + "fal_client.SyncClient(key=os.environ['FAL_KEY'])...",
        "#               (from photomaker_bridge.emulators import point_fal_client_at)",
        "# Eachlabs:     base URL " + eachlabs.url + " with 'X-API-Key: $EACHLABS_API_KEY'",
    ]
    output.write("\n".join(lines) + "\n")


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Turn SIGINT and SIGTERM into ``stop.set()`` while serving (main thread only; elsewhere Ctrl-C still
    raises ``KeyboardInterrupt``, which :func:`run_emulate` also treats as a request to stop)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    for number in previous:
        signal.signal(number, lambda received, frame: stop.set())
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def run_emulate(arguments: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run ``photomaker-bridge emulate``: start the emulators, print how to reach them on ``out`` (default
    stdout), serve until SIGINT or SIGTERM. Returns 0 after a clean stop, 2 (with one line on ``err``,
    default stderr, naming the option) for a bad option value or a port already taken."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        settings = _settings(arguments)
        ports = _ports(arguments.port)
    except _UsageError as error:
        err.write(f"photomaker-bridge emulate: error: {error}\n")
        return _EXIT_USAGE
    stop = threading.Event()
    with _stop_on_signals(stop):
        try:
            with start_emulators(runware=settings["runware"], fal=settings["fal"], eachlabs=settings["eachlabs"],
                                 ports=ports) as emulators:
                if arguments.json:
                    out.write(json.dumps(_description(emulators)) + "\n")
                else:
                    _print_text(emulators, out)
                out.flush()
                stop.wait()
        except KeyboardInterrupt:
            pass
        except OSError as error:  # a fixed --port already taken
            err.write(f"photomaker-bridge emulate: error: --port {arguments.port}: {error.strerror or error}\n")
            return _EXIT_USAGE
    if not arguments.json:
        out.write("emulators stopped.\n")
    return 0
