"""A property of every route, against the emulators, with both clients: whatever each provider does, the number of
attempts never passes ``max_attempts``, every job a provider accepted is in the trail, and the trail is what the
emulators saw (and what the policy table says should happen)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

import helpers_bridge
from helpers_bridge import FAST_RETRY, JOB_COUNTER, PROVIDERS, adapters, job_ids, photo_request
from helpers_routing import attempted, refuse_submits, requests_seen
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from photomaker_bridge import AsyncBridge, Attempt, Bridge, BridgeError, PhotoMakerResult, Route
from photomaker_bridge.emulators import Emulators, Fault

emulators = helpers_bridge.emulators

OUTCOMES = ("ok", "refused", "failed", "credits")
"""What a provider does with every job of the example: deliver, refuse the submit (503), accept the job and fail it,
refuse for lack of credit (402)."""


def _arrange(emu: Emulators, outcomes: dict[str, str]) -> None:
    emu.reset()
    for provider, outcome in outcomes.items():
        if outcome == "refused":
            refuse_submits(emu, provider, 503)
        elif outcome == "credits":
            refuse_submits(emu, provider, 402)
        elif outcome == "failed":
            emu[provider].settings.faults.append(Fault("fail_job"))


def _expected(order: Sequence[str], outcomes: dict[str, str], max_attempts: int) -> tuple[list[str], bool]:
    """The policy table, as a model: the attempts the route should make, and whether it ends with a result."""
    tried: Counter[str] = Counter()
    cooled: set[str] = set()
    made: list[str] = []
    while len(made) < max_attempts:
        candidates = [name for name in order if name not in cooled]
        if not candidates:
            break
        chosen = min(candidates, key=lambda name: (tried[name], order.index(name)))
        made.append(chosen)
        tried[chosen] += 1
        if outcomes[chosen] == "ok":
            return made, True
        if outcomes[chosen] == "credits":
            cooled.add(chosen)
    return made, False


def _run(mode: str, emu: Emulators, route: Route) -> tuple[Any, tuple[Attempt, ...]]:
    async def call_async() -> Any:
        async with AsyncBridge(providers=adapters(emu), retry=FAST_RETRY) as bridge:
            return await bridge.generate(photo_request(), route, timeout=60)

    try:
        if mode == "sync":
            with Bridge(providers=adapters(emu), retry=FAST_RETRY) as bridge:
                outcome: Any = bridge.generate(photo_request(), route, timeout=60)
        else:
            outcome = asyncio.run(call_async())
    except BridgeError as error:
        return error, error.attempts
    return outcome, tuple(outcome.attempts)


@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(order=st.permutations(PROVIDERS), chosen=st.tuples(*[st.sampled_from(OUTCOMES)] * 3),
       max_attempts=st.integers(1, 4), mode=st.sampled_from(["sync", "async"]))
def test_attempts_stay_within_max_attempts_and_the_trail_is_what_the_emulators_saw(
        emulators: Emulators, order: list[str], chosen: tuple[str, str, str], max_attempts: int, mode: str) -> None:
    outcomes = dict(zip(PROVIDERS, chosen, strict=True))
    _arrange(emulators, outcomes)
    route = Route(order, max_attempts=max_attempts)

    outcome, trail = _run(mode, emulators, route)

    made = attempted(trail)
    assert len(made) <= max_attempts
    expected, succeeds = _expected(order, outcomes, max_attempts)
    assert made == expected
    assert isinstance(outcome, PhotoMakerResult) == succeeds
    if succeeds:
        assert outcome.provider == made[-1] and trail[-1].request_ids == outcome.request_ids
    seen = requests_seen(emulators)
    for provider in PROVIDERS:
        entries = [entry for entry in trail if entry.provider == provider and entry.outcome != "skipped"]
        if not entries:
            assert seen[provider] == 0, provider  # never tried: never sent anything
            continue
        # Every job the provider accepted is in the trail, under the ids the emulator knows.
        with_jobs = [entry for entry in entries if entry.outcome == "ok" or entry.error_type == "GenerationFailedError"]
        assert emulators[provider].counters[JOB_COUNTER[provider]] == len(with_jobs), provider
        known = set(job_ids(emulators[provider]))
        for entry in with_jobs:
            assert entry.request_ids and set(entry.request_ids) <= known, (provider, entry)
        for entry in entries:
            assert entry.error_type == {"ok": None, "refused": "ProviderUnavailableError",
                                        "failed": "GenerationFailedError",
                                        "credits": "InsufficientCreditsError"}[outcomes[provider]]
