"""When Redis itself fails: a server of the test's own, stopped (and started again) mid-run.

``on_state_error="fail"``: a call that needs the state refuses with ``StateUnavailableError`` before sending
anything; a job accepted before the failure is never lost (a running call still returns its images, with a
warning; an idempotent call whose journal could not record the accepted job raises with its handle).
``"local"``: calls go on with this process's memory, each result saying so in a warning, and go back to Redis
once it answers again."""

from __future__ import annotations

import time

import helpers_bridge
import pytest
from helpers_bridge import adapters, photo_request
from helpers_redis import RedisServer
from helpers_routing import accepted

from photomaker_bridge import Bridge, ProgressEvent, Route, StateUnavailableError
from photomaker_bridge.emulators import Emulators
from photomaker_bridge.state import RedisState

emulators = helpers_bridge.emulators
emu = helpers_bridge.emu


def state_warnings(result: object) -> list[str]:
    return [warning.reason for warning in result.warnings if warning.field == "state"]  # type: ignore[attr-defined]


def test_fail_refuses_before_sending_once_redis_is_gone(emu: Emulators, server: RedisServer) -> None:
    state = RedisState(server.url, on_state_error="fail", timeout=0.5)
    with Bridge(providers=adapters(emu), state=state) as bridge:
        assert not state_warnings(bridge.generate(photo_request(), "eachlabs", timeout=30))
        server.stop()
        before = len(emu.eachlabs.log)
        with pytest.raises(StateUnavailableError, match="nothing was sent") as caught:
            bridge.generate(photo_request(), "eachlabs", timeout=30)
        assert caught.value.handle is None
        with pytest.raises(StateUnavailableError):  # a route needs its breakers: refused too
            bridge.generate(photo_request(), Route(["runware", "fal"]), timeout=30)
        assert len(emu.eachlabs.log) == before and accepted(emu, "runware") == 0
        # A direct call with no limit, breaker or budget has no question to ask before it sends: it goes on, and
        # its result says the bookkeeping afterwards could not reach Redis.
        assert state_warnings(bridge.generate(photo_request(), "fal", timeout=30))
        server.start()  # the same port: the client reconnects on its next call
        assert len(bridge.generate(photo_request(), "eachlabs", timeout=30).images) == 2
    assert accepted(emu, "eachlabs") == 2


def test_fail_never_loses_a_job_accepted_before_redis_stopped(emu: Emulators, server: RedisServer) -> None:
    state = RedisState(server.url, on_state_error="fail", timeout=0.5)

    def stop_when_submitted(event: ProgressEvent) -> None:
        if event.kind == "submitted" and server.process is not None:
            server.stop()  # the provider has just accepted the job; its journal entry is not written yet

    with Bridge(providers=adapters(emu), state=state) as bridge:
        with pytest.raises(StateUnavailableError, match="accepted the job") as caught:
            bridge.generate(photo_request(), "eachlabs", timeout=30, on_event=stop_when_submitted,
                            idempotency_key="order-7")
        handle = caught.value.handle
        assert handle is not None and accepted(emu, "eachlabs") == 1
        # A plain call whose job was accepted before the failure also finishes, with a warning.
        server.start()
        emu.eachlabs.settings.run_time = 0.5
        result = bridge.generate(photo_request(), "eachlabs", timeout=30, on_event=stop_when_submitted)
        assert len(result.images) == 2 and state_warnings(result)
        server.start()
        collected = bridge.result(handle, timeout=30)
    assert list(collected.request_ids) == list(handle.request_ids) and accepted(emu, "eachlabs") == 2


def test_local_goes_on_in_memory_with_a_warning_and_comes_back(emu: Emulators, server: RedisServer) -> None:
    state = RedisState(server.url, on_state_error="local", timeout=0.5, retry_seconds=0.5)
    with Bridge(providers=adapters(emu), state=state) as bridge:
        assert not state_warnings(bridge.generate(photo_request(), "eachlabs", timeout=30))
        server.stop()
        results = [bridge.generate(photo_request(), name, timeout=30) for name in ("eachlabs", "fal")]
        results.append(bridge.generate(photo_request(), Route(["runware", "fal"]), timeout=30))
        assert all(len(result.images) == 2 for result in results)
        assert all("did not answer during this call" in state_warnings(result)[0] for result in results)
        server.start()
        deadline = time.monotonic() + 30
        while state_warnings(result := bridge.generate(photo_request(), "eachlabs", timeout=30)):
            assert time.monotonic() < deadline, "the state never went back to Redis"
            time.sleep(0.2)
        assert len(result.images) == 2


async def test_local_async_client_too(emu: Emulators, server: RedisServer) -> None:
    from photomaker_bridge import AsyncBridge

    state = RedisState(server.url, on_state_error="local", timeout=0.5)
    async with AsyncBridge(providers=adapters(emu), state=state) as bridge:
        server.stop()
        result = await bridge.generate(photo_request(), "eachlabs", timeout=30, idempotency_key="k-async")
        assert len(result.images) == 2 and state_warnings(result)
        again = await bridge.generate(photo_request(), "eachlabs", timeout=30, idempotency_key="k-async")
        assert again.request_ids == result.request_ids  # the local journal remembered it
    assert accepted(emu, "eachlabs") == 1
