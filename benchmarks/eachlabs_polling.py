"""Polls and completion-detection lag of the Eachlabs adapter's adaptive schedule vs the seed page's 1-second loop.

Run: ``.venv/bin/python benchmarks/eachlabs_polling.py [--skip-real] [--jobs N] [--simulated N]``.

Two parts, clearly apart:

1. **Real runs against the Eachlabs emulator** (about 22 s of wall time, all jobs side by side): the adapter's
   ``generate_flow`` driven by ``run_flow`` + ``RequestsTransport``, next to the seed page's loop (create, then
   ``GET`` every second until ``success``, copied from docs/protocols/eachlabs.md SEED). First one job of exactly 21 s
   each (emulator ``run_time=21``), then ``--jobs`` jobs each whose run time the emulator draws from
   20.5–21.5 s, so the completion falls at a random point of the 1-second grid. Polls are counted, and the
   lag measured, from the emulator's own request log: lag = arrival of the GET that saw ``success`` minus
   (arrival of the create + the job's ``predict_time``). The create's arrival precedes the moment the emulator
   starts the job's clock by a few milliseconds, so a lag near zero may read a few milliseconds negative.
2. **Simulation** (labelled as such): the same pure schedule functions (``PollTimer``, ``DurationEstimate``)
   on a simulated clock with a 50 ms round trip, for many jobs and several duration spreads, including a
   wrong first estimate that the adapter must learn its way out of.

Goal (issue "Provider clients"): for a 21-second job, at most half the polls of the 1-second loop, at no more
than its median lag.
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from photomaker_bridge import PhotoMakerRequest
from photomaker_bridge._http import run_flow
from photomaker_bridge._transports import RequestsTransport
from photomaker_bridge.emulators import EmulatorHandle, EmulatorSettings, start_emulators
from photomaker_bridge.providers._polling import DurationEstimate, PollPolicy, PollTimer, duration_sample
from photomaker_bridge.providers.base import FlowContext
from photomaker_bridge.providers.eachlabs import EachlabsProvider

ROUND_TRIP = 0.05
"""Simulated seconds of one HTTP round trip."""
FACE_URL = "https://example.com/face.png"
"""A reference image URL; the emulators never fetch it (``external_urls_reachable`` makes it count as valid)."""


# ---------------------------------------------------------------------------------------- real (emulator)


def adaptive_job(emulator: EmulatorHandle) -> str:
    """One generation through the adapter (default policy, estimate seeded at the published 21 s)."""
    provider = EachlabsProvider(api_key=emulator.api_key, base_url=emulator.url)
    photo_request = PhotoMakerRequest(prompt="a photo of a person img", images=[FACE_URL])
    transport = RequestsTransport()
    try:
        result = run_flow(provider.generate_flow(provider.plan(photo_request), FlowContext()), transport)
    finally:
        transport.close()
    return str(result.request_id)


def seed_page_job(emulator: EmulatorHandle) -> str:
    """The seed page's client: create, then GET every second until success (docs/protocols/eachlabs.md SEED)."""
    headers = {"X-API-Key": emulator.api_key, "Content-Type": "application/json"}
    body = {"model": "photomaker-style", "version": "0.0.1",
            "input": {"prompt": "A photo of a person img", "input_image": FACE_URL}}
    with requests.Session() as session:
        prediction = session.post(f"{emulator.url}/v1/prediction/", headers=headers, json=body, timeout=30).json()
        if prediction["status"] != "success":
            raise RuntimeError(f"Prediction failed: {prediction}")
        prediction_id: str = prediction["predictionID"]
        while True:
            result = session.get(f"{emulator.url}/v1/prediction/{prediction_id}", headers=headers, timeout=30).json()
            if result["status"] == "success":
                return prediction_id
            if result["status"] == "error":
                raise RuntimeError(f"Prediction failed: {result}")
            time.sleep(1)


def measure_from_log(emulator: EmulatorHandle, prediction_id: str) -> tuple[int, float]:
    """(polls, lag) of one prediction, from the emulator's request log (its own monotonic clock)."""
    creates = [entry for entry in emulator.log if entry.method == "POST" and entry.path.rstrip("/") ==
               "/v1/prediction"]
    polls = [entry for entry in emulator.log if entry.method == "GET" and entry.path ==
             f"/v1/prediction/{prediction_id}"]
    # The create that made this prediction is the last create logged before its first poll.
    create = max((entry for entry in creates if entry.received_at <= polls[0].received_at),
                 key=lambda entry: entry.received_at)
    final = requests.get(f"{emulator.url}/v1/prediction/{prediction_id}", headers={"X-API-Key": emulator.api_key},
                         timeout=30).json()
    finished_at = create.received_at + float(final["metrics"]["predict_time"])
    return len(polls), polls[-1].received_at - finished_at


