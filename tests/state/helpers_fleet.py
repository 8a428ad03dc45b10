"""A fleet for the multi-process acceptance tests: the emulators in one process, workers in others, each worker
with its own ``Bridge`` and its own ``RedisState`` over one real redis-server (spawned processes: nothing is
inherited but what is passed)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import attrs

RATE_WINDOW = 3
"""The rate tests' window (seconds): a per-minute limit with a shorter window, so the test takes seconds."""

CONTEXT = multiprocessing.get_context("spawn")


def serve_emulators(connection: multiprocessing.connection.Connection, settings: dict[str, dict[str, Any]]) -> None:
    """The emulator process: start the emulators, send their addresses, then answer commands until ``stop``."""
    from photomaker_bridge.emulators import EmulatorSettings, Fault, start_emulators

    configured = {name: EmulatorSettings(**{"queue_time": 0.0, **values}) for name, values in settings.items()}
    with start_emulators(**configured) as emulators:
        connection.send({"runware": (emulators.runware.rest_url, emulators.runware.api_key),
                         "fal": (emulators.fal.url, emulators.fal.api_key),
                         "eachlabs": (emulators.eachlabs.url, emulators.eachlabs.api_key)})
        while True:
            command, *arguments = connection.recv()
            if command == "stop":
                connection.send(None)
                return
            if command == "counters":
                connection.send({name: dict(emulators[name].counters) for name in ("runware", "fal", "eachlabs")})
            elif command == "fault":
                name, fields = arguments
                emulators[name].settings.faults.append(Fault(**fields))
                connection.send(None)
            elif command == "creates":  # when each Eachlabs create arrived (the emulator's monotonic clock)
                connection.send([entry.received_at for entry in list(emulators.eachlabs.log)
                                 if entry.method == "POST" and entry.path.rstrip("/") == "/v1/prediction"])
            elif command == "requests":
                connection.send({name: len(emulators[name].log) for name in ("runware", "fal", "eachlabs")})


class EmulatorProcess:
    """The fifth process: ``ask(...)`` sends a command and returns its answer."""

    def __init__(self, settings: dict[str, dict[str, Any]]) -> None:
        self.connection, child = CONTEXT.Pipe()
        self.process = CONTEXT.Process(target=serve_emulators, args=(child, settings), daemon=True)
        self.process.start()
        self.addresses: dict[str, tuple[str, str]] = self.connection.recv()

    def ask(self, *command: Any) -> Any:
        self.connection.send(command)
        return self.connection.recv()

    def close(self) -> None:
        if self.process.is_alive():
            self.ask("stop")
        self.process.join(30)


def build_providers(addresses: dict[str, tuple[str, str]], eachlabs: dict[str, Any]) -> list[Any]:
    """The three adapters at the emulators; ``eachlabs`` sets Eachlabs' limits (``rate_window`` shortens its
    per-minute window, for tests only)."""
    from helpers_bridge import POLICY

    from photomaker_bridge.providers.eachlabs import EachlabsProvider
    from photomaker_bridge.providers.fal import FalProvider
    from photomaker_bridge.providers.runware import RunwareProvider

    window = eachlabs.pop("rate_window", None)

    class WindowedEachlabs(EachlabsProvider):  # type: ignore[misc]
        def limits(self) -> Any:
            limits = super().limits()
            return limits if window is None else attrs.evolve(limits, rate_window=window)

    return [RunwareProvider(api_key=addresses["runware"][1], base_url=addresses["runware"][0], poll_interval=0.02,
                            max_poll_interval=0.05),
            FalProvider(key=addresses["fal"][1], base_url=addresses["fal"][0], poll_interval=0.02),
            WindowedEachlabs(api_key=addresses["eachlabs"][1], base_url=addresses["eachlabs"][0], polling=POLICY,
                             expected_seconds=0.05, **eachlabs)]


def run_worker(spec: dict[str, Any], results: Any) -> None:
    """One worker process: ``spec["count"]`` generates through one Bridge (``spec["threads"]`` at a time); puts
    ``(index, outcomes)`` on ``results``, each outcome ``("ok", request ids, cost, trail)`` or ``("error", type,
    message)``."""
    from helpers_bridge import FAST_RETRY, photo_request

    from photomaker_bridge import BreakerSettings, Bridge, BridgeError, Route
    from photomaker_bridge.state import RedisState

    providers = build_providers(spec["addresses"], dict(spec.get("eachlabs", {})))
    provider: Any = spec["provider"]
    if isinstance(provider, list):
        provider = Route(provider)
    breaker = BreakerSettings(**spec["breaker"]) if "breaker" in spec else None
    keys = spec.get("keys")
    state = RedisState(spec["redis"], namespace=spec["namespace"])
    with Bridge(providers=providers, state=state, retry=FAST_RETRY, budget=spec.get("budget"),
                breaker=breaker) as bridge:
        def one(index: int) -> tuple[Any, ...]:
            try:
                result = bridge.generate(photo_request(num_images=1), provider, timeout=spec.get("timeout", 120),
                                         idempotency_key=None if keys is None else keys[index])
            except BridgeError as error:
                return ("error", type(error).__name__, str(error)[:300])
            cost = None if result.cost is None else str(result.cost.amount)
            return ("ok", list(result.request_ids), cost,
                    [(entry.provider, entry.outcome) for entry in result.attempts])

        with ThreadPoolExecutor(max_workers=spec.get("threads", 8)) as pool:
            outcomes = list(pool.map(one, range(spec["count"])))
    results.put((spec["index"], outcomes))


def run_fleet(specs: list[dict[str, Any]], timeout: float = 600) -> dict[int, list[tuple[Any, ...]]]:
    """Start one worker per spec, wait for all, and return each one's outcomes by index."""
    results = CONTEXT.Queue()
    workers = [CONTEXT.Process(target=run_worker, args=(spec, results)) for spec in specs]
    for worker in workers:
        worker.start()
    collected = dict(results.get(timeout=timeout) for _ in workers)
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0, f"a worker ended with {worker.exitcode}"
    return collected


def most_in_any_window(times: list[float], window: float) -> int:
    """The most of ``times`` that fall within any span of ``window`` seconds."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def total(outcomes: list[tuple[Any, ...]]) -> Decimal:
    """The sum of the reported costs of the successful outcomes."""
    return sum((Decimal(outcome[2]) for outcome in outcomes if outcome[0] == "ok" and outcome[2]), Decimal(0))
