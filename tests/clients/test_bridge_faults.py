"""Every injected fault surfaces through ``Bridge`` and ``AsyncBridge`` as the right typed error.

Each test runs for every provider × client (sync ``Bridge``, async ``AsyncBridge``) against the emulators over
real loopback HTTP. HTTP faults (401, 402, 429 with Retry-After, 5xx, a dropped connection, malformed JSON)
are aimed at the request that submits the job (``SUBMIT_FAULT_TARGET``), so the uploads before it succeed and
the provider never accepts a job; job faults (failed, stuck) hit a job the provider accepted, whose id the
error must then carry.

fal_client retries 408/409/429, ingress 5xx and dropped connections internally, up to
``fal_client.client.MAX_ATTEMPTS`` (10) times with exponential backoff (fal.md §1.9). So that such a fault
surfaces at once as our typed error instead of after ~50 s of retries, the fal cases lower ``MAX_ATTEMPTS`` to
1 (monkeypatched, restored after the test); :func:`test_fal_client_absorbs_a_single_429` shows the retry
itself with the default, using a fault that fires once (``times=1``).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import fal_client.client as fal_module
import helpers_bridge
import pytest
from helpers_bridge import (
    JOB_COUNTER,
    SUBMIT_FAULT_TARGET,
    Client,
    adapters,
    cancelled_ids,
    job_ids,
    open_client,
    photo_request,
    submitted_payloads,
)

from photomaker_bridge import (
    AuthenticationError,
    GenerationFailedError,
    GenerationTimeoutError,
    InsufficientCreditsError,
    JobHandle,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
)
from photomaker_bridge.emulators import Emulators, Fault

# The shared fixtures, bound here so that pytest finds them (emulators per module, client per test).
emulators = helpers_bridge.emulators
emu = helpers_bridge.emu
mode = helpers_bridge.mode
provider = helpers_bridge.provider
client = helpers_bridge.client

# kind, status, expected class, retryable
HTTP_FAULTS: dict[str, tuple[str, int | None, type[ProviderError], bool]] = {
    "401": ("status", 401, AuthenticationError, False),
    "402": ("status", 402, InsufficientCreditsError, False),
    "429": ("status", 429, RateLimitedError, True),
    "500": ("status", 500, ProviderUnavailableError, True),
    "503": ("status", 503, ProviderUnavailableError, True),
    "drop": ("drop", None, ProviderUnavailableError, True),
    "malformed": ("malformed", None, ProviderUnavailableError, True),
}
RETRY_AFTER = 7.0


FAL_CLIENT_ATTEMPTS = fal_module.MAX_ATTEMPTS
"""fal_client's own number of attempts per call (10 in fal_client 1.0)."""


@pytest.fixture(autouse=True)
def _fal_client_gives_up_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """fal_client would retry 429s and dropped connections ten times with backoff (fal.md §1.9); these tests
    want the fault itself, so fal_client makes one attempt (restored after each test)."""
    monkeypatch.setattr(fal_module, "MAX_ATTEMPTS", 1)


def _raw_message(provider: str, raw: Any) -> str:
    """The error text inside a provider's own error body (each answers in its own shape)."""
    assert isinstance(raw, dict), raw
    if provider == "runware":
        assert isinstance(raw["errors"], list) and len(raw["errors"]) == 1
        return str(raw["errors"][0]["message"])
    if provider == "fal":
        return str(raw["detail"])
    # Eachlabs: {"error": ...}, with "details" for 402/429 (eachlabs.md §2.3).
    return str(raw.get("details") or raw["error"])


@pytest.mark.parametrize("fault_name", list(HTTP_FAULTS))
async def test_http_fault_on_submit_is_a_typed_error(client: Client, emu: Emulators, provider: str,
                                                     fault_name: str, request: pytest.FixtureRequest) -> None:
    kind, status, error_class, retryable = HTTP_FAULTS[fault_name]
    emulator = emu[provider]
    text = f"emulated {fault_name} {uuid.uuid4().hex[:8]}"
    emulator.settings.faults.append(Fault(kind, status=status, message=text if kind == "status" else None,
                                          retry_after=RETRY_AFTER if status == 429 else None,
                                          **SUBMIT_FAULT_TARGET[provider]))

    with pytest.raises(ProviderError) as caught:
        await client.generate(photo_request(), provider, timeout=20)

    error = caught.value
    assert type(error) is error_class
    assert error.provider == provider
    assert error.retryable is retryable
    assert emulator.counters[f"fault:{kind}"] == 1
    assert emulator.counters[JOB_COUNTER[provider]] == 0  # nothing was accepted
    if kind == "status":
        assert error.status == status
        assert text in _raw_message(provider, error.raw)  # the provider's own body, as received
        assert text in error.message
    elif kind == "drop":
        assert error.status is None and error.raw is None  # no HTTP answer at all
        assert error.__cause__ is not None  # the HTTP library's own error, kept for debugging
    else:
        assert error.status == 200
        assert isinstance(error.raw, str) and error.raw
        with pytest.raises(ValueError):
            json.loads(error.raw)
    if status == 429:
        assert isinstance(error, RateLimitedError) and error.retry_after == RETRY_AFTER
    if provider == "runware":
        # A request-level failure is stamped with the taskUUID of the request's task (the request's id).
        [tasks] = submitted_payloads(emulator)
        assert error.request_id == tasks[0]["taskUUID"]
    assert str(error).startswith(provider)  # the error's text says who failed


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


async def test_fal_client_absorbs_a_single_429(client: Client, emu: Emulators,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """With fal_client's own retries left on, one 429 on the submit is retried inside fal_client."""
    monkeypatch.setattr(fal_module, "MAX_ATTEMPTS", FAL_CLIENT_ATTEMPTS)
    assert FAL_CLIENT_ATTEMPTS > 1
    emu.fal.settings.faults.append(Fault("status", status=429, retry_after=0, times=1,
                                         **SUBMIT_FAULT_TARGET["fal"]))

    result = await client.generate(photo_request(), "fal", timeout=20)

    assert len(result.images) == 2
    assert emu.fal.counters["fault:status"] == 1
    assert emu.fal.counters["route:POST /fal-ai/photomaker"] == 2  # refused once, accepted on the retry
    assert emu.fal.counters["submits"] == 1


async def test_a_refused_key_is_an_authentication_error(emu: Emulators, mode: str, provider: str) -> None:
    """Not an injected 401: the emulator's own key check refuses a wrong key."""
    async with open_client(mode, adapters(emu, **{provider: "not-the-emulator-key"})) as wrong:
        with pytest.raises(AuthenticationError) as caught:
            await wrong.generate(photo_request(), provider, timeout=20)
    assert caught.value.provider == provider and caught.value.status == 401
    assert emu[provider].counters[JOB_COUNTER[provider]] == 0
