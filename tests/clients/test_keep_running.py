"""``generate(keep_running=True)``: a passed deadline leaves the provider's job running (never cancelled), with
its handle on the timeout and in the ``handle`` event, so it can be collected later; so does collecting that fails
for good (``ProviderError.handle``), and a route then stops rather than pay a second provider; a Runware handle
given before its tasks were sent says ``never_accepted`` when Runware never got them."""

from __future__ import annotations

import datetime
import uuid

import helpers_bridge
import pytest
from helpers_bridge import JOB_COUNTER, Client, cancelled_ids, photo_request

from photomaker_bridge import (
    AuthenticationError,
    ConfigurationError,
    GenerationTimeoutError,
    Hedge,
    JobHandle,
    ProgressEvent,
    ProviderError,
    Route,
)
from photomaker_bridge.emulators import Emulators, Fault

emulators = helpers_bridge.emulators
emu = helpers_bridge.emu
mode = helpers_bridge.mode
client = helpers_bridge.client


@pytest.mark.parametrize("provider", ["fal", "eachlabs"])
async def test_a_passed_deadline_leaves_the_job_running_with_its_handle(client: Client, emu: Emulators,
                                                                        provider: str) -> None:
    emu[provider].settings.run_time = 3.0
    events: list[ProgressEvent] = []
    with pytest.raises(GenerationTimeoutError) as caught:
        await client.generate(photo_request(), provider, timeout=0.6, keep_running=True, on_event=events.append)
    handle = caught.value.handle
    assert handle is not None and cancelled_ids(emu[provider]) == []
    (given,) = [event for event in events if event.kind == "handle"]
    assert given.handle == handle and given.accepted is True
    emu[provider].settings.run_time = 0.05
    await collected_once(client, emu, provider, handle)


async def collected_once(client: Client, emu: Emulators, provider: str, handle: JobHandle) -> None:
    """``handle`` collects the job the provider kept running, which was sent once."""
    result = await client.result(handle, timeout=30)
    assert list(result.request_ids) == list(handle.request_ids)
    assert emu[provider].counters[JOB_COUNTER[provider]] == 1


@pytest.mark.parametrize("provider", ["fal", "eachlabs"])
async def test_without_keep_running_the_deadline_cancels_the_job(client: Client, emu: Emulators,
                                                                  provider: str) -> None:
    """The default, for contrast: the same deadline cancels the job where the provider allows it."""
    emu[provider].settings.run_time = 3.0
    with pytest.raises(GenerationTimeoutError):
        await client.generate(photo_request(), provider, timeout=0.6)
    assert len(cancelled_ids(emu[provider])) == 1


async def test_a_hedged_route_refuses_keep_running_before_sending(client: Client, emu: Emulators) -> None:
    route = Route(["fal", "runware"], hedge=Hedge(after=0.05))
    with pytest.raises(ConfigurationError, match="keep_running"):
        await client.generate(photo_request(), route, keep_running=True)
    assert sum(handle.counters["requests"] for handle in emu) == 0


@pytest.mark.parametrize(("delivery", "never"), [("sync", True), ("async", False)])
async def test_only_a_runware_handle_made_before_its_post_says_never_accepted(client: Client, emu: Emulators,
                                                                              delivery: str, never: bool) -> None:
    """A sync handle exists before its POST leaves, so tasks Runware does not know were never sent; an async
    handle's tasks were acknowledged, so not finding them later does not make them unbilled."""
    handle = JobHandle(provider="runware", request_ids=[str(uuid.uuid4())],
                       submitted_at=datetime.datetime.now(datetime.UTC), requested_images=1, images_per_request=[1],
                       details={"delivery": delivery})
    with pytest.raises(ProviderError) as caught:
        await client.result(handle, timeout=10)
    assert caught.value.code == "taskNotFound" and caught.value.never_accepted is never
    assert emu.runware.counters["jobs_created"] == 0


async def test_a_runware_task_that_failed_is_not_never_accepted(client: Client, emu: Emulators) -> None:
    emu.runware.settings.faults.append(Fault("fail_job"))
    handle = await client.submit(photo_request(), "runware", timeout=10)
    with pytest.raises(ProviderError) as caught:
        await client.result(handle, timeout=10)
    assert not caught.value.never_accepted


STATUS_CALLS = {"fal": Fault("status", status=401, route=r"/requests/[^/]+/status", method="GET"),
                "eachlabs": Fault("status", status=401, route=r"^/v1/prediction/[^/]+$", method="GET")}
"""A key refused on the status calls alone: collecting fails for good while the job runs on."""


@pytest.mark.parametrize("keep_running", [True, False])
@pytest.mark.parametrize("provider", ["fal", "eachlabs"])
async def test_failed_collecting_leaves_a_kept_job_running_with_its_handle(client: Client, emu: Emulators,
                                                                           provider: str, keep_running: bool) -> None:
    """With ``keep_running`` the job runs on and the error carries its handle, which collects it once; without it
    (the contrast) the job is cancelled and the error has no handle."""
    emu[provider].settings.run_time = 0.3 if keep_running else 3.0
    emu[provider].settings.faults.append(STATUS_CALLS[provider])
    with pytest.raises(AuthenticationError) as caught:
        await client.generate(photo_request(), provider, timeout=30, keep_running=keep_running)
    handle = caught.value.handle
    if not keep_running:
        assert handle is None and len(cancelled_ids(emu[provider])) == 1
        return
    assert isinstance(handle, JobHandle) and cancelled_ids(emu[provider]) == []
    emu[provider].settings.faults.clear()
    await collected_once(client, emu, provider, handle)


async def test_runware_polls_that_fail_leave_the_handle_on_the_error(client: Client, emu: Emulators) -> None:
    """Runware has no cancel: tasks whose getResponse polls fail run on, and the error says how to collect them."""
    emu.runware.settings.run_time = 0.3
    handle = await client.submit(photo_request(), "runware", timeout=10)
    emu.runware.settings.faults.append(Fault("status", status=401, body='"taskType":"getResponse"'))
    with pytest.raises(AuthenticationError) as caught:
        await client.result(handle, timeout=10)
    assert caught.value.handle == handle and f"resume({handle.request_id})" in str(caught.value)
    emu.runware.settings.faults.clear()
    assert (await client.result(handle, timeout=30)).images


async def test_a_route_stops_on_a_job_left_running_instead_of_paying_another_provider(client: Client,
                                                                                    emu: Emulators) -> None:
    emu.fal.settings.run_time = 0.3
    emu.fal.settings.faults.append(STATUS_CALLS["fal"])
    with pytest.raises(AuthenticationError) as caught:  # its policy alone (cooldown) would fall back
        await client.generate(photo_request(), Route(["fal", "eachlabs"]), timeout=30, keep_running=True)
    assert caught.value.handle is not None and caught.value.provider == "fal"
    assert emu.eachlabs.counters["predictions_created"] == 0 and cancelled_ids(emu.fal) == []
    assert [attempt.provider for attempt in caught.value.attempts] == ["fal"]
