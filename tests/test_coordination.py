"""The coordinator of one client's calls (slots, rates, single-flight uploads) and the retry policy, as pure code:
no network, a clock the test moves, threads and tasks only where waiting is the point."""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import threading
import time

import pytest

from photomaker_bridge import (
    AuthenticationError,
    ConfigurationError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitedError,
    RetryPolicy,
)
from photomaker_bridge._coordination import (
    AcquireSlot,
    BindSlot,
    Busy,
    ClaimUpload,
    Coordinator,
    FinishUpload,
    Lease,
    Limits,
    ReleaseSlot,
    RenewSlot,
    UploadTicket,
)

ACCOUNT = "eachlabs:0123456789abcdef"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


TWO = Limits(concurrency=2)


def take(scope: object, count: int = 1, limits: Limits = TWO, wait: bool = False) -> object:
    return scope.perform(AcquireSlot(ACCOUNT, limits, wait=wait, count=count), 0.5)  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------------------------------- slots


def test_slots_up_to_the_cap_then_busy() -> None:
    coordinator = Coordinator()
    scope = coordinator.scope()
    first, second = take(scope), take(scope)
    assert isinstance(first, tuple) and isinstance(second, tuple)
    busy = take(scope)
    assert isinstance(busy, Busy) and "2 jobs in flight (limit 2)" in busy.reason and busy.retry_in is None
    assert coordinator.in_flight(ACCOUNT) == 2 and coordinator.peak_in_flight[ACCOUNT] == 2
    scope.close()  # unbound slots go back when the run ends
    assert coordinator.in_flight(ACCOUNT) == 0


def test_a_call_takes_all_its_slots_or_none() -> None:
    coordinator = Coordinator()
    holder = coordinator.scope()
    take(holder)
    other = coordinator.scope()
    assert isinstance(take(other, count=2), Busy)  # one free slot is not enough for two jobs
    assert coordinator.in_flight(ACCOUNT) == 1


def test_a_released_slot_goes_to_the_first_waiter_and_nobody_overtakes_it() -> None:
    coordinator = Coordinator()
    holder = coordinator.scope()
    [first] = take(holder, count=1)  # type: ignore[misc]
    [second] = take(holder, count=1)  # type: ignore[misc]
    outcomes: list[object] = []

    def waiter(count: int) -> None:
        outcomes.append((count, coordinator.scope().perform(AcquireSlot(ACCOUNT, Limits(concurrency=2), count=count),
                                                           5.0)))

    big = threading.Thread(target=waiter, args=(2,))
    big.start()
    while not coordinator._accounts[ACCOUNT].waiters:
        time.sleep(0.001)
    small = threading.Thread(target=waiter, args=(1,))
    small.start()
    while len(coordinator._accounts[ACCOUNT].waiters) < 2:
        time.sleep(0.001)
    holder.perform(ReleaseSlot(ACCOUNT, lease=first), None)  # one slot free: the first in line needs two
    assert outcomes == []
    holder.perform(ReleaseSlot(ACCOUNT, lease=second), None)
    big.join(5)
    assert outcomes[0][0] == 2 and len(outcomes[0][1]) == 2  # type: ignore[index,arg-type]
    assert small.is_alive()  # still waiting: the two slots went to the call in front of it
    coordinator.release(ACCOUNT, lease=outcomes[0][1][0])  # type: ignore[index]
    small.join(5)
    assert not small.is_alive()


def test_a_waiter_gives_up_at_its_deadline_and_holds_nothing() -> None:
    coordinator = Coordinator()
    holder = coordinator.scope()
    take(holder)
    take(holder)
    assert coordinator.scope().perform(AcquireSlot(ACCOUNT, Limits(concurrency=2)), 0.05) is None
    assert not coordinator._accounts[ACCOUNT].waiters  # forgotten
    holder.close()
    assert coordinator.in_flight(ACCOUNT) == 0


async def test_async_waiters_are_woken_by_a_release_from_a_thread() -> None:
    coordinator = Coordinator()
    holder = coordinator.scope()
    [lease] = take(holder, limits=Limits(concurrency=1))  # type: ignore[misc]
    waiting = asyncio.ensure_future(coordinator.scope().aperform(AcquireSlot(ACCOUNT, Limits(concurrency=1)), 5.0))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await asyncio.to_thread(holder.perform, ReleaseSlot(ACCOUNT, lease=lease), None)
    granted = await asyncio.wait_for(waiting, 5)
    assert isinstance(granted, tuple) and isinstance(granted[0], Lease)


def test_a_bound_slot_lives_past_its_run_until_released_or_expired() -> None:
    clock = Clock()
    coordinator = Coordinator(clock=clock)
    limits = Limits(concurrency=2, lease_seconds=60)
    scope = coordinator.scope()
    [lease] = take(scope, limits=limits)  # type: ignore[misc]
    scope.perform(BindSlot(lease, "job-1", keep=True), None)
    scope.close()
    assert coordinator.in_flight(ACCOUNT) == 1  # a handle was handed over: the job still runs
    clock.now += 50
    scope.perform(RenewSlot(ACCOUNT, "job-1"), None)  # seen running: the lease starts over
    clock.now += 50
    assert coordinator.in_flight(ACCOUNT) == 1
    clock.now += 11
    assert coordinator.in_flight(ACCOUNT) == 0  # nobody saw it for a whole lease: the provider is done with it


