"""Job faults and refused keys through ``Bridge`` and ``AsyncBridge``: the typed error carries the job's id.

Each test runs for every provider × client (sync ``Bridge``, async ``AsyncBridge``) against the emulators over
real loopback HTTP. HTTP faults on every step are in ``test_fault_matrix.py``.
"""

from __future__ import annotations

import json

import helpers_bridge
import pytest
from helpers_bridge import JOB_COUNTER, Client, adapters, cancelled_ids, job_ids, open_client, photo_request

from photomaker_bridge import (
    AuthenticationError,
    GenerationFailedError,
    GenerationTimeoutError,
    JobHandle,
)
from photomaker_bridge.emulators import Emulators, Fault

# The shared fixtures, bound here so that pytest finds them (emulators per module, client per test).
emulators = helpers_bridge.emulators
emu = helpers_bridge.emu
mode = helpers_bridge.mode
provider = helpers_bridge.provider
client = helpers_bridge.client


async def test_failed_job_is_a_generation_failed_error_with_its_id(client: Client, emu: Emulators,
                                                                   provider: str) -> None:
    emulator = emu[provider]
    emulator.settings.faults.append(Fault("fail_job", message="CUDA out of memory (emulated)"))

    with pytest.raises(GenerationFailedError) as caught:
        await client.generate(photo_request(), provider, timeout=20)

    error = caught.value
    assert error.provider == provider
    assert emulator.counters[JOB_COUNTER[provider]] == 1  # the job was accepted, then failed
    assert error.request_id == job_ids(emulator)[0]
    assert "CUDA out of memory (emulated)" in error.message
    assert "CUDA out of memory (emulated)" in json.dumps(error.raw)
    if provider != "runware":
        assert cancelled_ids(emulator) == []  # a finished job needs no cancel


async def test_stuck_job_times_out_with_its_handle_and_generate_cancels_it(client: Client, emu: Emulators,
                                                                          provider: str) -> None:
    emulator = emu[provider]
    emulator.settings.faults.append(Fault("stuck_job"))

    with pytest.raises(GenerationTimeoutError) as caught:
        await client.generate(photo_request(), provider, timeout=0.4)

    error = caught.value
    assert error.provider == provider
    assert emulator.counters[JOB_COUNTER[provider]] == 1
    [job_id] = job_ids(emulator)
    assert error.request_id == job_id
    assert isinstance(error.handle, JobHandle)
    assert error.handle.provider == provider and error.handle.request_ids == (job_id,)
    if provider == "runware":
        # Runware has no cancel API: the error says the task keeps running and can be collected later.
        assert "no cancel" in error.message and job_id in error.message
    else:
        # generate() cancels on its deadline: nobody will collect the job.
        assert cancelled_ids(emulator) == [job_id]
        assert emulator.counters["cancels"] == 1


async def test_a_refused_key_is_an_authentication_error(emu: Emulators, mode: str, provider: str) -> None:
    """Not an injected 401: the emulator's own key check refuses a wrong key."""
    async with open_client(mode, adapters(emu, **{provider: "not-the-emulator-key"})) as wrong:
        with pytest.raises(AuthenticationError) as caught:
            await wrong.generate(photo_request(), provider, timeout=20)
    assert caught.value.provider == provider and caught.value.status == 401
    assert emu[provider].counters[JOB_COUNTER[provider]] == 0
