"""The state interface, asked the same questions of both backends (``MemoryState`` and ``RedisState`` over a
real redis-server): slots, rates, breakers, numbers, spend, hedges and the job journal."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from photomaker_bridge._coordination_operations import Busy, Limits
from photomaker_bridge.routing import BreakerSettings
from photomaker_bridge.routing._state import (
    Admit,
    ReadNumbers,
    Record,
    ReserveHedge,
    ReserveSpend,
    Reset,
    SettleHedge,
    SettleSpend,
)
from photomaker_bridge.state import State
from photomaker_bridge.state._operations import (
    BindLease,
    ClaimJob,
    CountLeases,
    DropJob,
    ReadJob,
    ReleaseLease,
    RenewLease,
    TakeSlots,
    UpdateJob,
)

ACCOUNT = "eachlabs:0123456789abcdef"
SETTINGS = BreakerSettings(failures=2, cooldown=30)


def eventually(check: object, seconds: float = 20.0) -> None:
    """Wait (generously) until ``check()`` is true: expiry is the server's business, not a sleep we assert on."""
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.05)


def test_slots_are_capped_and_freed_by_lease_or_by_job(state: State) -> None:
    limits = Limits(concurrency=2)
    assert state.perform(TakeSlots(ACCOUNT, limits, ("a",))) is True
    assert state.perform(TakeSlots(ACCOUNT, limits, ("b",))) is True
    refused = state.perform(TakeSlots(ACCOUNT, limits, ("c",)))
    assert isinstance(refused, Busy) and "limit 2" in refused.reason
    assert state.perform(CountLeases(ACCOUNT)) == 2
    state.perform(BindLease(ACCOUNT, "a", "job-1", 60))
    state.perform(RenewLease(ACCOUNT, "job-1", 60))
    state.perform(ReleaseLease(ACCOUNT, request_id="job-1"))
    assert state.perform(CountLeases(ACCOUNT)) == 1
    state.perform(ReleaseLease(ACCOUNT, lease_id="b"))
    assert state.perform(CountLeases(ACCOUNT)) == 0
    # All or nothing: two at once when only... two are free.
    assert state.perform(TakeSlots(ACCOUNT, limits, ("d", "e"))) is True
    assert isinstance(state.perform(TakeSlots(ACCOUNT, limits, ("f",))), Busy)


def test_an_unseen_lease_expires(state: State) -> None:
    limits = Limits(concurrency=1, lease_seconds=3)  # long enough for the refusal below on a loaded machine
    assert state.perform(TakeSlots(ACCOUNT, limits, ("x",))) is True
    assert isinstance(state.perform(TakeSlots(ACCOUNT, limits, ("y",))), Busy)
    eventually(lambda: state.perform(CountLeases(ACCOUNT)) == 0, seconds=60)
    assert state.perform(TakeSlots(ACCOUNT, limits, ("y",))) is True


def test_the_rate_window_refuses_with_the_time_until_it_has_room(state: State) -> None:
    limits = Limits(per_minute=3, rate_window=5)  # four questions well within the window on a loaded machine
    for name in ("r1", "r2", "r3"):
        assert state.perform(TakeSlots(ACCOUNT, limits, (name,))) is True
    refused = state.perform(TakeSlots(ACCOUNT, limits, ("r4",)))
    assert isinstance(refused, Busy) and refused.retry_in is not None and 0 < refused.retry_in <= 5.5
    assert "3 job submissions a minute" in refused.reason
    eventually(lambda: state.perform(TakeSlots(ACCOUNT, limits, ("r5",))) is True, seconds=60)


def test_breakers_open_skip_and_reset(state: State) -> None:
    now = time.time()
    assert state.perform(Admit("fal", now, SETTINGS)).allowed
    state.perform(Record("fal", now, SETTINGS, ok=False))
    assert state.perform(Record("fal", now, SETTINGS, ok=False)) == "open"
    denied = state.perform(Admit("fal", now + 1, SETTINGS))
    assert not denied.allowed and denied.status == "open" and "2 failures in a row" in denied.reason
    probe = state.perform(Admit("fal", now + 31, SETTINGS))
    assert probe.allowed and probe.probe
    assert not state.perform(Admit("fal", now + 32, SETTINGS)).allowed  # one probe only
    state.perform(Reset("fal"))
    assert state.perform(Admit("fal", now + 33, SETTINGS)).allowed


def test_numbers_are_learned_from_successes(state: State) -> None:
    now = time.time()
    for seconds, price in ((4.0, "0.001"), (6.0, "0.002"), (5.0, "0.003")):
        state.perform(Record("runware", now, SETTINGS, ok=True, total_seconds=seconds, queue_seconds=1.0,
                             unit_price=Decimal(price)))
    numbers = state.perform(ReadNumbers(("runware", "fal")))
    assert numbers["runware"].p50_seconds == 5.0 and numbers["runware"].samples == 3
    assert numbers["runware"].unit_price == Decimal("0.002") and numbers["runware"].p95_queue_seconds == 1.0
    assert numbers["fal"].samples == 0 and numbers["fal"].p50_seconds is None