def test_a_slot_bound_for_the_run_only_goes_back_when_the_run_ends() -> None:
    coordinator = Coordinator()
    scope = coordinator.scope()
    [lease] = take(scope)  # type: ignore[misc]
    scope.perform(BindSlot(lease, "job-2", keep=False), None)
    assert coordinator.in_flight(ACCOUNT) == 1
    scope.close()
    assert coordinator.in_flight(ACCOUNT) == 0
    scope.perform(ReleaseSlot(ACCOUNT, request_id="job-2"), None)  # releasing twice is harmless


def test_the_per_minute_rate_says_how_long_to_wait() -> None:
    coordinator = Coordinator()
    scope = coordinator.scope()
    limits = Limits(per_minute=2)
    assert isinstance(take(scope, limits=limits), tuple) and isinstance(take(scope, limits=limits), tuple)
    busy = take(scope, limits=limits)
    assert isinstance(busy, Busy) and busy.retry_in is not None and 0 < busy.retry_in <= 60
    assert "2 job submissions a minute" in busy.reason


def test_no_limits_means_no_bookkeeping() -> None:
    assert not Limits().active and Limits(per_minute=1).active and Limits(concurrency=1).active


# --------------------------------------------------------------------------------------------------- uploads


def test_one_upload_per_content_the_others_wait_for_it() -> None:
    coordinator = Coordinator()
    first = coordinator.scope()
    ticket = first.perform(ClaimUpload("fal:abc"), None)
    assert isinstance(ticket, UploadTicket)
    assert isinstance(coordinator.scope().perform(ClaimUpload("fal:abc", wait=False), None), Busy)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        waiting = [pool.submit(coordinator.scope().perform, ClaimUpload("fal:abc"), 5.0) for _ in range(4)]
        first.perform(FinishUpload(ticket, "https://storage/abc.zip"), None)
        assert [future.result(5) for future in waiting] == ["https://storage/abc.zip"] * 4
    assert coordinator.uploads == {"fal:abc": "https://storage/abc.zip"}


def test_a_failed_upload_lets_the_next_caller_upload() -> None:
    coordinator = Coordinator()
    first = coordinator.scope()
    assert isinstance(first.perform(ClaimUpload("eachlabs:abc"), None), UploadTicket)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(coordinator.scope().perform, ClaimUpload("eachlabs:abc"), 5.0)
        first.close()  # the run ended without finishing its upload (it failed, or was abandoned)
        assert isinstance(waiting.result(5), UploadTicket)


# ------------------------------------------------------------------------------------------------ retry policy


def _error(status: int | None, code: str | None = None, kind: type = ProviderUnavailableError) -> Exception:
    if kind is RateLimitedError:
        return RateLimitedError("limited", provider="fal", status=status, retry_after=2.0)
    return kind("failed", provider="fal", status=status, code=code)


@pytest.mark.parametrize(("error", "creates_job", "retried"), [
    (_error(503), False, True), (_error(503), True, True),
    (_error(429, kind=RateLimitedError), True, True),
    (_error(500), False, True), (_error(500), True, False),  # may hide an accepted job
    (_error(None, "connection_error"), False, True), (_error(None, "connection_error"), True, False),
    (_error(None, "connection_refused"), True, True),  # nothing was sent
    (_error(200, "invalid_response"), True, False), (_error(200, "invalid_response"), False, True),
    (_error(401, kind=AuthenticationError), False, False), (_error(400, kind=ProviderRejectedError), False, False),
])
def test_what_is_tried_again(error: Exception, creates_job: bool, retried: bool) -> None:
    policy = RetryPolicy(random=lambda: 0.5)
    assert (policy.delay(error, 1, creates_job=creates_job) is not None) is retried


def test_waits_grow_with_full_jitter_and_retry_after_wins() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=3.0, random=lambda: 0.999)
    waits = [policy.delay(_error(503), attempt, creates_job=False) for attempt in (1, 2, 3)]
    assert waits == pytest.approx([0.999, 1.998, 2.997])  # 1, 2, then capped at 3
    assert RetryPolicy(random=lambda: 0.0).delay(_error(503), 1, creates_job=False) == 0.0
    assert policy.delay(_error(429, kind=RateLimitedError), 1, creates_job=True) == 2.0


def test_no_wait_past_the_deadline_the_tries_or_max_retry_after() -> None:
    policy = RetryPolicy(attempts=3, max_retry_after=1.0, random=lambda: 0.5)
    assert policy.delay(_error(503), 3, creates_job=False) is None
    assert policy.delay(_error(503), 1, creates_job=False, remaining=0.1) is None
    assert policy.delay(_error(429, kind=RateLimitedError), 1, creates_job=False) is None  # Retry-After 2 > 1
    assert RetryPolicy(attempts=1).delay(_error(503), 1, creates_job=False) is None


@pytest.mark.parametrize("fields", [{"attempts": 0}, {"attempts": True}, {"base_delay": -1},
                                    {"max_delay": math.nan}, {"max_retry_after": math.inf}])
def test_nonsense_policies_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**fields)  # type: ignore[arg-type]
