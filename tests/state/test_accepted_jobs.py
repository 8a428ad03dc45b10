"""A job a provider may have accepted is never lost or paid twice because of the state: a hedge the state cannot
admit leaves the primary running; a deadline that cuts a submission on the wire keeps its idempotency key claimed;
of several callers that collected the same failed job, one alone submits again."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import helpers_bridge
import pytest
from helpers_bridge import adapters, photo_request
from helpers_redis import RedisServer
from helpers_routing import accepted

from photomaker_bridge import (
    AuthenticationError,
    Bridge,
    GenerationTimeoutError,
    JobUnknownError,
    PhotoMakerResult,
    ProgressEvent,
    Route,
)
from photomaker_bridge.emulators import Emulators, Fault
from photomaker_bridge.routing import Hedge
from photomaker_bridge.state import MemoryState, RedisState, State
from photomaker_bridge.state._operations import ClaimJob, ReadJob

emulators = helpers_bridge.emulators
emu = helpers_bridge.emu


def wait_for(check: object, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.05)


def test_a_hedge_the_state_cannot_admit_leaves_the_primary_running(emu: Emulators, server: RedisServer) -> None:
    emu.fal.settings.queue_time = 5.0  # still queued when the hedge is due (after 0.3 s)
    state = RedisState(server.url, on_state_error="fail", timeout=0.5)

    def stop_when_fal_accepted(event: ProgressEvent) -> None:
        if event.kind == "submitted" and event.provider == "fal" and server.process is not None:
            server.stop()  # fal has the job; the hedge's admission now finds no Redis

    route = Route(["fal", "runware"], hedge=Hedge(after=0.3, max_extra_spend=Decimal("5")))
    with Bridge(providers=adapters(emu), state=state) as bridge:
        result = bridge.generate(photo_request(), route, timeout=60, on_event=stop_when_fal_accepted)
    assert result.provider == "fal" and len(result.images) == 2
    assert [attempt.reason for attempt in result.attempts if attempt.outcome == "skipped"] == [
        "hedge: not started, the shared state (redis) did not answer; fal goes on alone"]
    assert any(warning.field == "state" for warning in result.warnings)
    assert accepted(emu, "fal") == 1 and emu.fal.counters.get("cancels", 0) == 0 and accepted(emu, "runware") == 0


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_a_deadline_that_cuts_the_submission_keeps_the_key_claimed(emu: Emulators, server: RedisServer,
                                                                   backend: str, namespace: str) -> None:
    state: State = MemoryState() if backend == "memory" else RedisState(server.url, namespace=namespace)
    with Bridge(providers=adapters(emu), state=state) as bridge:
        bridge.generate(photo_request(), "eachlabs", timeout=60)  # uploads the photo: the next call only submits
        emu.eachlabs.settings.latency = 9.0  # Eachlabs takes the job, but answers after the deadline and its grace
        with pytest.raises(GenerationTimeoutError) as caught:
            bridge.generate(photo_request(), "eachlabs", timeout=1.5, idempotency_key="order-1")
        assert caught.value.handle is None and caught.value.may_have_accepted
        wait_for(lambda: accepted(emu, "eachlabs") == 2)  # the provider accepted the job the deadline cut
        emu.eachlabs.settings.latency = 0.0
        # The key stays claimed: a retry does not submit a second job (it waits for the claim, then gives up).
        assert state.perform(ReadJob("order-1")).status == "claimed"
        with pytest.raises(GenerationTimeoutError, match="another call was submitting") as waited:
            bridge.generate(photo_request(), "eachlabs", timeout=1.0, idempotency_key="order-1")
        assert "order-1" not in str(waited.value)  # keys are named by a hash in messages
    assert accepted(emu, "eachlabs") == 2


def test_a_deadline_before_anything_was_sent_frees_the_key(emu: Emulators) -> None:
    emu.eachlabs.settings.latency = 3.0  # the upload is cut: nothing was submitted
    with Bridge(providers=adapters(emu), state=MemoryState()) as bridge:
        with pytest.raises(GenerationTimeoutError, match="while uploading") as caught:
            bridge.generate(photo_request(), "eachlabs", timeout=1.0, idempotency_key="order-2")
        assert not caught.value.may_have_accepted
        assert bridge.state is not None and bridge.state.perform(ReadJob("order-2")) is None


def test_one_of_two_callers_that_collected_a_failed_job_submits_again(emu: Emulators, server: RedisServer,
                                                                     namespace: str) -> None:
    emu.fal.settings.faults = [Fault("fail_job")]  # every fal job fails; runware's succeed
    emu.runware.settings.queue_time = 1.0
    states = [RedisState(server.url, namespace=namespace) for _ in range(2)]
    bridges = [Bridge(providers=adapters(emu), state=each) for each in states]
    try:
        with pytest.raises(Exception):  # noqa: B017 (the fal-only route's job failed: the key holds a failed job)
            bridges[0].generate(photo_request(), Route(["fal"], max_attempts=1), timeout=60,
                                idempotency_key="order-3")
        assert states[0].perform(ReadJob("order-3")).status == "failed"
        outcomes: list[PhotoMakerResult | BaseException] = []
        start = threading.Barrier(2)

        def retry(bridge: Bridge) -> None:
            start.wait()
            try:
                outcomes.append(bridge.generate(photo_request(), Route(["fal", "runware"], max_attempts=2),
                                                timeout=60, idempotency_key="order-3"))
            except BaseException as error:
                outcomes.append(error)

        threads = [threading.Thread(target=retry, args=(bridge,)) for bridge in bridges]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        for bridge in bridges:
            bridge.close()
        states[0].clear()
    assert all(isinstance(outcome, PhotoMakerResult) for outcome in outcomes), outcomes
    assert {outcome.request_ids[0] for outcome in outcomes} == {outcomes[0].request_ids[0]}  # type: ignore[union-attr]
    assert accepted(emu, "runware") == 1 and accepted(emu, "fal") == 1


def test_an_unknown_job_names_its_key_only_by_hash(emu: Emulators) -> None:
    key = "customer-42@example.com"
    state = MemoryState()
    state.perform(ClaimJob(key, "a-call-that-crashed", 0.001, 600))  # its claim runs out without a handle
    wait_for(lambda: state.perform(ClaimJob(key, "probe", 60, 600)).claim_expired)
    with Bridge(providers=adapters(emu), state=state) as bridge, pytest.raises(JobUnknownError) as caught:
        bridge.generate(photo_request(), "fal", timeout=30, idempotency_key=key)
    assert caught.value.key == key and key not in str(caught.value) and "sha256:" in str(caught.value)
    assert accepted(emu, "fal") == 0


@pytest.mark.parametrize("provider", ["fal", ["fal", "eachlabs"]])
def test_a_job_whose_collecting_failed_is_collected_by_the_next_call_with_its_key(
        emu: Emulators, provider: str | list[str]) -> None:
    """fal's status calls refused for good: the job runs on, so the key keeps it (not "failed"), a route does not
    send the request elsewhere, and the next call with the key collects that job instead of paying again."""
    emu.fal.settings.run_time = 0.3
    emu.fal.settings.faults.append(Fault("status", status=401, route=r"/requests/[^/]+/status", method="GET"))
    with Bridge(providers=adapters(emu), state=MemoryState()) as bridge:
        with pytest.raises(AuthenticationError) as caught:
            bridge.generate(photo_request(), provider, timeout=30, idempotency_key="order-9")
        assert caught.value.handle is not None
        emu.fal.settings.faults.clear()
        result = bridge.generate(photo_request(), provider, timeout=30, idempotency_key="order-9")
    assert list(result.request_ids) == list(caught.value.handle.request_ids)
    assert accepted(emu, "fal") == 1 and accepted(emu, "eachlabs") == 0
