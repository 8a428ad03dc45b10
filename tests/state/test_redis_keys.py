"""What ``RedisState`` keeps in Redis stays bounded and its own: expired leases leave every key they were in,
``clear()`` never reaches another namespace, and an error Redis answers (not an outage) is raised as it is."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis
from helpers_redis import RedisServer

from photomaker_bridge import ConfigurationError
from photomaker_bridge._coordination_operations import Busy, Limits
from photomaker_bridge.routing._state import ReserveSpend, SettleSpend
from photomaker_bridge.state import RedisState
from photomaker_bridge.state._operations import BindLease, CountLeases, TakeSlots

ACCOUNT = "eachlabs:0123456789abcdef"


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def state(redis_state: RedisState) -> RedisState:
    return redis_state


def test_expired_leases_leave_the_bound_jobs_too(state: RedisState, raw: redis.Redis) -> None:
    short = Limits(concurrency=100, lease_seconds=0.05)
    for number in range(20):  # jobs bound to leases whose process never released them (crashed, webhook users)
        assert state.perform(TakeSlots(ACCOUNT, short, (f"lease-{number}",))) is True
        state.perform(BindLease(ACCOUNT, f"lease-{number}", f"job-{number}", 0.05))
    _, bound, _ = state.keys.slots(ACCOUNT)
    assert raw.hlen(bound) == 40
    deadline = time.monotonic() + 30
    while state.perform(CountLeases(ACCOUNT)) != 0:  # expiry is the server's clock's business: wait for it
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert state.perform(TakeSlots(ACCOUNT, Limits(concurrency=100), ("fresh",))) is True
    assert raw.hlen(bound) == 0


def test_more_slots_at_once_than_the_rate_allows_are_refused_not_an_error(state: RedisState) -> None:
    refused = state.perform(TakeSlots(ACCOUNT, Limits(per_minute=2), ("a", "b", "c")))
    assert isinstance(refused, Busy) and "2 job submissions a minute" in refused.reason


def test_an_error_redis_answers_is_raised_not_taken_for_an_outage(state: RedisState, raw: redis.Redis) -> None:
    leases, _, _ = state.keys.slots(ACCOUNT)
    raw.set(leases, "not a sorted set")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        state.perform(TakeSlots(ACCOUNT, Limits(concurrency=1), ("x",)))
    assert state.incidents() == 0


@pytest.mark.parametrize("namespace", ["photos:staging", "photos*", "two words", ""])
def test_a_namespace_that_could_reach_another_is_refused(redis_server: RedisServer, namespace: str) -> None:
    with pytest.raises(ConfigurationError, match="namespace must be letters"):
        RedisState(redis_server.url, namespace=namespace)


def test_clear_deletes_its_own_namespace_only(redis_server: RedisServer, raw: redis.Redis, namespace: str) -> None:
    raw.set(f"{namespace}.staging:spend:totals", "kept")
    raw.set(f"{namespace}:slots:x:leases", "deleted")
    assert RedisState(redis_server.url, namespace=namespace).clear() == 1
    assert raw.get(f"{namespace}.staging:spend:totals") == "kept"
    raw.delete(f"{namespace}.staging:spend:totals")


def test_reset_spend_starts_a_new_budget_period(state: RedisState) -> None:
    limit = Decimal("0.10")
    token = state.perform(ReserveSpend(Decimal("0.09"), limit))
    state.perform(SettleSpend(token, Decimal("0.09")))
    in_flight = state.perform(ReserveSpend(Decimal("0.01"), limit))
    assert in_flight is not None and state.perform(ReserveSpend(Decimal("0.01"), limit)) is None
    state.reset_spend()  # the 0.09 spent is forgotten; the reservation of the call in flight is not
    assert state.perform(ReserveSpend(Decimal("0.09"), limit)) is not None
    assert state.perform(ReserveSpend(Decimal("0.01"), limit)) is None
