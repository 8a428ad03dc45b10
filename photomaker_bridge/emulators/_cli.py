"""``photomaker-bridge emulate``: run the three emulators in the foreground until interrupted.

It prints where they listen and what a client needs to reach them (the emulator API keys, as environment
lines, and how to point the Runware SDK and fal_client at them), then serves until Ctrl-C or SIGTERM.
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

from photomaker_bridge.emulators._common import Duration, EmulatorSettings, Fault
from photomaker_bridge.emulators._runner import PROVIDER_NAMES, Emulators, start_emulators

__all__ = ["add_emulate_arguments", "run_emulate"]

_ENVIRONMENT_NAMES = {"runware": "RUNWARE_API_KEY", "fal": "FAL_KEY", "eachlabs": "EACHLABS_API_KEY"}
_NO_PROXY = "127.0.0.1,localhost,::1"
_EXIT_USAGE = 2


class _UsageError(Exception):
    """A bad option value; the message names the option."""


def add_emulate_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``photomaker-bridge emulate`` on ``parser`` (values are checked by
    :func:`run_emulate`, which reports a bad one in a single line and exits 2)."""
    duration_help = "seconds: a number, or LOW-HIGH drawn per request from the seeded generator"
    parser.add_argument("--latency", metavar="SECONDS|LOW-HIGH",
                        help=f"delay before every answer; {duration_help}")
    parser.add_argument("--queue-time", metavar="SECONDS|LOW-HIGH",
                        help=f"time a job waits in the queue; {duration_help}")
    parser.add_argument("--run-time", metavar="SECONDS|LOW-HIGH", help=f"time a job runs; {duration_help}")
    parser.add_argument(
        "--fault", metavar="SPEC", action="append", default=[],
        help="inject a fault, e.g. 'status:429,retry_after=2,nth=2', 'status:503,rate=0.1', 'drop,nth=3', "
             "'fail_job', 'stuck_job', 'partial,images=1'; prefix 'runware:', 'fal:' or 'eachlabs:' to "
             "target one emulator (default: all three); repeatable",
    )
    parser.add_argument("--seed", metavar="N", help="seed of every emulator's generator (default 0)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (URLs, emulator keys, environment) instead of text")


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
    settings: dict[str, EmulatorSettings] = {}
    for name in PROVIDER_NAMES:
        settings[name] = EmulatorSettings(seed=seed, faults=faults[name])
        if latency is not None:
            settings[name].latency = latency
        if queue_time is not None:
            settings[name].queue_time = queue_time
        if run_time is not None:
            settings[name].run_time = run_time
    return settings


def _description(emulators: Emulators) -> dict[str, object]:
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
        "# Emulator keys (accepted only by these emulators, not real credentials), as environment lines:",
        *(f"{_ENVIRONMENT_NAMES[handle.name]}={handle.api_key}" for handle in emulators),
        f"NO_PROXY={_NO_PROXY}",
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
    default stderr, naming the option) for a bad option value."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        settings = _settings(arguments)
    except _UsageError as error:
        err.write(f"photomaker-bridge emulate: error: {error}\n")
        return _EXIT_USAGE
    stop = threading.Event()
    with _stop_on_signals(stop):
        try:
            with start_emulators(runware=settings["runware"], fal=settings["fal"],
                                 eachlabs=settings["eachlabs"]) as emulators:
                if arguments.json:
                    out.write(json.dumps(_description(emulators)) + "\n")
                else:
                    _print_text(emulators, out)
                out.flush()
                stop.wait()
        except KeyboardInterrupt:
            pass
    if not arguments.json:
        out.write("emulators stopped.\n")
    return 0
