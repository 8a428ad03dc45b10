"""A job whose collecting failed for good while it may still deliver is never abandoned for another provider: its
error carries the handle (``ProviderError.handle``), the route stops there, and what the job may cost is booked —
for a fal request that completed but whose result could not be fetched, and in a hedge race."""

from __future__ import annotations

from decimal import Decimal

import attrs
import helpers_bridge
import pytest
from helpers_bridge import Client, adapters, cancelled_ids, open_client, photo_request

from photomaker_bridge import Hedge, JobHandle, MemoryRouterState, ProgressEvent, ProviderError, Route
from photomaker_bridge.emulators import Emulators, Fault

emulators = helpers_bridge.emulators
emu = helpers_bridge.emu
mode = helpers_bridge.mode
client = helpers_bridge.client

RESULT_FETCH = Fault("status", status=503, route=r"/requests/[^/]+$", method="GET")
"""fal's result URL failing: the request completed (and is billed), its images cannot be fetched."""


@pytest.mark.parametrize("keep_running", [False, True])
async def test_a_completed_fal_request_not_fetched_stops_the_route_with_its_handle(
        client: Client, emu: Emulators, keep_running: bool) -> None:
    emu.fal.settings.run_time = 0.2
    emu.fal.settings.faults.append(RESULT_FETCH)
    with pytest.raises(ProviderError) as caught:
        await client.generate(photo_request(), Route(["fal", "eachlabs"]), timeout=60, keep_running=keep_running)
    assert isinstance(caught.value.handle, JobHandle) and caught.value.provider == "fal"
    assert emu.eachlabs.counters["predictions_created"] == 0 and cancelled_ids(emu.fal) == []
    emu.fal.settings.faults.clear()
    assert (await client.result(caught.value.handle, timeout=30)).images  # collected, not paid again


async def test_a_job_left_running_is_booked_at_its_estimate(mode: str, emu: Emulators) -> None:
    state = MemoryRouterState()
    emu.fal.settings.faults.append(Fault("status", status=401, route=r"/requests/[^/]+/status", method="GET"))
    async with open_client(mode, adapters(emu), budget="5", router_state=state) as bridge:
        with pytest.raises(ProviderError) as caught:
            await bridge.generate(photo_request(), "fal", timeout=30, keep_running=True)
    assert caught.value.handle is not None
    assert state.spent > Decimal(0)  # it may still bill: its estimate stays booked against the client's budget


async def test_a_hedge_race_decides_on_the_failure_whose_job_runs_on(mode: str, emu: Emulators) -> None:
    """The primary's polls and cancel fail (its job runs on); the hedge's job fails: the route stops with the
    primary's handle instead of sending a third attempt."""
    emu.fal.settings.queue_time = 60.0
    emu.eachlabs.settings.queue_time = 1.0
    emu.eachlabs.settings.faults.append(Fault("fail_job", nth=1))

    def on_event(event: ProgressEvent) -> None:
        if event.kind == "hedge":
            emu.fal.settings.faults.append(Fault("status", status=503, route=r"/requests/[^/]+/status", method="GET"))
            emu.fal.settings.faults.append(Fault("status", status=500, route=r"/cancel", method="PUT"))

    route = Route(["fal", "eachlabs"], hedge=Hedge(after=0.2, max_extra_spend=10), max_attempts=3)
    async with open_client(mode, adapters(emu)) as bridge:
        with pytest.raises(ProviderError) as caught:
            await bridge.generate(photo_request(), route, timeout=60, on_event=on_event)
    handle = caught.value.handle
    assert handle is not None and handle.provider == "fal"
    assert emu.fal.counters["submits"] == 1 and emu.eachlabs.counters["predictions_created"] == 1
    assert any(handle.request_id in attempt.request_ids for attempt in caught.value.attempts)


async def test_a_refused_later_submit_whose_cancel_fails_keeps_the_earlier_requests_handle(
        client: Client, emu: Emulators) -> None:
    """The second fal submission of an 8-image job is refused, and cancelling the first fails: it runs on, so the
    error names it with a handle."""
    emu.fal.settings.faults.append(Fault("status", status=401, route=r"^/fal-ai/photomaker$", method="POST", nth=2))
    emu.fal.settings.faults.append(Fault("status", status=500, route=r"/cancel", method="PUT"))
    with pytest.raises(ProviderError) as caught:
        await client.generate(attrs.evolve(photo_request(), num_images=8), "fal", timeout=30)
    assert caught.value.handle is not None and len(caught.value.handle.request_ids) == 1
    assert emu.fal.counters["submits"] == 1
