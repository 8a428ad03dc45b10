"""How long ``start_emulators()`` takes to start (and to stop) all three emulators.

Run: ``.venv/bin/python benchmarks/emulator_startup.py [--runs N]``. Prints the median, minimum and maximum
of N starts (default 20), each measured from the ``with`` statement until the three servers listen, and
likewise for the shutdown (servers stopped, loop closed, thread joined). The first start, which pays for
importing the emulator modules, is measured apart.
"""

from __future__ import annotations

import argparse
import statistics
import time

from photomaker_bridge.emulators import start_emulators


def measure(runs: int) -> tuple[float, list[float], list[float]]:
    """Seconds for the first start, then each later start and each stop."""
    starts: list[float] = []
    stops: list[float] = []
    first = 0.0
    for run in range(runs + 1):
        context = start_emulators()
        began = time.perf_counter()
        context.__enter__()
        started = time.perf_counter()
        context.__exit__(None, None, None)
        stopped = time.perf_counter()
        if run == 0:
            first = started - began
        else:
            starts.append(started - began)
            stops.append(stopped - started)
    return first, starts, stops


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="number of measured starts (default 20)")
    runs = parser.parse_args().runs
    first, starts, stops = measure(runs)

    def milliseconds(values: list[float]) -> str:
        return (f"median {statistics.median(values) * 1000:.1f} ms "
                f"(min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f})")

    print(f"first start (imports the emulators): {first * 1000:.1f} ms")
    print(f"start over {runs} runs: {milliseconds(starts)}")
    print(f"stop  over {runs} runs: {milliseconds(stops)}")


if __name__ == "__main__":
    main()