def test_spend_is_reserved_settled_and_released(state: State) -> None:
    limit = Decimal("0.10")
    first = state.perform(ReserveSpend(Decimal("0.06"), limit))
    assert first is not None
    assert state.perform(ReserveSpend(Decimal("0.05"), limit)) is None  # 0.06 reserved + 0.05 > 0.10
    state.perform(SettleSpend(first, Decimal("0.03")))  # it cost less than estimated
    second = state.perform(ReserveSpend(Decimal("0.05"), limit))
    assert second is not None
    state.perform(SettleSpend(second, Decimal(0)))  # released: it sent nothing
    assert state.perform(ReserveSpend(Decimal("0.07"), limit)) is not None
    assert state.perform(ReserveSpend(Decimal("0.01"), limit)) is None


def test_hedge_spend_stays_within_its_ratio(state: State) -> None:
    token = state.perform(ReserveHedge(Decimal("0.01"), Decimal("0.5"), Decimal("0.02")))
    assert token is not None
    assert state.perform(ReserveHedge(Decimal("0.02"), Decimal("0.5"), Decimal("0.01"))) is None
    state.perform(SettleHedge(token, Decimal("0.01"), Decimal("0.02")))
    assert state.perform(ReserveHedge(Decimal("0.005"), Decimal("0.5"), Decimal("0.01"))) is not None


def test_the_journal_claims_once_and_remembers_the_handle(state: State) -> None:
    claim = state.perform(ClaimJob("order-1", "me", 60, 600))
    assert claim.status == "new"
    other = state.perform(ClaimJob("order-1", "you", 60, 600))
    assert other.status == "claimed" and other.owner == "me" and not other.claim_expired
    handle = {"provider": "eachlabs", "request_ids": ["p-1"]}
    state.perform(UpdateJob("order-1", "accepted", 600, handle=handle))
    entry = state.perform(ClaimJob("order-1", "you", 60, 600))
    assert entry.status == "accepted" and entry.handle == handle
    state.perform(UpdateJob("order-1", "completed", 600, cost="0.0123"))
    done = state.perform(ReadJob("order-1"))
    assert done.status == "completed" and done.cost == "0.0123" and done.handle == handle
    assert state.perform(ReadJob("order-2")) is None


def test_a_claim_that_created_nothing_is_dropped_and_an_abandoned_one_expires(state: State) -> None:
    assert state.perform(ClaimJob("order-3", "me", 60, 600)).status == "new"
    state.perform(DropJob("order-3", "someone else"))  # not theirs to drop
    assert state.perform(ReadJob("order-3")).status == "claimed"
    state.perform(DropJob("order-3", "me"))
    assert state.perform(ClaimJob("order-3", "you", 0.2, 600)).status == "new"
    eventually(lambda: state.perform(ClaimJob("order-3", "me", 60, 600)).claim_expired)


async def test_the_async_side_answers_the_same(state: State) -> None:
    limits = Limits(concurrency=1)
    assert await state.aperform(TakeSlots(ACCOUNT, limits, ("a1",))) is True
    assert isinstance(await state.aperform(TakeSlots(ACCOUNT, limits, ("a2",))), Busy)
    await state.aperform(ReleaseLease(ACCOUNT, lease_id="a1"))
    assert await state.aperform(CountLeases(ACCOUNT)) == 0
    token = await state.aperform(ReserveSpend(Decimal("0.01"), Decimal("0.01")))
    assert token is not None
    results = await asyncio.gather(*(state.aperform(Admit("eachlabs", time.time(), SETTINGS)) for _ in range(5)))
    assert all(result.allowed for result in results)
    await state.aclose()


def test_a_claim_asked_again_by_its_own_call_is_still_that_calls(state: State) -> None:
    # redis-py re-sends a command whose reply was lost: the second ClaimJob of one call must not see a stranger.
    assert state.perform(ClaimJob("order-4", "call-1", 60, 600)).status == "new"
    again = state.perform(ClaimJob("order-4", "call-1", 60, 600))
    assert again.status == "new" and again.round == 1
    assert state.perform(ClaimJob("order-4", "call-2", 60, 600)).status == "claimed"


def test_one_caller_alone_takes_a_failed_job_over(state: State) -> None:
    handle = {"provider": "fal", "request_ids": ["r-1"]}
    assert state.perform(ClaimJob("order-5", "call-1", 60, 600)).status == "new"
    state.perform(UpdateJob("order-5", "failed", 600, handle=handle))
    # Two callers collected the same failed job (round 1): the first takeover wins, the second waits for its job.
    first = state.perform(ClaimJob("order-5", "call-2", 60, 600, replace_round=1))
    assert first.status == "new" and first.round == 2
    second = state.perform(ClaimJob("order-5", "call-3", 60, 600, replace_round=1))
    assert second.status == "claimed" and second.owner == "call-2" and second.round == 2
    assert state.perform(ReadJob("order-5")).handle is None  # the failed job is no longer the key's
    state.perform(UpdateJob("order-5", "accepted", 600, handle={"provider": "runware", "request_ids": ["t-1"]}))
    entry = state.perform(ClaimJob("order-5", "call-3", 60, 600, replace_round=1))
    assert entry.status == "accepted" and entry.handle == {"provider": "runware", "request_ids": ["t-1"]}
