"""A reply Redis sent but the client never got: redis-py sends the command again on a new connection, so every
script must be safe to run twice (one settle counts once, a claim stays its caller's, a take takes once, a
breaker counts one failure once). When the retry fails too, what the lost command took is given back by name as
soon as Redis answers again. Tested through a loopback proxy that loses exactly one reply (``ReplyDropper``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis
from helpers_redis import RedisServer, ReplyDropper

from photomaker_bridge import StateUnavailableError
from photomaker_bridge._coordination_operations import Limits
from photomaker_bridge.routing import BreakerSettings
from photomaker_bridge.routing._state import Admit, Record, ReserveSpend, SettleSpend
from photomaker_bridge.state import RedisState
from photomaker_bridge.state._operations import (
    BindLease,
    ClaimJob,
    CountLeases,
    ReadJob,
    ReleaseLease,
    RenewLease,
    TakeSlots,
)

ACCOUNT = "eachlabs:0123456789abcdef"
ONE = Limits(concurrency=1, lease_seconds=600)


@pytest.fixture
def proxy(redis_server: RedisServer) -> Iterator[ReplyDropper]:
    dropper = ReplyDropper(redis_server.port)
    try:
        yield dropper
    finally:
        dropper.close()


@pytest.fixture
def state(proxy: ReplyDropper, namespace: str) -> Iterator[RedisState]:
    shared = RedisState(proxy.url, namespace=namespace, on_state_error="fail", timeout=2.0, retry_seconds=0.01)
    # Load every script first: the lost reply must be the script's own, not a NOSCRIPT answer.
    token = shared.perform(ReserveSpend(Decimal(0), Decimal(1)))
    shared.perform(SettleSpend(token, Decimal(0)))
    shared.perform(TakeSlots(ACCOUNT, ONE, ("warm",)))
    shared.perform(ReleaseLease(ACCOUNT, lease_id="warm"))
    shared.perform(ClaimJob("warm", "warm", 60, 600))
    shared.perform(Record("fal", time.time(), BreakerSettings(), ok=True))
    try:
        yield shared
    finally:
        shared.clear()
        shared.close()


def spent(server: RedisServer, namespace: str) -> Decimal:
    raw = redis.Redis(port=server.port, decode_responses=True)
    value = raw.hget(f"{namespace}:spend:totals", "spent")
    raw.close()
    return Decimal(int(value or 0)) / Decimal("1e9")


def test_a_settle_whose_reply_was_lost_counts_once(state: RedisState, proxy: ReplyDropper,
                                                   redis_server: RedisServer, namespace: str) -> None:
    token = state.perform(ReserveSpend(Decimal("0.01"), Decimal(1)))
    proxy.drop_reply_to(b"EVALSHA")
    state.perform(SettleSpend(token, Decimal("0.01")))
    assert proxy.dropped == 1 and state.incidents() == 0
    assert spent(redis_server, namespace) == Decimal("0.01")


def test_a_claim_whose_reply_was_lost_is_still_its_callers(state: RedisState, proxy: ReplyDropper) -> None:
    proxy.drop_reply_to(b"EVALSHA")
    entry = state.perform(ClaimJob("order-9", "call-1", 60, 600))
    assert proxy.dropped == 1 and entry.status == "new"


def test_a_take_whose_reply_was_lost_takes_once(state: RedisState, proxy: ReplyDropper) -> None:
    proxy.drop_reply_to(b"EVALSHA")
    assert state.perform(TakeSlots(ACCOUNT, ONE, ("lease-1",))) is True  # not "busy" with its own lease
    assert proxy.dropped == 1 and state.perform(CountLeases(ACCOUNT)) == 1


def test_a_breaker_failure_whose_reply_was_lost_counts_once(state: RedisState, proxy: ReplyDropper) -> None:
    settings = BreakerSettings(failures=2, cooldown=600)
    proxy.drop_reply_to(b"EVALSHA")
    state.perform(Record("runware", time.time(), settings, ok=False))
    assert proxy.dropped == 1
    assert state.perform(Admit("runware", time.time(), settings)).allowed  # one failure of two, not two


def test_what_a_lost_take_claim_or_reservation_took_is_given_back(state: RedisState, proxy: ReplyDropper) -> None:
    for ask in (lambda: state.perform(TakeSlots(ACCOUNT, ONE, ("lease-2",))),
                lambda: state.perform(ClaimJob("order-10", "call-2", 60, 600)),
                lambda: state.perform(ReserveSpend(Decimal("0.6"), Decimal(1)))):
        proxy.drop_reply_to(b"EVALSHA", then_refuse=True)  # ran in Redis; its reply and the retry are lost
        with pytest.raises(StateUnavailableError):
            ask()
        proxy.refusing = False
    assert proxy.dropped == 3
    # Redis answers again: the next question first gives back the lease, the claim and the reservation.
    assert state.perform(CountLeases(ACCOUNT)) == 0
    assert state.perform(ReadJob("order-10")) is None
    assert state.perform(ReserveSpend(Decimal("0.9"), Decimal(1))) is not None


def test_a_lease_held_in_redis_stays_there_after_one_failed_bind(state: RedisState, proxy: ReplyDropper,
                                                                 namespace: str) -> None:
    assert state.perform(TakeSlots(ACCOUNT, ONE, ("lease-3",))) is True
    proxy.drop_reply_to(b"EVALSHA", then_refuse=True)
    state.perform(BindLease(ACCOUNT, "lease-3", "job-3", 600))  # bookkeeping: answered locally, never raised
    proxy.refusing = False
    before = state.incidents()
    state.perform(RenewLease(ACCOUNT, "job-3", 600))
    state.perform(ReleaseLease(ACCOUNT, request_id="job-3"))
    assert state.incidents() == before  # renewed and released in Redis, not in this process's memory
    assert state.perform(CountLeases(ACCOUNT)) == 0


def test_a_give_back_redis_refuses_does_not_fail_the_next_question(state: RedisState, proxy: ReplyDropper,
                                                                   redis_server: RedisServer) -> None:
    proxy.drop_reply_to(b"EVALSHA", then_refuse=True)
    with pytest.raises(StateUnavailableError):
        state.perform(ReserveSpend(Decimal("0.5"), Decimal(1)))  # queues a settle of 0 for its reservation
    proxy.refusing = False
    raw = redis.Redis(port=redis_server.port)
    settled = state.keys.spend()[3]
    raw.delete(settled)
    raw.set(settled, "not a sorted set")  # the queued settle will be refused (WRONGTYPE), not lost to an outage
    assert state.perform(CountLeases(ACCOUNT)) == 0  # answered; the refusal is logged
    raw.delete(settled)
    raw.close()
