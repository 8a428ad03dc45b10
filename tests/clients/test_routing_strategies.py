"""Strategies and budgets through ``Bridge`` and ``AsyncBridge``: ``cheapest`` and ``fastest`` pick as the router
state's numbers say and change their pick when the numbers change; budgets refuse before any request."""

from __future__ import annotations

from decimal import Decimal

import helpers_bridge
import pytest
from helpers_bridge import adapters, open_client, photo_request
from helpers_routing import accepted, attempted, requests_seen, trail

from photomaker_bridge import BudgetExceededError, MemoryRouterState, Route
from photomaker_bridge.emulators import Emulators

emulators = helpers_bridge.emulators
emu = helpers_bridge.emu
mode = helpers_bridge.mode

NOTHING = {"runware": 0, "fal": 0, "eachlabs": 0}


async def test_cheapest_picks_the_lowest_price_of_this_request_and_follows_the_numbers(
        mode: str, emu: Emulators) -> None:
    state = MemoryRouterState()
    state.seed("runware", unit_prices=["0.00050"] * 5)
    state.seed("fal", unit_prices=["0.00010"] * 5)
    state.seed("eachlabs", unit_prices=["0.00030"] * 5)
    route = Route(["runware", "fal", "eachlabs"], strategy="cheapest")
    async with open_client(mode, adapters(emu), router_state=state) as client:
        first = await client.generate(photo_request(), route, timeout=30)
        assert first.provider == "fal" and accepted(emu, "fal") == 1
        assert first.attempts[-1].reason == "first choice"

        # Runware's results turn out far cheaper: its median price per unit of work drops below fal's.
        state.seed("runware", unit_prices=["0.000001"] * 20)
        second = await client.generate(photo_request(), route, timeout=30)
        assert second.provider == "runware"


async def test_cheapest_learns_reported_prices_from_results(mode: str, emu: Emulators) -> None:
    state = MemoryRouterState()
    async with open_client(mode, adapters(emu), router_state=state) as client:
        result = await client.generate(photo_request(), "eachlabs", timeout=30)
    assert result.cost is not None and result.cost.source == "reported"
    learned = state.numbers("eachlabs").unit_price
    assert learned is not None and learned > 0


async def test_fastest_picks_the_lowest_learned_median_and_follows_the_numbers(mode: str, emu: Emulators) -> None:
    state = MemoryRouterState()
    state.seed("runware", seconds=[9.0] * 5)
    state.seed("fal", seconds=[6.0] * 5)
    state.seed("eachlabs", seconds=[2.0] * 5)
    route = Route(["runware", "fal", "eachlabs"], strategy="fastest")
    async with open_client(mode, adapters(emu), router_state=state) as client:
        first = await client.generate(photo_request(), route, timeout=30)
        assert first.provider == "eachlabs"
        state.seed("eachlabs", seconds=[60.0] * 20)  # Eachlabs slows down: its median moves past fal's
        second = await client.generate(photo_request(), route, timeout=30)
        assert second.provider == "fal"
    assert state.numbers("fal").samples == 6  # every result teaches its time


async def test_weighted_routes_never_pick_a_provider_of_weight_zero(mode: str, emu: Emulators) -> None:
    route = Route(["runware", "fal"], strategy="weighted", weights=[0, 1])
    async with open_client(mode, adapters(emu)) as client:
        for _ in range(4):
            result = await client.generate(photo_request(), route, timeout=30)
            assert result.provider == "fal"
    assert requests_seen(emu)["runware"] == 0


async def test_a_call_budget_refuses_every_attempt_before_any_request(mode: str, emu: Emulators) -> None:
    route = Route(["runware", "fal", "eachlabs"], budget=Decimal("0.000001"))
    async with open_client(mode, adapters(emu)) as client:
        with pytest.raises(BudgetExceededError) as caught:
            await client.generate(photo_request(), route, timeout=30)
    error = caught.value
    assert error.scope == "call" and error.budget == Decimal("0.000001") and error.estimate is not None
    assert trail(error.attempts) == [(name, "skipped", None) for name in ("runware", "fal", "eachlabs")]
    assert all("budget" in (entry.reason or "") for entry in error.attempts)
    assert requests_seen(emu) == NOTHING


async def test_a_call_budget_passes_over_what_does_not_fit(mode: str, emu: Emulators) -> None:
    state = MemoryRouterState()
    state.seed("runware", unit_prices=["0.01"] * 3)  # 2 images at 20 steps: 0.40 USD
    state.seed("fal", unit_prices=["0.00001"] * 3)  # 2 images at 50 steps: 0.001 USD
    async with open_client(mode, adapters(emu), router_state=state) as client:
        result = await client.generate(photo_request(), Route(["runware", "fal"], budget="0.01"), timeout=30)
    assert trail(result.attempts) == [("runware", "skipped", None), ("fal", "ok", None)]
    assert requests_seen(emu)["runware"] == 0


async def test_a_client_budget_counts_every_call_and_refuses_before_any_request(mode: str, emu: Emulators) -> None:
    state = MemoryRouterState()
    async with open_client(mode, adapters(emu), budget="0.02", router_state=state) as client:
        first = await client.generate(photo_request(), "runware", timeout=30)  # a direct call counts too
        assert first.cost is not None and state.spent == first.cost.amount
        state.seed("runware", unit_prices=["0.001"] * 3)  # 2 images at 20 steps: 0.04 USD, over what is left
        before = requests_seen(emu)
        with pytest.raises(BudgetExceededError) as caught:
            await client.generate(photo_request(), "runware", timeout=30)
        assert caught.value.scope == "client" and caught.value.budget == Decimal("0.02")
        assert requests_seen(emu) == before
        # A route passes over the provider that does not fit and uses one that does.
        state.seed("eachlabs", unit_prices=["0.00001"] * 3)
        result = await client.generate(photo_request(), Route(["runware", "eachlabs"]), timeout=30)
        assert attempted(result.attempts) == ["eachlabs"] and result.attempts[0].outcome == "skipped"
