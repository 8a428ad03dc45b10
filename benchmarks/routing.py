"""What routing costs and what it buys, in one run against the emulators (docs/routing.md, "Figures").

1. **Failover once a breaker is open** — the added latency of a route whose first provider's breaker is open (it
   is skipped without a request) over a direct call to the second provider: median of paired differences
   (goal: at most 1 ms).
2. **Tied hedging on a slow tail** — 5 % of fal's jobs wait 10× longer in its queue (the emulators' ``slow_job``
   fault). p99 of a route ``fal → runware`` without and with ``Hedge("p95", max_extra_spend=0.10)``, and the extra
   spend: what the hedged run spent beyond what the same requests cost unhedged (goal: hedged p99 at most 0.2 ×
   unhedged, at most 10 % extra). The hedged client first runs half as many requests again as a warm-up (not
   measured), as a client that has been running would have: fal's queue wait is learned and the spend cap has a
   history to take its share of. The emulated jobs run 15× faster than the real ones (1 s for fal's ~15 s), which scales
   fal's and Eachlabs' per-second prices down by itself; Runware's per-image price is scaled down the same way, so
   the providers keep their real price ratio (``pricing.py``).
3. **One provider failing 30 % of its jobs** — 1,000 requests on the route ``fal → eachlabs → runware`` while fal
   fails 30 % of its jobs (``fail_job``): the share that succeeds (goal: 100 %), next to fal alone.

The emulators run in a process of their own, so this one holds only the client.

    python benchmarks/routing.py                        # the figures of docs/routing.md
    python benchmarks/routing.py --requests 300 --json  # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from typing import Any

from photomaker_bridge import AsyncBridge, BridgeError, Hedge, PhotoMakerRequest, PhotoMakerResult, Route
from photomaker_bridge.providers.base import Provider
from photomaker_bridge.providers.eachlabs import EachlabsProvider
from photomaker_bridge.providers.fal import FalProvider
from photomaker_bridge.providers.runware import RunwareProvider
from photomaker_bridge.routing import BreakerSettings, MemoryRouterState
from photomaker_bridge.samples import sample_faces

KEY = "emulator-0123456789abcdef01234567"
PROMPT = "a photo of a man img in a spacesuit"
NAMES = ("runware", "fal", "eachlabs")

_CHILD = """
import json, sys
from photomaker_bridge.emulators import EmulatorSettings, Fault, start_emulators
settings = {name: EmulatorSettings(api_key=KEY, max_in_flight=100_000, seed=11) for name in NAMES}
with start_emulators(**settings) as emulators:
    print(json.dumps({name: emulators[name].url for name in NAMES}), flush=True)
    for line in sys.stdin:  # {"name": ..., "queue_time": ..., "run_time": ..., "faults": [...], ...}
        command = json.loads(line)
        emulator = emulators[command["name"]]
        counters = dict(emulator.counters)
        emulator.reset()
        emulator.settings.queue_time = command.get("queue_time", 0.0)
        emulator.settings.run_time = command.get("run_time", 0.05)
        emulator.settings.cost_per_image = command.get("cost_per_image", 0.0013)
        emulator.settings.faults[:] = [Fault(**fields) for fields in command.get("faults", [])]
        print(json.dumps(counters), flush=True)
"""


class Emulators:
    """The three emulators in a process of their own, set up over stdin."""

    def __init__(self) -> None:
        script = _CHILD.replace("KEY", repr(KEY)).replace("NAMES", repr(NAMES))
        self.process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.urls: dict[str, str] = json.loads(self._line())

    def _line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline()

    def set(self, name: str, *, queue_time: float = 0.0, run_time: float = 0.05,
            faults: list[dict[str, Any]] | None = None, cost_per_image: float = 0.0013) -> dict[str, int]:
        """Reset emulator ``name`` to these settings; answers its counters before the reset."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"name": name, "queue_time": queue_time, "run_time": run_time,
                                             "faults": faults or [], "cost_per_image": cost_per_image}) + "\n")
        self.process.stdin.flush()
        counters: dict[str, int] = json.loads(self._line())
        return counters

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def adapters(urls: dict[str, str], expected: float) -> list[Provider]:
    """The three adapters on the emulators, polling at the emulators' pace."""
    return [
        RunwareProvider(api_key=KEY, base_url=urls["runware"] + "/v1", poll_interval=0.02, max_poll_interval=0.05),
        FalProvider(key=KEY, base_url=urls["fal"], poll_interval=0.02),
        EachlabsProvider(api_key=KEY, base_url=urls["eachlabs"], expected_seconds=expected, concurrency=None),
    ]


