"""Circuit breakers through ``Bridge`` and ``AsyncBridge``: open after failures, skip without a request, let one
probe through after the cool-down, close on its success; with every candidate open, wait for the first half-open
within the deadline (or fail at once when it lies past it).

Waits are never guessed: a test that needs the cool-down over sleeps until the moment the breaker itself says
(``retry_at``), so a slow machine only makes it later, never wrong.
"""

from __future__ import annotations

import asyncio
import time

import helpers_bridge
import pytest
from helpers_bridge import adapters, open_client, photo_request
from helpers_routing import attempted, refuse_submits, requests_seen, routing_events, trail

from photomaker_bridge import BreakerSettings, MemoryRouterState, ProgressEvent, ProviderUnavailableError, Route
from photomaker_bridge.emulators import Emulators

emulators = helpers_bridge.emulators
emu = helpers_bridge.emu
mode = helpers_bridge.mode

LONG = BreakerSettings(failures=2, cooldown=600)
"""Opens after two failures and stays open for the test's whole life."""


async def _until_probe_is_due(state: MemoryRouterState, provider: str) -> None:
    retry_at = state.breaker(provider).retry_at
    assert retry_at is not None
    while time.time() < retry_at:
        await asyncio.sleep(max(retry_at - time.time(), 0.0) + 0.01)


async def test_an_open_breaker_skips_its_provider_without_a_request(mode: str, emu: Emulators) -> None:
    refuse_submits(emu, "fal", 503)
    state = MemoryRouterState()
    route = Route(["fal", "runware"])
    async with open_client(mode, adapters(emu), breaker=LONG, router_state=state) as client:
        for _ in range(2):
            result = await client.generate(photo_request(), route, timeout=30)
            assert attempted(result.attempts) == ["fal", "runware"]
        assert state.breaker("fal").status == "open"

        before = requests_seen(emu)["fal"]
        events: list[ProgressEvent] = []
        result = await client.generate(photo_request(), route, timeout=30, on_event=events.append)
        assert trail(result.attempts) == [("fal", "skipped", None), ("runware", "ok", None)]
        assert "circuit open (2 failures in a row)" in (result.attempts[0].reason or "")
        assert requests_seen(emu)["fal"] == before
        assert routing_events(events)[:2] == [("skipped", "fal"), ("attempt", "runware")]


async def test_after_the_cool_down_one_probe_goes_and_its_success_closes_the_breaker(
        mode: str, emu: Emulators) -> None:
    refuse_submits(emu, "fal", 503)
    state = MemoryRouterState()
    route = Route(["fal", "runware"])
    async with open_client(mode, adapters(emu), breaker=BreakerSettings(failures=1, cooldown=1.0),
                           router_state=state) as client:
        await client.generate(photo_request(), route, timeout=30)
        assert state.breaker("fal").status == "open"
        emu.fal.settings.faults.clear()  # fal is well again
        await _until_probe_is_due(state, "fal")

        probe = await client.generate(photo_request(), route, timeout=30)
        assert trail(probe.attempts) == [("fal", "ok", None)]
        assert "half-open probe" in (probe.attempts[0].reason or "")
        assert state.breaker("fal").status == "closed"


async def test_a_failed_probe_opens_the_breaker_again(mode: str, emu: Emulators) -> None:
    refuse_submits(emu, "fal", 503)
    state = MemoryRouterState()
    async with open_client(mode, adapters(emu), breaker=BreakerSettings(failures=1, cooldown=1.0),
                           router_state=state) as client:
        await client.generate(photo_request(), Route(["fal", "runware"]), timeout=30)
        first_retry_at = state.breaker("fal").retry_at
        await _until_probe_is_due(state, "fal")
        result = await client.generate(photo_request(), Route(["fal", "runware"]), timeout=30)
        assert attempted(result.attempts) == ["fal", "runware"]
        breaker = state.breaker("fal")
        assert breaker.status == "open" and breaker.reason == "its half-open probe failed"
        assert first_retry_at is not None and breaker.retry_at is not None and breaker.retry_at > first_retry_at


async def test_with_every_breaker_open_the_route_waits_for_the_first_half_open(mode: str, emu: Emulators) -> None:
    refuse_submits(emu, "fal", 503)
    refuse_submits(emu, "eachlabs", 503)
    state = MemoryRouterState()
    route = Route(["fal", "eachlabs"], max_attempts=2)
    async with open_client(mode, adapters(emu), breaker=BreakerSettings(failures=1, cooldown=1.0),
                           router_state=state) as client:
        with pytest.raises(ProviderUnavailableError):
            await client.generate(photo_request(), route, timeout=30)
        assert state.breaker("fal").status == state.breaker("eachlabs").status == "open"
        emu.fal.settings.faults.clear()
        emu.eachlabs.settings.faults.clear()
        due = min(state.breaker("fal").retry_at or 0.0, state.breaker("eachlabs").retry_at or 0.0)

        events: list[ProgressEvent] = []
        result = await client.generate(photo_request(), route, timeout=60, on_event=events.append)
        assert time.time() >= due  # it waited for the half-open moment instead of failing at once
        assert trail(result.attempts)[:2] == [("fal", "skipped", None), ("eachlabs", "skipped", None)]
        assert result.attempts[-1].outcome == "ok" and "half-open probe" in (result.attempts[-1].reason or "")
        assert "waiting" in [event.kind for event in events]


async def test_with_every_breaker_open_past_the_deadline_the_route_fails_at_once(mode: str, emu: Emulators) -> None:
    refuse_submits(emu, "fal", 503)
    refuse_submits(emu, "eachlabs", 503)
    route = Route(["fal", "eachlabs"], max_attempts=2)
    async with open_client(mode, adapters(emu), breaker=BreakerSettings(failures=1, cooldown=600)) as client:
        with pytest.raises(ProviderUnavailableError):
            await client.generate(photo_request(), route, timeout=30)
        before = requests_seen(emu)
        with pytest.raises(ProviderUnavailableError) as caught:
            await client.generate(photo_request(), route, timeout=5)
        assert caught.value.code == "circuit_open" and caught.value.retryable
        assert trail(caught.value.attempts) == [("fal", "skipped", None), ("eachlabs", "skipped", None)]
        assert requests_seen(emu) == before


async def test_a_direct_call_is_not_gated_but_teaches_the_breaker(mode: str, emu: Emulators) -> None:
    refuse_submits(emu, "fal", 503)
    state = MemoryRouterState()
    async with open_client(mode, adapters(emu), breaker=LONG, router_state=state) as client:
        for _ in range(3):
            with pytest.raises(ProviderUnavailableError):
                await client.generate(photo_request(), "fal", timeout=30)
        assert state.breaker("fal").status == "open"
        emu.fal.settings.faults.clear()
        result = await client.generate(photo_request(), "fal", timeout=30)  # the caller asked for fal by name
        assert result.provider == "fal" and state.breaker("fal").status == "closed"