def real_runs(jobs: int) -> None:
    """Run the jobs side by side on two emulators (exact 21 s, and 20.5–21.5 s) and print polls and lags."""
    exact = EmulatorSettings(run_time=21.0, max_in_flight=100, external_urls_reachable=True)
    jittered = EmulatorSettings(run_time=(20.5, 21.5), max_in_flight=100, external_urls_reachable=True, seed=5)
    with start_emulators(eachlabs=exact) as first, start_emulators(eachlabs=jittered) as second:
        plan: list[tuple[str, EmulatorHandle, Callable[[EmulatorHandle], str]]] = [
            ("exact 21 s", first.eachlabs, adaptive_job), ("exact 21 s", first.eachlabs, seed_page_job)]
        for _ in range(jobs):
            plan += [("20.5–21.5 s", second.eachlabs, adaptive_job), ("20.5–21.5 s", second.eachlabs, seed_page_job)]
        outcomes: list[tuple[str, str, EmulatorHandle, str]] = []
        lock = threading.Lock()

        def run(label: str, emulator: EmulatorHandle, job: Callable[[EmulatorHandle], str]) -> None:
            prediction_id = job(emulator)
            with lock:
                outcomes.append((label, job.__name__, emulator, prediction_id))

        threads = [threading.Thread(target=run, args=item) for item in plan]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(f"REAL RUNS against the Eachlabs emulator ({len(plan)} jobs side by side, "
              f"{time.monotonic() - began:.1f} s wall)")
        print(f"{'jobs':<14}{'client':<16}{'n':>3}{'polls (mean)':>14}{'lag median s':>14}{'lag max s':>11}")
        for label in ("exact 21 s", "20.5–21.5 s"):
            for name, client in (("adaptive_job", "adaptive"), ("seed_page_job", "1-second loop")):
                measured = [measure_from_log(emulator, prediction_id)
                            for each_label, job_name, emulator, prediction_id in outcomes
                            if each_label == label and job_name == name]
                polls = [count for count, _ in measured]
                lags = [lag for _, lag in measured]
                print(f"{label:<14}{client:<16}{len(measured):>3}{statistics.mean(polls):>14.1f}"
                      f"{statistics.median(lags):>14.3f}{max(lags):>11.3f}")
        print("(lag from the create's arrival in the log, a few ms before the job's clock starts: ~0 may read < 0)")
        print()


# ------------------------------------------------------------------------------------------- simulation


def simulate_adaptive(duration: float, estimate: DurationEstimate, policy: PollPolicy) -> tuple[int, float]:
    """SIMULATED: polls and lag of the adaptive schedule for one job, then learn from it like the adapter."""
    timer = PollTimer(policy, estimate.seconds)
    polls = 0
    while True:
        at = timer.next_at
        polls += 1
        if at + ROUND_TRIP / 2 >= duration:  # the server answers half a round trip after the request leaves
            detected = at + ROUND_TRIP
            estimate.update(duration_sample(timer.last_pending, detected, duration))
            return polls, detected - duration
        timer.pending(at + ROUND_TRIP, started=True)


def simulate_one_second_loop(duration: float) -> tuple[int, float]:
    """SIMULATED: the seed page's loop (poll right after create, then sleep 1 s after each answer)."""
    at = 0.0
    polls = 0
    while True:
        polls += 1
        if at + ROUND_TRIP / 2 >= duration:
            return polls, at + ROUND_TRIP - duration
        at += ROUND_TRIP + 1.0


def simulation(count: int) -> None:
    """Print polls and lags of both clients on a simulated clock for several duration spreads."""
    generator = random.Random(7)
    scenarios: list[tuple[str, float, Callable[[], float]]] = [
        ("21 s ± 0.5", 21.0, lambda: generator.uniform(20.5, 21.5)),
        ("21 s ± 3", 21.0, lambda: generator.uniform(18.0, 24.0)),
        ("30 s ± 1, estimate starts at 21", 21.0, lambda: generator.uniform(29.0, 31.0)),
        ("73 s ± 5 (photomaker)", 73.0, lambda: generator.uniform(68.0, 78.0)),
    ]
    print(f"SIMULATION (same pure schedule functions, simulated clock, {ROUND_TRIP * 1000:.0f} ms round trip, "
          f"{count} jobs per scenario in sequence, estimate learned across them)")
    print(f"{'scenario':<34}{'client':<16}{'polls (mean)':>14}{'lag median s':>14}{'lag p90 s':>11}")
    for label, first_estimate, draw in scenarios:
        durations = [draw() for _ in range(count)]
        estimate = DurationEstimate(first_estimate)
        policy = PollPolicy()
        rows: dict[str, list[tuple[int, float]]] = {
            "adaptive": [simulate_adaptive(duration, estimate, policy) for duration in durations],
            "1-second loop": [simulate_one_second_loop(duration) for duration in durations],
        }
        for client, measured in rows.items():
            polls = [count for count, _ in measured]
            lags = sorted(lag for _, lag in measured)
            print(f"{label:<34}{client:<16}{statistics.mean(polls):>14.1f}{statistics.median(lags):>14.3f}"
                  f"{lags[int(0.9 * (len(lags) - 1))]:>11.3f}")
    print()


def main(arguments: Any = None) -> None:
    """Parse the options, then run the real part (unless skipped) and the simulation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-real", action="store_true", help="only the simulation (no 22-second real run)")
    parser.add_argument("--jobs", type=int, default=10, help="jittered real jobs per client (default 10)")
    parser.add_argument("--simulated", type=int, default=2000, help="simulated jobs per scenario (default 2000)")
    options = parser.parse_args(arguments)
    if not options.skip_real:
        real_runs(options.jobs)
    simulation(options.simulated)


if __name__ == "__main__":
    main()