REQUEST = PhotoMakerRequest(prompt=PROMPT, images=[sample_faces()[0]], seed=7)


async def timed(bridge: AsyncBridge, provider: Any) -> tuple[float, PhotoMakerResult | BridgeError]:
    started = time.perf_counter()
    try:
        result: PhotoMakerResult | BridgeError = await bridge.generate(REQUEST, provider, timeout=120)
    except BridgeError as error:
        result = error
    return time.perf_counter() - started, result


async def many(bridge: AsyncBridge, provider: Any, count: int,
               concurrency: int) -> list[tuple[float, PhotoMakerResult | BridgeError]]:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> tuple[float, PhotoMakerResult | BridgeError]:
        async with gate:
            return await timed(bridge, provider)

    return list(await asyncio.gather(*(one() for _ in range(count))))


# -- 1. failover once a breaker is open --------------------------------------------------------------------------


async def failover(urls: dict[str, str], pairs: int) -> dict[str, float]:
    state = MemoryRouterState()
    breaker = BreakerSettings(failures=1, cooldown=3600)
    async with AsyncBridge(providers=adapters(urls, 0.05), router_state=state, breaker=breaker) as bridge:
        await timed(bridge, "runware")  # the face is uploaded once, as every later call finds it
        emulators_fal_down = Route(["fal", "runware"])
        from photomaker_bridge.routing._state import Record

        await state.aperform(Record("fal", time.time(), breaker, ok=False))  # fal's breaker: open for the hour
        assert state.breaker("fal").status == "open"
        differences: list[float] = []
        direct_times: list[float] = []
        routed_times: list[float] = []
        for _ in range(pairs):
            direct, _ = await timed(bridge, "runware")
            routed, result = await timed(bridge, emulators_fal_down)
            assert isinstance(result, PhotoMakerResult) and result.provider == "runware"
            assert result.attempts[0].outcome == "skipped"
            direct_times.append(direct)
            routed_times.append(routed)
            differences.append(routed - direct)
    return {"pairs": pairs, "direct_median_ms": statistics.median(direct_times) * 1000,
            "routed_median_ms": statistics.median(routed_times) * 1000,
            "added_median_ms": statistics.median(differences) * 1000}


# -- 2. tied hedging on a slow tail ------------------------------------------------------------------------------


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * 0.99 + 0.5) - 1)]


