"""Concurrent first calls share one upload: wall time, uploads and memory of a new client's first calls.

``--calls`` fal calls at once through a new ``AsyncBridge`` (nothing uploaded yet), against the same number
through a client that uploaded the photos before (warm), with ``--photos`` photos of about 5 MB each; the
emulators run in a child process (``_emulator_process``). Before single-flight uploads, every first call
uploaded the photos itself (issue 10: 100 calls, 9.0 s against 7.05 s warm, +54 MB). Prints, per round, the
seconds and the uploads the emulator received, and the medians.

    python benchmarks/concurrent_uploads.py --calls 100 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from _emulator_process import KEY, EmulatorProcess, median_range
from fal_memory import photos

from photomaker_bridge import AsyncBridge, PhotoMakerRequest
from photomaker_bridge.providers.fal import FalProvider

PROMPT = "a photo of a man img in a spacesuit"


async def run(url: str, calls: int, warm: bool, images: list[bytes]) -> float:
    request = PhotoMakerRequest(prompt=PROMPT, images=images)
    async with AsyncBridge(providers=[FalProvider(key=KEY, base_url=url, expected_seconds=1.0)]) as bridge:
        if warm:
            await bridge.generate(request, "fal")
        started = time.perf_counter()
        await asyncio.gather(*(bridge.generate(request, "fal") for _ in range(calls)))
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--run-time", type=float, default=1.0, help="seconds each emulated job runs")
    arguments = parser.parse_args()
    images = photos(arguments.photos)
    seconds: dict[str, list[float]] = {"cold": [], "warm": []}
    uploads: dict[str, list[int]] = {"cold": [], "warm": []}
    with EmulatorProcess([{"run_time": arguments.run_time}]) as emulators:
        url = emulators.urls[0]["fal"]
        for round_number in range(arguments.rounds):
            for kind in ("cold", "warm") if round_number % 2 == 0 else ("warm", "cold"):
                emulators.reset(0, "fal")
                seconds[kind].append(asyncio.run(run(url, arguments.calls, kind == "warm", images)))
                uploads[kind].append(emulators.count(0, "fal", "POST", "/files/upload"))
            print(f"round {round_number + 1}: cold {seconds['cold'][-1]:.2f} s ({uploads['cold'][-1]} uploads), "
                  f"warm {seconds['warm'][-1]:.2f} s ({uploads['warm'][-1]} uploads, the warm-up's included)",
                  flush=True)
    print(f"\n{arguments.calls} fal calls at once, {arguments.photos} photos of 5 MB, {arguments.run_time} s jobs; "
          "median (min–max)")
    for kind in ("cold", "warm"):
        print(f"{kind}: {median_range(seconds[kind])} s, uploads {statistics.median(uploads[kind]):.0f}")
    print(f"cold ÷ warm: {statistics.median(seconds['cold']) / statistics.median(seconds['warm']):.3f}")


if __name__ == "__main__":
    main()
