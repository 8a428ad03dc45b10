"""Tied hedging through ``Bridge`` and ``AsyncBridge``: a hedge wins on a slow primary and the queued loser is
cancelled (the emulator saw the cancel); no hedge passes the spend cap; a deadline reports every accepted job."""

from __future__ import annotations

from decimal import Decimal

import helpers_bridge
import pytest
from helpers_bridge import adapters, cancelled_ids, open_client, photo_request
from helpers_routing import accepted, attempted, requests_seen, routing_events, trail

from photomaker_bridge import GenerationTimeoutError, Hedge, MemoryRouterState, ProgressEvent, Route
from photomaker_bridge.emulators import Emulators
from photomaker_bridge.routing._hedge import hedge_delay
from photomaker_bridge.routing._state import ProviderNumbers, SettleHedge

emulators = helpers_bridge.emulators
emu = helpers_bridge.emu
mode = helpers_bridge.mode

GENEROUS = Hedge(after=0.2, max_extra_spend=10)
"""A hedge 0.2 s after the primary was accepted, with room to spend (the cap is tested on its own below)."""


async def test_a_hedge_wins_on_a_slow_primary_and_the_queued_loser_is_cancelled(mode: str, emu: Emulators) -> None:
    emu.fal.settings.queue_time = 60.0  # the primary waits in fal's queue far longer than the hedge delay
    events: list[ProgressEvent] = []
    state = MemoryRouterState()
    async with open_client(mode, adapters(emu), router_state=state) as client:
        result = await client.generate(photo_request(), Route(["fal", "runware"], hedge=GENEROUS), timeout=60,
                                       on_event=events.append)

    assert result.provider == "runware" and len(result.images) == 2
    assert [(entry.provider, entry.outcome) for entry in result.attempts] == [("fal", "cancelled"),
                                                                             ("runware", "ok")]
    loser, winner = result.attempts
    assert loser.provider == "fal" and loser.outcome == "cancelled"
    assert loser.cost is not None and loser.cost.amount == 0  # removed from the queue: free
    assert "cancelled" in (loser.reason or "")
    assert (winner.reason or "").startswith("hedge: fal still queued after")
    # The emulator saw fal's job accepted and then cancelled, by the id the trail names.
    assert accepted(emu, "fal") == 1 and cancelled_ids(emu.fal) == list(loser.request_ids)
    assert ("hedge", "runware") in routing_events(events)
    assert state.hedge_spend[0] == 0


async def test_no_hedge_is_sent_when_the_spend_cap_has_no_room(mode: str, emu: Emulators) -> None:
    emu.fal.settings.queue_time = 0.6
    route = Route(["fal", "runware"], hedge=Hedge(after=0.05, max_extra_spend=0))
    async with open_client(mode, adapters(emu)) as client:
        result = await client.generate(photo_request(), route, timeout=60)
    assert result.provider == "fal"
    assert trail(result.attempts) == [("runware", "skipped", None), ("fal", "ok", None)]
    assert "hedge spend cap" in (result.attempts[0].reason or "")
    assert requests_seen(emu)["runware"] == 0


async def test_hedge_spend_never_passes_its_share_of_the_routes_spend(mode: str, emu: Emulators) -> None:
    emu.fal.settings.queue_time = 0.4
    state = MemoryRouterState()
    state.seed("fal", unit_prices=["0.0001"] * 3)  # 2 images at 50 steps: 0.01 USD
    state.seed("runware", unit_prices=["0.00005"] * 3)  # 2 images at 20 steps: 0.002 USD
    ratio = Decimal("0.10")
    route = Route(["fal", "runware"], hedge=Hedge(after=0.05, max_extra_spend=ratio))
    hedged: list[bool] = []
    async with open_client(mode, adapters(emu), router_state=state) as client:
        # The first call: its hedge (0.002 USD at worst) is more than 10 % of its own primary (0.01 USD).
        first = await client.generate(photo_request(), route, timeout=60)
        hedged.append("runware" in attempted(first.attempts))
        # Results of hedged routes earlier in the client's life leave room.
        state.perform(SettleHedge(None, Decimal(0), Decimal("0.05")))
        for _ in range(3):
            result = await client.generate(photo_request(), route, timeout=60)
            hedged.append("runware" in attempted(result.attempts))
            extra, base = state.hedge_spend
            assert extra <= ratio * base
    assert hedged[0] is False and any(hedged[1:])


async def test_a_deadline_during_a_race_reports_every_accepted_job(mode: str, emu: Emulators) -> None:
    emu.fal.settings.queue_time = 120.0
    emu.eachlabs.settings.queue_time = 120.0  # neither ever runs, so neither cancels the other
    async with open_client(mode, adapters(emu)) as client:
        with pytest.raises(GenerationTimeoutError) as caught:
            await client.generate(photo_request(), Route(["fal", "eachlabs"], hedge=GENEROUS), timeout=2.0)
    error = caught.value
    assert sorted(handle.provider for handle in error.handles) == ["eachlabs", "fal"]
    assert error.handle in error.handles
    ids = {request_id for handle in error.handles for request_id in handle.request_ids}
    assert accepted(emu, "fal") == accepted(emu, "eachlabs") == 1
    assert ids == {request_id for entry in error.attempts for request_id in entry.request_ids}
    assert attempted(error.attempts) == ["fal", "eachlabs"]


async def test_no_hedge_while_the_primary_runs(mode: str, emu: Emulators) -> None:
    emu.fal.settings.run_time = 0.6  # accepted, then running at once: a tied hedge is never sent
    async with open_client(mode, adapters(emu)) as client:
        result = await client.generate(photo_request(), Route(["fal", "runware"], hedge=Hedge(after=0.05,
                                                                                             max_extra_spend=10)),
                                       timeout=60)
    assert attempted(result.attempts) == ["fal"] and requests_seen(emu)["runware"] == 0


def test_the_hedge_delay_is_the_learned_p95_queue_wait_or_a_fixed_number() -> None:
    assert hedge_delay(2.5, None, "fal") == 2.5
    assert hedge_delay("p95", None, "fal") == 15.0  # fal's seed total time, before anything was learned
    learned = ProviderNumbers(p95_queue_seconds=0.8, queue_samples=20, p95_seconds=4.0, samples=20)
    assert hedge_delay("p95", learned, "fal") == 0.8
    few_queues = ProviderNumbers(p95_queue_seconds=0.8, queue_samples=2, p95_seconds=4.0, samples=20)
    assert hedge_delay("p95", few_queues, "fal") == 4.0
