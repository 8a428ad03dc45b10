"""What transient faults cost: wall time of N generations per provider with a fault rate vs. none.

The emulators run in a separate process (``photomaker-bridge emulate``), so this process holds only the client.
With ``--fault-rate`` (default 5 %), each emulator answers that fraction of *every* request (uploads, submits,
polls, fetches) with a transient refusal the retry policy may repeat — 429 with ``Retry-After: 0.5`` or 503,
half each — drawn from the emulator's seeded generator. Prints, per provider: seconds without and with faults,
the extra wall time, how many faults fired, and how many calls failed (goal: none; the client's default
``RetryPolicy``).

    python benchmarks/fault_recovery.py --requests 200 --concurrency 20 --run-time 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time

from photomaker_bridge import AsyncBridge, PhotoMakerRequest, ProviderError
from photomaker_bridge.providers.base import Provider
from photomaker_bridge.providers.eachlabs import EachlabsProvider
from photomaker_bridge.providers.fal import FalProvider
from photomaker_bridge.providers.runware import RunwareProvider
from photomaker_bridge.samples import sample_faces

PROMPT = "a photo of a man img in a spacesuit"
KEY = "emulator-0123456789abcdef01234567"


_CHILD = """
import json, sys
from photomaker_bridge.emulators import EmulatorSettings, Fault, start_emulators
settings = {name: EmulatorSettings(api_key=KEY, run_time=RUN_TIME, max_in_flight=10_000, seed=3)
            for name in ('runware', 'fal', 'eachlabs')}
with start_emulators(**settings) as emulators:
    print(emulators.runware.url, emulators.fal.url, emulators.eachlabs.url, flush=True)
    for line in sys.stdin:  # "faults <name> <rate>" | "fired <name>"
        command, name, *rest = line.split()
        emulator = emulators[name]
        if command == "faults":
            rate = float(rest[0])
            emulator.reset()  # back to the starting settings, counters at zero
            emulator.settings.faults[:] = [] if rate <= 0 else [
                Fault("status", status=429, retry_after=0.5, rate=rate / 2),
                Fault("status", status=503, rate=rate / 2)]
            print("ok", flush=True)
        else:
            print(json.dumps(emulator.counters.get("fault:status", 0)), flush=True)
"""


class Emulators:
    """The three emulators in a process of their own, every job ``run_time`` seconds long, driven over stdin."""

    def __init__(self, run_time: float) -> None:
        script = _CHILD.replace("KEY", repr(KEY)).replace("RUN_TIME", repr(run_time))
        self.process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.urls = dict(zip(("runware", "fal", "eachlabs"), self._line().split(), strict=True))

    def _line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline()

    def _send(self, line: str) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self._line().strip()

    def set_faults(self, name: str, rate: float) -> None:
        """Refuse ``rate`` of every request to emulator ``name`` (429 with Retry-After 0.5 s, or 503)."""
        self._send(f"faults {name} {rate}")

    def fired(self, name: str) -> int:
        """Faults that fired since the last :meth:`set_faults`."""
        return int(self._send(f"fired {name}"))

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(10)


async def run(adapters: list[Provider], provider: str, count: int, concurrency: int) -> tuple[float, int]:
    request = PhotoMakerRequest(prompt=PROMPT, images=[sample_faces()[0]])
    gate = asyncio.Semaphore(concurrency)
    failed = 0

    async def one() -> None:
        nonlocal failed
        async with gate:
            try:
                await bridge.generate(request, provider, timeout=600)
            except ProviderError:
                failed += 1

    async with AsyncBridge(providers=adapters) as bridge:
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        return time.perf_counter() - started, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--run-time", type=float, default=0.5, help="seconds each emulated job runs")
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    emulators = Emulators(arguments.run_time)
    try:
        urls = emulators.urls
        adapters: list[Provider] = [
            RunwareProvider(api_key=KEY, base_url=urls["runware"] + "/v1"),
            FalProvider(key=KEY, base_url=urls["fal"], expected_seconds=arguments.run_time),
            EachlabsProvider(api_key=KEY, base_url=urls["eachlabs"], expected_seconds=arguments.run_time,
                             concurrency=None),
        ]
        figures: dict[str, dict[str, float]] = {}
        for provider in urls:
            emulators.set_faults(provider, 0.0)
            asyncio.run(run(adapters, provider, arguments.concurrency, arguments.concurrency))  # warm up
            clean, clean_failed = asyncio.run(run(adapters, provider, arguments.requests, arguments.concurrency))
            emulators.set_faults(provider, arguments.fault_rate)
            faulty, faulty_failed = asyncio.run(run(adapters, provider, arguments.requests, arguments.concurrency))
            fired = emulators.fired(provider)
            emulators.set_faults(provider, 0.0)
            figures[provider] = {"clean_seconds": round(clean, 3), "faulty_seconds": round(faulty, 3),
                                 "extra_seconds": round(faulty - clean, 3), "extra_ratio": round(faulty / clean, 3),
                                 "faults_fired": fired, "failed_clean": clean_failed, "failed_faulty": faulty_failed}
    finally:
        emulators.stop()
    if arguments.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"{arguments.requests} requests, {arguments.concurrency} in flight, {arguments.run_time} s per job, "
          f"{arguments.fault_rate:.0%} of all requests refused (429 Retry-After 0.5 s / 503)")
    print(f"{'provider':10} {'clean s':>8} {'faults s':>9} {'extra s':>8} {'ratio':>6} {'fired':>6} {'failed':>7}")
    for provider, figure in figures.items():
        print(f"{provider:10} {figure['clean_seconds']:8.2f} {figure['faulty_seconds']:9.2f} "
              f"{figure['extra_seconds']:8.2f} {figure['extra_ratio']:6.3f} {figure['faults_fired']:6.0f} "
              f"{figure['failed_clean'] + figure['failed_faulty']:7.0f}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
