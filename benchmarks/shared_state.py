"""What sharing the state through Redis costs (docs/scaling.md, "Figures"), against a redis-server this script
starts on a free loopback port (``redis-server`` must be installed: ``apt-get install redis-server``).

1. **Added latency per call** — each question a call asks (take and free a slot, a breaker admission, an outcome
   record, a budget reservation and its settlement, reading the numbers, a journal claim), timed one at a time
   on ``MemoryState`` and on ``RedisState``: the median added by Redis (goal: at most 2 ms on loopback), sync
   and async.
2. **Lease throughput** — take-and-free pairs of a provider slot, one thread (one core), back to back (goal: at
   least 5,000 a second).
3. **Redis memory per provider account** — ``MEMORY USAGE`` of one account's keys after a busy minute: 10 leases
   held, a full per-minute window of 60 hits, a breaker with a minute of outcomes, 200 samples of each number.

    python benchmarks/shared_state.py            # the figures of docs/scaling.md
    python benchmarks/shared_state.py --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from photomaker_bridge._coordination_operations import Limits
from photomaker_bridge.routing import BreakerSettings
from photomaker_bridge.routing._state import Admit, ReadNumbers, Record, ReserveSpend, SettleSpend, StateOperation
from photomaker_bridge.state import MemoryState, RedisState, State
from photomaker_bridge.state._operations import ClaimJob, ReleaseLease, TakeSlots

ACCOUNT = "eachlabs:0123456789abcdef"
SETTINGS = BreakerSettings()


def start_redis() -> tuple[subprocess.Popen[bytes], str, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tempfile.mkdtemp()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                "no", "--dir", folder], stdout=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.split()[2]
    return process, f"redis://127.0.0.1:{port}/0", version


def questions(counter: Callable[[], int]) -> dict[str, Callable[[], list[StateOperation]]]:
    """Each kind of question, as the operations one call asks (a slot is taken, then freed)."""
    def slot() -> list[StateOperation]:
        name = f"lease-{counter()}"
        return [TakeSlots(ACCOUNT, Limits(concurrency=1000), (name,)), ReleaseLease(ACCOUNT, lease_id=name)]

    return {
        "slot take+free": slot,
        "breaker admit": lambda: [Admit("eachlabs", time.time(), SETTINGS)],
        "outcome record": lambda: [Record("eachlabs", time.time(), SETTINGS, ok=True, total_seconds=20.0,
                                          queue_seconds=1.0, unit_price=Decimal("0.0001"))],
        "numbers read": lambda: [ReadNumbers(("runware", "fal", "eachlabs"))],
        "journal claim": lambda: [ClaimJob(f"key-{counter()}", "bench", 60, 600)],
    }


def time_sync(state: State, operations: list[StateOperation]) -> float:
    started = time.perf_counter()
    for operation in operations:
        answer = state.perform(operation)
        if isinstance(operation, ReserveSpend):
            state.perform(SettleSpend(answer, Decimal(0)))
    return time.perf_counter() - started


async def time_async(state: State, operations: list[StateOperation]) -> float:
    started = time.perf_counter()
    for operation in operations:
        await state.aperform(operation)
    return time.perf_counter() - started


def latency(states: dict[str, State], calls: int) -> dict[str, Any]:
    counter = iter(range(10**9)).__next__
    figures: dict[str, Any] = {}
    kinds = questions(counter)
    kinds["spend reserve+settle"] = lambda: [ReserveSpend(Decimal("0.001"), Decimal(10**6))]
    for kind, make in kinds.items():
        row: dict[str, Any] = {}
        for name, state in states.items():
            sync = [time_sync(state, make()) for _ in range(calls)]
            loop = asyncio.new_event_loop()
            try:
                asynchronous = [loop.run_until_complete(time_async(state, make())) for _ in range(calls // 4)]
                loop.run_until_complete(state.aclose())
            finally:
                loop.close()
            row[name] = {"sync_median_ms": statistics.median(sync) * 1000,
                         "sync_p95_ms": statistics.quantiles(sync, n=20)[-1] * 1000,
                         "async_median_ms": statistics.median(asynchronous) * 1000}
        row["added_sync_median_ms"] = row["redis"]["sync_median_ms"] - row["memory"]["sync_median_ms"]
        row["added_async_median_ms"] = row["redis"]["async_median_ms"] - row["memory"]["async_median_ms"]
        figures[kind] = row
    return figures


def throughput(state: State, pairs: int) -> float:
    limits = Limits(concurrency=1000)
    started = time.perf_counter()
    for index in range(pairs):
        name = f"t-{index}"
        state.perform(TakeSlots(ACCOUNT, limits, (name,)))
        state.perform(ReleaseLease(ACCOUNT, lease_id=name))
    return pairs / (time.perf_counter() - started)


def memory_per_account(state: RedisState) -> int:
    account = "fal:fedcba9876543210"
    now = time.time()
    for index in range(60):
        state.perform(TakeSlots(account, Limits(concurrency=None, per_minute=60), (f"m-{index}",)))
        if index >= 10:
            state.perform(ReleaseLease(account, lease_id=f"m-{index}"))
    for index in range(200):
        state.perform(Record("fal", now - 59 + index * 0.29, SETTINGS, ok=index % 7 != 0, total_seconds=15.0 + index
                            % 5, queue_seconds=1.0 + index % 3, unit_price=Decimal("0.0000213") + index),
                      lambda name: account)
    client = state._client()
    keys = [*state.keys.slots(account), *state.keys.route(account)]
    return sum(int(client.memory_usage(key) or 0) for key in keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="timed calls of each question on each backend")
    parser.add_argument("--pairs", type=int, default=20000, help="lease take-and-free pairs for the throughput")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    arguments = parser.parse_args()
    process, url, version = start_redis()
    try:
        redis_state = RedisState(url, namespace="bench")
        states: dict[str, State] = {"memory": MemoryState(), "redis": redis_state}
        figures = {"redis_server": version, "latency": latency(states, arguments.calls),
                   "lease_pairs_per_second": {name: throughput(state, arguments.pairs)
                                              for name, state in states.items()},
                   "memory_bytes_per_account": memory_per_account(redis_state)}
        redis_state.close()
    finally:
        process.terminate()
        process.wait()
    if arguments.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"redis-server {figures['redis_server']} on loopback; {arguments.calls} calls of each question")
    print(f"{'question':<22} {'memory ms':>10} {'redis ms':>9} {'added ms':>9} {'redis p95':>10} {'async added':>12}")
    for kind, row in figures["latency"].items():
        print(f"{kind:<22} {row['memory']['sync_median_ms']:>10.3f} {row['redis']['sync_median_ms']:>9.3f} "
              f"{row['added_sync_median_ms']:>9.3f} {row['redis']['sync_p95_ms']:>10.3f} "
              f"{row['added_async_median_ms']:>12.3f}")
    pairs = figures["lease_pairs_per_second"]
    print(f"lease take+free pairs a second, one thread: memory {pairs['memory']:,.0f}, redis {pairs['redis']:,.0f} "
          "(goal: redis >= 5,000)")
    print(f"Redis memory per busy provider account: {figures['memory_bytes_per_account']:,} bytes")


if __name__ == "__main__":
    main()
