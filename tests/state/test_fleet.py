"""The acceptance tests of one shared state across processes: four worker processes (``multiprocessing``, spawned),
each with its own ``Bridge`` and ``RedisState``, against the emulators in a fifth process and a real
redis-server. Assertions read what the emulators recorded (their counters and request log), never timings."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from helpers_fleet import CONTEXT, RATE_WINDOW, EmulatorProcess, most_in_any_window, run_fleet, run_worker, total
from helpers_redis import RedisServer

from photomaker_bridge.state import RedisState
from photomaker_bridge.state._operations import CountLeases, ReadJob

WORKERS = 4


@pytest.fixture
def fleet_namespace() -> str:
    return f"fleet-{uuid.uuid4().hex[:8]}"


def specs(emulators: EmulatorProcess, server: RedisServer, namespace: str, **common: Any) -> list[dict[str, Any]]:
    return [{"index": index, "addresses": emulators.addresses, "redis": server.url, "namespace": namespace,
             **common} for index in range(WORKERS)]


@pytest.fixture
def capped_emulators() -> Iterator[EmulatorProcess]:
    # Eachlabs' own cap (10 in flight per key) is on: one create past it would be a 429 in its counters.
    process = EmulatorProcess({"runware": {}, "fal": {}, "eachlabs": {"run_time": (0.05, 0.15), "max_in_flight": 10}})
    yield process
    process.close()


def test_four_processes_never_pass_eachlabs_concurrency_cap(capped_emulators: EmulatorProcess,
                                                              redis_server: RedisServer, fleet_namespace: str) -> None:
    outcomes = run_fleet(specs(capped_emulators, redis_server, fleet_namespace, provider="eachlabs", count=100,
                               threads=16, eachlabs={"concurrency": 10}))
    counters = capped_emulators.ask("counters")["eachlabs"]
    assert all(outcome[0] == "ok" for results in outcomes.values() for outcome in results), outcomes
    assert counters["predictions_created"] == WORKERS * 100
    assert counters["peak_in_flight"] <= 10
    assert counters.get("predictions_rate_limited", 0) == 0


def test_four_processes_never_pass_a_per_minute_limit_in_any_window(
        capped_emulators: EmulatorProcess, redis_server: RedisServer, fleet_namespace: str) -> None:
    # 10 creates per window across the fleet; the window is RATE_WINDOW seconds here instead of 60 (the same code).
    outcomes = run_fleet(specs(capped_emulators, redis_server, fleet_namespace, provider="eachlabs", count=10,
                               threads=10, eachlabs={"concurrency": 10, "per_minute": 10,
                                                     "rate_window": RATE_WINDOW}))
    assert all(outcome[0] == "ok" for results in outcomes.values() for outcome in results), outcomes
    creates = capped_emulators.ask("creates")
    assert len(creates) == WORKERS * 10
    # The emulator sees each create a moment after the state counted it (the transit: the worker's thread, the
    # request). Any half window at the emulator holds creates the state admitted within half a window plus that
    # transit: at most 10 while a transit stays under half the window (1.5 s), whatever the machine's load.
    assert most_in_any_window(creates, RATE_WINDOW / 2) <= 10
    assert most_in_any_window(creates, RATE_WINDOW * 3) > 10  # the fleet did go as fast as the limit allowed


def test_a_breaker_opened_by_one_process_is_skipped_by_the_others(
        capped_emulators: EmulatorProcess, redis_server: RedisServer, fleet_namespace: str) -> None:
    capped_emulators.ask("fault", "fal", {"kind": "status", "status": 503, "route": "^/fal-ai/photomaker$",
                                          "method": "POST"})
    common = {"provider": ["fal", "runware"], "breaker": {"failures": 3, "cooldown": 600}, "threads": 1}
    opener = specs(capped_emulators, redis_server, fleet_namespace, count=3, **common)[:1]
    run_fleet(opener)
    fal_requests = capped_emulators.ask("requests")["fal"]
    others = specs(capped_emulators, redis_server, fleet_namespace, count=25, **{**common, "threads": 4})[1:]
    outcomes = run_fleet(others)
    assert capped_emulators.ask("requests")["fal"] == fal_requests  # no request reached fal
    for results in outcomes.values():
        assert all(outcome[0] == "ok" and outcome[3] == [("fal", "skipped"), ("runware", "ok")]
                   for outcome in results), results


def test_a_shared_budget_is_never_passed_by_more_than_one_estimate(
        capped_emulators: EmulatorProcess, redis_server: RedisServer, fleet_namespace: str) -> None:
    budget, estimate = Decimal("0.05"), Decimal("0.0013")  # Runware reports 0.0013 USD an image, as estimated
    outcomes = run_fleet(specs(capped_emulators, redis_server, fleet_namespace, provider="runware", count=25,
                               threads=8, budget=str(budget)))
    every = [outcome for results in outcomes.values() for outcome in results]
    spent = total(every)
    assert spent <= budget + estimate
    assert spent >= budget - 8 * WORKERS * estimate  # the budget was used, not refused early
    refused = [outcome for outcome in every if outcome[0] == "error"]
    assert refused and all(outcome[1] == "BudgetExceededError" for outcome in refused)


def test_a_killed_process_jobs_are_resumed_not_paid_again_and_its_leases_expire(
        redis_server: RedisServer, fleet_namespace: str) -> None:
    emulators = EmulatorProcess({"runware": {}, "fal": {}, "eachlabs": {"run_time": 30.0, "max_in_flight": 10}})
    try:
        keys = [f"order-{index}" for index in range(8)]
        spec = {"index": 0, "addresses": emulators.addresses, "redis": redis_server.url, "namespace": fleet_namespace,
                "provider": "eachlabs", "count": len(keys), "keys": keys, "threads": 8, "timeout": 5,
                "eachlabs": {"concurrency": 10, "lease_seconds": 3.0}}
        results = CONTEXT.Queue()  # kept referenced: the child opens it after the parent has moved on
        victim = CONTEXT.Process(target=run_worker, args=(spec, results))
        victim.start()
        deadline = time.monotonic() + 120
        while emulators.ask("counters")["eachlabs"].get("predictions_created", 0) < len(keys):
            assert time.monotonic() < deadline, "the jobs were never created"
            time.sleep(0.1)
        state = RedisState(redis_server.url, namespace=fleet_namespace)
        account = spec_account(emulators)
        while sum(1 for key in keys if (entry := state.perform(ReadJob(key))) and entry.handle) < len(keys):
            assert time.monotonic() < deadline, "the handles were never journaled"
            time.sleep(0.05)
        assert state.perform(CountLeases(account)) == len(keys)
        os.kill(victim.pid, signal.SIGKILL)  # mid-job: every prediction is accepted and still running
        victim.join(30)
        created = emulators.ask("counters")["eachlabs"]["predictions_created"]
        while state.perform(CountLeases(account)) > 0:  # nobody renews them any more
            assert time.monotonic() < deadline, "the killed process's leases never expired"
            time.sleep(0.1)

        # The jobs keep running their 30 s at the provider: the resumer collects them when they end.
        rerun = {**spec, "index": 1, "timeout": 90}
        outcomes = run_fleet([rerun], timeout=300)[1]
        assert emulators.ask("counters")["eachlabs"]["predictions_created"] == created  # no second job
        journaled = {key: state.perform(ReadJob(key)) for key in keys}
        assert all(outcome[0] == "ok" for outcome in outcomes), outcomes
        for key, outcome in zip(keys, outcomes, strict=True):
            assert outcome[1] == list(journaled[key].handle["request_ids"])
            assert journaled[key].status == "completed"
        state.close()
    finally:
        emulators.close()


def spec_account(emulators: EmulatorProcess) -> str:
    from photomaker_bridge.providers._steps import account_of

    return account_of("eachlabs", emulators.addresses["eachlabs"][1])
