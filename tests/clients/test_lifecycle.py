"""Client lifecycle, inputs and cancels: what ``Bridge`` and ``AsyncBridge`` promise around the calls themselves.

* used after ``close()``/``aclose()`` → :class:`ClientClosedError`; ``AsyncBridge`` keeps to one event loop;
* ``Bridge`` shared by 50 threads: every call succeeds, uploads shared, limits held;
* after ``os.fork()`` the child's client opens its own connections (the parent's keep working);
* ``timeout`` must be a finite positive number; ``cancel()`` reports what became of each job;
* nothing leaks: the module runs with ``ResourceWarning`` as an error.
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import helpers_bridge
import pytest
from helpers_bridge import FAST_RETRY, JOB_COUNTER, Client, adapters, open_client, photo_request, upload_requests

from photomaker_bridge import (
    AsyncBridge,
    Bridge,
    CancelOutcome,
    ClientClosedError,
    ConfigurationError,
    PhotoMakerResult,
)
from photomaker_bridge.emulators import Emulators, Fault

emulators = helpers_bridge.emulators
emu = helpers_bridge.emu
mode = helpers_bridge.mode
provider = helpers_bridge.provider
client = helpers_bridge.client

pytestmark = pytest.mark.filterwarnings("error::ResourceWarning")


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Unclosed sessions and sockets warn when collected: collect within the test, where warnings are errors."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        gc.collect()


# --------------------------------------------------------------------------------------------- closed clients


@pytest.mark.parametrize("call", ["generate", "submit", "resume", "cancel", "generate_many"])
async def test_a_closed_client_refuses_every_call(emu: Emulators, mode: str, provider: str, call: str) -> None:
    async with open_client(mode, adapters(emu)) as opened:
        handle = await opened.submit(photo_request(), provider, timeout=20)
    arguments: dict[str, tuple[Any, ...]] = {
        "generate": (photo_request(), provider), "submit": (photo_request(), provider),
        "resume": (provider, handle.request_id), "cancel": (handle,), "generate_many": ([photo_request()], provider)}
    with pytest.raises(ClientClosedError, match="is closed"):
        await opened._call(call, *arguments[call])
    assert opened.bridge.closed and "closed" in repr(opened.bridge)
    await _collect(emu, mode, provider, handle)


async def _collect(emu: Emulators, mode: str, provider: str, handle: Any) -> None:
    async with open_client(mode, adapters(emu)) as other:  # leave nothing running
        await other.result(handle, timeout=20)


async def test_closing_twice_is_harmless_and_with_refuses_a_closed_client(emu: Emulators) -> None:
    bridge = Bridge(providers=adapters(emu))
    bridge.close()
    bridge.close()
    with pytest.raises(ClientClosedError), bridge:
        pass
    async_bridge = AsyncBridge(providers=adapters(emu))
    await async_bridge.aclose()
    await async_bridge.aclose()
    with pytest.raises(ClientClosedError):
        async with async_bridge:
            pass


def test_an_async_bridge_keeps_to_its_event_loop(emu: Emulators) -> None:
    bridge = AsyncBridge(providers=adapters(emu), retry=FAST_RETRY)

    async def first() -> PhotoMakerResult:
        return await bridge.generate(photo_request(), "eachlabs", timeout=20)

    async def second() -> None:
        with pytest.raises(ConfigurationError, match="one AsyncBridge per event loop"):
            await bridge.generate(photo_request(), "eachlabs", timeout=20)

    async def close() -> None:
        await bridge.aclose()

    loop = asyncio.new_event_loop()
    try:
        assert len(loop.run_until_complete(first()).images) == 2
        asyncio.run(second())  # another loop: refused before anything is sent or opened
        loop.run_until_complete(close())
    finally:
        loop.close()
    assert emu.eachlabs.counters["predictions_created"] == 1


# ------------------------------------------------------------------------------------------------- threads


def test_fifty_threads_share_one_bridge(emu: Emulators) -> None:
    emu.eachlabs.settings.max_in_flight = 10
    results: list[PhotoMakerResult] = []
    failures: list[BaseException] = []
    start = threading.Barrier(50)

    def work(index: int) -> None:
        name = ("runware", "fal", "eachlabs")[index % 3]
        try:
            start.wait()
            results.append(bridge.generate(photo_request(seed=index + 1), name, timeout=60))
        except BaseException as error:  # reported below
            failures.append(error)

    with Bridge(providers=adapters(emu), retry=FAST_RETRY) as bridge:
        threads = [threading.Thread(target=work, args=(index,)) for index in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == [] and len(results) == 50
    for name in ("runware", "fal", "eachlabs"):
        assert len(upload_requests(emu[name])) == (1 if name == "runware" else 2)  # one upload (fal: token + file)
    assert emu.eachlabs.counters["peak_in_flight"] <= 10 and emu.eachlabs.counters["predictions_rate_limited"] == 0


# ---------------------------------------------------------------------------------------------------- fork


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_uses_connections_of_its_own(emu: Emulators) -> None:
    with Bridge(providers=adapters(emu), retry=FAST_RETRY) as bridge:
        for name in ("runware", "fal", "eachlabs"):
            bridge.generate(photo_request(), name, timeout=20)  # pools now hold open connections
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads running (the emulators')
            child = os.fork()
        if child == 0:  # the child: no pytest machinery, only an exit code
            code = 1
            try:
                for name in ("runware", "fal", "eachlabs"):
                    assert len(bridge.generate(photo_request(seed=7), name, timeout=20).images) == 2
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        for name in ("runware", "fal", "eachlabs"):  # the parent's connections still work
            assert len(bridge.generate(photo_request(seed=9), name, timeout=20).images) == 2


# ------------------------------------------------------------------------------------------------ timeouts


@pytest.mark.parametrize("timeout", [0, -1, math.nan, math.inf, -math.inf, "5", True, False, [5]])
async def test_timeout_must_be_a_finite_positive_number(client: Client, emu: Emulators, timeout: Any) -> None:
    for call, arguments in (("generate", (photo_request(), "runware")), ("submit", (photo_request(), "fal")),
                            ("resume", ("eachlabs", "some-id"))):
        with pytest.raises(ConfigurationError, match="timeout") as caught:
            await client._call(call, *arguments, timeout=timeout)
        assert repr(timeout) in str(caught.value) or type(timeout).__name__ in str(caught.value)
    assert [emu[name].log for name in ("runware", "fal", "eachlabs")] == [[], [], []]


async def test_a_call_returns_within_its_timeout_plus_the_clean_up_grace(client: Client, emu: Emulators,
                                                                         provider: str) -> None:
    emu[provider].settings.faults.append(Fault("stuck_job"))
    emu[provider].settings.latency = 0.2  # every answer slow, the cancel included
    started = time.monotonic()
    with pytest.raises(Exception, match="deadline"):
        await client.generate(photo_request(), provider, timeout=0.5)
    assert time.monotonic() - started < 0.5 + 5.0 + 1.0  # timeout + CLEANUP_GRACE_SECONDS (+ a second of slack)


# ------------------------------------------------------------------------------------------------- cancel


async def test_cancel_reports_what_became_of_each_job(client: Client, emu: Emulators, provider: str) -> None:
    emu[provider].settings.faults.append(Fault("stuck_job"))
    handle = await client.submit(photo_request(num_images=6), provider, timeout=20)
    outcomes = await client.cancel(handle, timeout=20)
    assert [outcome.request_id for outcome in outcomes] == list(handle.request_ids)
    assert all(isinstance(outcome, CancelOutcome) and outcome.provider == provider for outcome in outcomes)
    states = {outcome.state for outcome in outcomes}
    if provider == "runware":
        assert states == {"not_supported"}  # Runware has no cancel: the tasks keep running
    else:
        assert states <= {"cancelled", "cancel_requested"}
        assert emu[provider].counters["cancels"] == len(handle.request_ids)
    assert emu[provider].counters[JOB_COUNTER[provider]] == len(handle.request_ids)


async def test_cancelling_a_finished_job_says_so(client: Client, emu: Emulators, provider: str) -> None:
    result = await client.generate(photo_request(), provider, timeout=20)
    handle = client.bridge.provider(provider).handle_for(result.request_ids[0])
    [outcome] = await client.cancel(handle, timeout=20)
    assert outcome.state == ("not_supported" if provider == "runware" else "already_finished")


async def test_closing_never_takes_more_than_the_clean_up_grace(emu: Emulators, mode: str) -> None:
    """A fal submit still unanswered at close: its request would be cancelled once fal answers, but close() waits
    for that no longer than the grace (5 s), however slow fal is."""
    async with open_client(mode, adapters(emu)) as opened:
        await opened.generate(photo_request(), "fal", timeout=20)  # the photos are uploaded (and cached) now
        emu.fal.settings.latency = 30.0
        with pytest.raises(Exception, match=r"deadline|did not answer"):
            await opened.generate(photo_request(), "fal", timeout=0.2)
        started = time.monotonic()
    assert time.monotonic() - started < 5.0 + 1.5  # CLEANUP_GRACE_SECONDS (+ slack)
    emu.fal.settings.latency = 0.0
