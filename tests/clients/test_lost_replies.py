"""Replies lost after the provider accepted a job (a loopback proxy drops them): never a second billed job.

* Runware: the bridge chose the taskUUIDs, so it asks getResponse about them and collects the job it finds;
* fal and Eachlabs give the job's id only in the reply: the call ends with a ProviderUnavailableError that says a
  job may have been accepted, and the job is never submitted again (the emulators' counters prove both).
"""

from __future__ import annotations

import helpers_bridge
import pytest
from helpers_bridge import FAST_RETRY, JOB_COUNTER, POLICY, RUN_TIME, open_client, photo_request
from helpers_proxy import DropRule, lossy_proxy

from photomaker_bridge import PhotoMakerResult, ProgressEvent, ProviderUnavailableError
from photomaker_bridge.emulators import Emulators
from photomaker_bridge.providers.base import Provider
from photomaker_bridge.providers.eachlabs import EachlabsProvider
from photomaker_bridge.providers.fal import FalProvider
from photomaker_bridge.providers.runware import RunwareProvider

emulators = helpers_bridge.emulators
emu = helpers_bridge.emu
mode = helpers_bridge.mode

SUBMIT = {
    "runware": {"method": "POST", "path": r"^/v1$", "body": '"taskType":"(photoMaker|imageInference)"'},
    "fal": {"method": "POST", "path": r"^/fal-ai/photomaker$"},
    "eachlabs": {"method": "POST", "path": r"^/v1/prediction/?$"},
}
"""Where each provider's job-creating request goes (a rule per test: rules count what they dropped)."""


def _adapter(name: str, emu: Emulators, url: str) -> Provider:
    if name == "runware":
        return RunwareProvider(api_key=emu.runware.api_key, base_url=url + "/v1", poll_interval=0.02,
                               max_poll_interval=0.05)
    if name == "fal":
        return FalProvider(key=emu.fal.api_key, base_url=url, poll_interval=0.02)
    return EachlabsProvider(api_key=emu.eachlabs.api_key, base_url=url, polling=POLICY, expected_seconds=RUN_TIME)


async def test_runware_recovers_the_job_whose_reply_was_lost(emu: Emulators, mode: str) -> None:
    with lossy_proxy(emu.runware.url) as proxy:
        proxy.rules.append(DropRule(**SUBMIT["runware"]))
        events: list[ProgressEvent] = []
        async with open_client(mode, [_adapter("runware", emu, proxy.url)], FAST_RETRY) as client:
            result = await client.generate(photo_request(), "runware", timeout=30, on_event=events.append)
    assert proxy.dropped == 1
    assert isinstance(result, PhotoMakerResult) and len(result.images) == 2
    assert emu.runware.counters["jobs_created"] == 1  # the job Runware took, collected; never a second
    assert any(event.kind == "retrying" and "getResponse" in str(event.message) for event in events)


async def test_runware_submit_recovers_a_lost_acknowledgement(emu: Emulators, mode: str) -> None:
    with lossy_proxy(emu.runware.url) as proxy:
        proxy.rules.append(DropRule("POST", r"^/v1$", body='"deliveryMethod":"async"'))
        async with open_client(mode, [_adapter("runware", emu, proxy.url)], FAST_RETRY) as client:
            handle = await client.submit(photo_request(), "runware", timeout=30)
            result = await client.result(handle, timeout=30)
    assert proxy.dropped == 1 and len(result.images) == 2 and emu.runware.counters["jobs_created"] == 1


@pytest.mark.parametrize("name", ["fal", "eachlabs"])
async def test_a_lost_submit_reply_is_reported_never_resubmitted(emu: Emulators, mode: str, name: str) -> None:
    with lossy_proxy(emu[name].url) as proxy:
        proxy.rules.append(DropRule(**SUBMIT[name]))
        async with open_client(mode, [_adapter(name, emu, proxy.url)], FAST_RETRY) as client:
            with pytest.raises(ProviderUnavailableError) as caught:
                await client.generate(photo_request(), name, timeout=30)
            assert client.bridge.in_flight(name) == (1 if name == "eachlabs" else 0)  # its slot stays taken
    assert proxy.dropped == 1
    assert emu[name].counters[JOB_COUNTER[name]] == 1  # accepted once, never submitted again
    error = caught.value
    assert error.provider == name and "may have accepted" in error.message and error.status is None
