"""The sync and async flow drivers: same flow, same outcome, deadlines thrown in, errors handed to the flow."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from photomaker_bridge import GenerationTimeoutError, ProviderUnavailableError
from photomaker_bridge._http import (
    CLEANUP_GRACE_SECONDS,
    DeadlineReached,
    Event,
    HttpRequest,
    HttpResponse,
    Wait,
    arun_flow,
    run_flow,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.now += seconds


class FakeTransport:
    """Answers each request with the next scripted response (or raises it), recording what it got."""

    def __init__(self, clock: FakeClock, script: list[Any], cost: float = 0.0) -> None:
        self.clock = clock
        self.script = script
        self.cost = cost
        self.sent: list[HttpRequest] = []

    def send(self, request: HttpRequest) -> HttpResponse:
        self.sent.append(request)
        self.clock.now += self.cost
        answer = self.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, HttpResponse)
        return answer


class AsyncFakeTransport(FakeTransport):
    async def send(self, request: HttpRequest) -> HttpResponse:  # type: ignore[override]
        return FakeTransport.send(self, request)


def polling_flow(polls: int) -> Generator[Any, Any, str]:
    """Submit, poll ``polls`` times with waits, then fetch; cancel and raise on the deadline."""
    submitted = yield HttpRequest("POST", "http://127.0.0.1/submit", "test")
    job = submitted.json()["id"]
    yield Event("submitted", "test", job)
    try:
        for _ in range(polls):
            yield Wait(1.0)
            yield HttpRequest("GET", f"http://127.0.0.1/status/{job}", "test")
        final = yield HttpRequest("GET", f"http://127.0.0.1/result/{job}", "test")
        return str(final.json()["images"])
    except DeadlineReached as reached:
        yield HttpRequest("PUT", f"http://127.0.0.1/cancel/{job}", "test")
        raise GenerationTimeoutError("deadline passed", provider="test", request_id=job, handle=job) from reached


def ok(body: bytes) -> HttpResponse:
    return HttpResponse(200, {}, body)


def script_for(polls: int) -> list[Any]:
    return [ok(b'{"id": "j1"}'), *[ok(b"{}") for _ in range(polls)], ok(b'{"images": 2}')]


def test_sync_driver_runs_a_flow_and_hands_events_over() -> None:
    clock = FakeClock()
    transport = FakeTransport(clock, script_for(3))
    events: list[Event] = []
    result = run_flow(polling_flow(3), transport, on_event=events.append, sleep=clock.sleep, clock=clock)
    assert result == "2"
    assert [request.method for request in transport.sent] == ["POST", "GET", "GET", "GET", "GET"]
    assert [event.kind for event in events] == ["submitted"]
    assert clock.now == pytest.approx(103.0)


async def test_async_driver_gives_the_same_outcome() -> None:
    clock = FakeClock()
    transport = AsyncFakeTransport(clock, script_for(3))
    received: list[str] = []

    async def on_event(event: Event) -> None:
        received.append(event.kind)

    result = await arun_flow(polling_flow(3), transport, on_event=on_event, sleep=clock.asleep, clock=clock)
    assert result == "2"
    assert received == ["submitted"]
    assert len(transport.sent) == 5


def test_deadline_is_thrown_into_the_flow_which_cancels_within_the_grace_period() -> None:
    clock = FakeClock()
    transport = FakeTransport(clock, [ok(b'{"id": "j9"}'), ok(b"{}"), ok(b"{}"), ok(b"{}")])
    with pytest.raises(GenerationTimeoutError) as caught:
        run_flow(polling_flow(10), transport, deadline=clock.now + 2.5, sleep=clock.sleep, clock=clock)
    assert caught.value.handle == "j9"
    cancel = transport.sent[-1]
    assert cancel.method == "PUT" and cancel.url.endswith("/cancel/j9")
    assert cancel.timeout == CLEANUP_GRACE_SECONDS
    # The driver never slept past the deadline.
    assert clock.now == pytest.approx(102.5)


def test_requests_get_at_most_the_time_left() -> None:
    clock = FakeClock()
    transport = FakeTransport(clock, script_for(0))
    run_flow(polling_flow(0), transport, deadline=clock.now + 7.0, sleep=clock.sleep, clock=clock)
    assert transport.sent[0].timeout == pytest.approx(7.0)


def test_a_transport_failure_is_thrown_into_the_flow() -> None:
    clock = FakeClock()
    failure = ProviderUnavailableError("connection reset", provider="test", code="connection_error")
    transport = FakeTransport(clock, [failure])
    with pytest.raises(ProviderUnavailableError) as caught:
        run_flow(polling_flow(1), transport, sleep=clock.sleep, clock=clock)
    assert caught.value is failure


def test_a_failure_caused_by_the_deadline_becomes_the_deadline() -> None:
    clock = FakeClock()
    timeout = ProviderUnavailableError("timed out", provider="test", code="timeout")
    # The status request takes the rest of the time and times out: that is the deadline, not the provider.
    transport = FakeTransport(clock, [ok(b'{"id": "j2"}'), timeout, ok(b"{}")], cost=3.0)
    with pytest.raises(GenerationTimeoutError) as caught:
        run_flow(polling_flow(2), transport, deadline=clock.now + 4.5, sleep=clock.sleep, clock=clock)
    assert isinstance(caught.value.__cause__, DeadlineReached)
    assert caught.value.__cause__.__cause__ is timeout


def test_other_operations_go_to_perform_with_the_time_left() -> None:
    seen: list[tuple[Any, float | None]] = []

    def flow() -> Generator[Any, Any, int]:
        answer = yield ("sdk-call", 41)
        return int(answer) + 1

    def perform(operation: Any, remaining: float | None) -> int:
        seen.append((operation, remaining))
        return int(operation[1])

    clock = FakeClock()
    assert run_flow(flow(), FakeTransport(clock, []), perform=perform, deadline=clock.now + 9, clock=clock) == 42
    assert seen == [(("sdk-call", 41), 9.0)]


def test_an_operation_without_a_performer_is_a_type_error_inside_the_flow() -> None:
    def flow() -> Generator[Any, Any, None]:
        yield object()

    with pytest.raises(TypeError, match="cannot perform"):
        run_flow(flow(), FakeTransport(FakeClock(), []))


def creating_flow() -> Generator[Any, Any, str]:
    """Create a job (a step that must not be cut), then poll; on the deadline cancel what was created."""
    created = yield HttpRequest("POST", "http://127.0.0.1/create", "test", creates_job=True)
    job = created.json()["id"]
    try:
        while True:
            yield Wait(1.0)
            yield HttpRequest("GET", f"http://127.0.0.1/status/{job}", "test")
    except DeadlineReached as reached:
        yield HttpRequest("PUT", f"http://127.0.0.1/cancel/{job}", "test")
        yield HttpRequest("PUT", f"http://127.0.0.1/cancel-again/{job}", "test")
        raise GenerationTimeoutError("deadline passed", provider="test", handle=job) from reached


def test_a_request_that_creates_a_job_may_finish_within_the_grace() -> None:
    clock = FakeClock()
    # The create takes 3 s with 1 s left: it is allowed to finish, so the job it created can be cancelled.
    transport = FakeTransport(clock, [ok(b'{"id": "j7"}'), ok(b"{}"), ok(b"{}")], cost=3.0)
    with pytest.raises(GenerationTimeoutError) as caught:
        run_flow(creating_flow(), transport, deadline=clock.now + 1.0, sleep=clock.sleep, clock=clock)
    assert caught.value.handle == "j7"
    create, cancel, cancel_again = transport.sent
    assert create.timeout == pytest.approx(1.0 + CLEANUP_GRACE_SECONDS)
    assert cancel.url.endswith("/cancel/j7")
    # One grace budget for the whole call: the second clean-up step gets what the first left of it.
    assert cancel.timeout == pytest.approx(CLEANUP_GRACE_SECONDS - 2.0)
    assert cancel_again.timeout == pytest.approx(CLEANUP_GRACE_SECONDS - 5.0, abs=0.01)


def test_a_job_is_not_created_once_the_deadline_has_passed() -> None:
    clock = FakeClock()
    transport = FakeTransport(clock, [])

    def late_flow() -> Generator[Any, Any, None]:
        try:
            yield Wait(5.0)
            yield HttpRequest("POST", "http://127.0.0.1/create", "test", creates_job=True)
        except DeadlineReached:
            raise GenerationTimeoutError("too late to create", provider="test") from None

    with pytest.raises(GenerationTimeoutError, match="too late"):
        run_flow(late_flow(), transport, deadline=clock.now + 2.0, sleep=clock.sleep, clock=clock)
    assert transport.sent == []