async def hedging(emulators: Emulators, count: int, concurrency: int, queue: float,
                  run: float) -> dict[str, Any]:
    slow = [{"kind": "slow_job", "rate": 0.05, "seconds": 9 * (queue + run)}]  # 10x the whole job
    speedup = 15.0 / (queue + run)  # fal's ~15 s job (pricing.py's seed) compressed into queue + run
    figures: dict[str, Any] = {}
    for label, hedge in (("unhedged", None), ("hedged", Hedge(after="p95", max_extra_spend=Decimal("0.10")))):
        emulators.set("fal", queue_time=queue, run_time=run, faults=slow)
        emulators.set("runware", run_time=run, cost_per_image=0.0013 / speedup)
        route = Route(["fal", "runware"], hedge=hedge)
        async with AsyncBridge(providers=adapters(emulators.urls, queue + run)) as bridge:
            if hedge is not None:
                await many(bridge, route, count // 2, concurrency)  # warm-up: learn fal's queue wait, build a base
                emulators.set("fal", queue_time=queue, run_time=run, faults=slow)  # count the measured jobs only
            state = bridge.router_state
            assert isinstance(state, MemoryRouterState)
            before = state.hedge_spend
            outcomes = await many(bridge, route, count, concurrency)
            after = state.hedge_spend
        times = [seconds for seconds, outcome in outcomes if isinstance(outcome, PhotoMakerResult)]
        results = [outcome for _, outcome in outcomes if isinstance(outcome, PhotoMakerResult)]
        spent = sum((entry.cost.amount for result in results for entry in result.attempts
                     if entry.cost is not None), Decimal(0))
        hedges = sum(1 for result in results for entry in result.attempts if (entry.reason or "").startswith("hedge"))
        figures[label] = {"requests": count, "failed": count - len(results), "p50_s": statistics.median(times),
                          "p99_s": p99(times), "hedges_sent": hedges,
                          "winners": dict(Counter(result.provider for result in results)),
                          "spent_usd": spent.quantize(Decimal("0.000001")),
                          "hedge_extra_usd": after[0] - before[0], "hedged_base_usd": after[1] - before[1]}
        figures[label]["fal_slow_jobs"] = emulators.set("fal").get("fault:slow_job", 0)
    unhedged, hedged = figures["unhedged"], figures["hedged"]
    figures["p99_ratio"] = hedged["p99_s"] / unhedged["p99_s"]
    figures["extra_spend_share"] = float(hedged["spent_usd"] / unhedged["spent_usd"] - 1)
    base = hedged["hedged_base_usd"]
    figures["hedge_spend_share"] = float(hedged["hedge_extra_usd"] / base) if base else 0.0
    return figures


# -- 3. one provider failing 30 % --------------------------------------------------------------------------------


async def failing(emulators: Emulators, count: int, concurrency: int, rate: float) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for label, provider in (("fal alone", "fal"), ("route", Route(["fal", "eachlabs", "runware"]))):
        emulators.set("fal", faults=[{"kind": "fail_job", "rate": rate}])
        emulators.set("eachlabs")
        emulators.set("runware")
        async with AsyncBridge(providers=adapters(emulators.urls, 0.05)) as bridge:
            outcomes = await many(bridge, provider, count, concurrency)
        results = [outcome for _, outcome in outcomes if isinstance(outcome, PhotoMakerResult)]
        attempts = Counter(sum(1 for entry in result.attempts if entry.outcome != "skipped") for result in results)
        figures[label] = {"requests": count, "succeeded": len(results), "success_rate": len(results) / count,
                          "served_by": dict(Counter(result.provider for result in results)),
                          "attempts_per_result": dict(sorted(attempts.items())),
                          "fal_jobs_failed": emulators.set("fal").get("fault:fail_job", 0)}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="requests of parts 2 and 3")
    parser.add_argument("--pairs", type=int, default=200, help="paired calls of part 1")
    parser.add_argument("--concurrency", type=int, default=25)
    parser.add_argument("--queue-time", type=float, default=0.5, help="fal's usual queue wait in part 2 (s)")
    parser.add_argument("--run-time", type=float, default=0.5, help="every job's run time in part 2 (s)")
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    emulators = Emulators()
    try:
        for name in NAMES:
            emulators.set(name)
        figures = {
            "failover": asyncio.run(failover(emulators.urls, arguments.pairs)),
            "hedging": asyncio.run(hedging(emulators, arguments.requests, arguments.concurrency,
                                           arguments.queue_time, arguments.run_time)),
            "failing": asyncio.run(failing(emulators, arguments.requests, arguments.concurrency, 0.3)),
        }
    finally:
        emulators.stop()
    if arguments.json:
        print(json.dumps(figures, indent=2, default=str))
        return
    one, two, three = figures["failover"], figures["hedging"], figures["failing"]
    print(f"1. failover once fal's breaker is open ({one['pairs']} pairs): direct runware "
          f"{one['direct_median_ms']:.2f} ms, route fal→runware {one['routed_median_ms']:.2f} ms, added "
          f"{one['added_median_ms']:.3f} ms median (goal <= 1 ms)")
    print(f"2. 5 % of fal's jobs 10x slower, {arguments.requests} requests, {arguments.concurrency} in flight:")
    for label in ("unhedged", "hedged"):
        row = two[label]
        print(f"   {label:9} p50 {row['p50_s']:.3f} s  p99 {row['p99_s']:.3f} s  hedges {row['hedges_sent']:4}  "
              f"slow fal jobs {row['fal_slow_jobs']:3}  winners {row['winners']}  spent {row['spent_usd']} USD  "
              f"failed {row['failed']}")
    print(f"   hedged p99 / unhedged p99 = {two['p99_ratio']:.3f} (goal <= 0.2); spent {two['extra_spend_share']:+.2%} "
          f"vs unhedged, hedge spend {two['hedge_spend_share']:.2%} of the hedged route's (goal <= 10 %)")
    print(f"3. fal fails 30 % of its jobs, {arguments.requests} requests:")
    for label, row in three.items():
        print(f"   {label:9} success {row['success_rate']:.1%} ({row['succeeded']}/{row['requests']})  served by "
              f"{row['served_by']}  attempts per result {row['attempts_per_result']}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
