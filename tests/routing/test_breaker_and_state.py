"""The circuit breaker's transitions (pure) and the in-memory router state's atomic operations."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from photomaker_bridge import BreakerSettings, ConfigurationError, MemoryRouterState
from photomaker_bridge.routing._breaker import KEPT_OUTCOMES, Breaker, admit, record
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

SETTINGS = BreakerSettings(failures=3, failure_rate=0.5, window=60, minimum_calls=6, cooldown=10, probe_lease=30)


def _fail(breaker: Breaker, now: float, times: int = 1) -> Breaker:
    for offset in range(times):
        breaker = record(breaker, now + offset * 0.001, SETTINGS, ok=False)
    return breaker


def test_consecutive_failures_open_it_and_it_skips_until_the_cool_down() -> None:
    breaker = _fail(Breaker(), 100.0, 2)
    assert breaker.status == "closed"
    breaker = _fail(breaker, 101.0)
    assert (breaker.status, breaker.retry_at) == ("open", pytest.approx(111.0))
    breaker, admission = admit(breaker, 105.0, SETTINGS)
    assert not admission.allowed and admission.retry_at == pytest.approx(111.0)
    assert "3 failures in a row" in admission.reason


def test_after_the_cool_down_one_probe_goes_and_its_success_closes_it() -> None:
    breaker = _fail(Breaker(), 100.0, 3)
    breaker, first = admit(breaker, 112.0, SETTINGS)
    assert first.allowed and first.probe and breaker.status == "half_open"
    breaker, second = admit(breaker, 112.5, SETTINGS)
    assert not second.allowed and "probe is running" in second.reason
    breaker = record(breaker, 113.0, SETTINGS, ok=True)
    assert breaker.status == "closed" and breaker.consecutive == 0
    assert admit(breaker, 113.1, SETTINGS)[1].allowed


def test_a_failed_probe_opens_it_again_with_a_fresh_cool_down() -> None:
    breaker = _fail(Breaker(), 100.0, 3)
    breaker, _ = admit(breaker, 112.0, SETTINGS)
    breaker = record(breaker, 114.0, SETTINGS, ok=False)
    assert (breaker.status, breaker.retry_at, breaker.reason) == ("open", pytest.approx(124.0),
                                                                  "its half-open probe failed")


def test_a_probe_that_never_reports_back_is_replaced_after_its_lease() -> None:
    breaker = _fail(Breaker(), 100.0, 3)
    breaker, _ = admit(breaker, 112.0, SETTINGS)
    assert not admit(breaker, 141.0, SETTINGS)[1].allowed
    assert admit(breaker, 142.5, SETTINGS)[1].probe


def test_a_failure_rate_over_the_window_opens_it() -> None:
    breaker = Breaker()
    for index, ok in enumerate([True, False, True, False, True, False]):
        breaker = record(breaker, 100.0 + index, SETTINGS, ok=ok)
    assert breaker.status == "open" and "3 of the last 6 calls failed" in breaker.reason


def test_outcomes_older_than_the_window_do_not_count() -> None:
    breaker = Breaker()
    for index, ok in enumerate([False, True, False, True, False]):
        breaker = record(breaker, 100.0 + index, SETTINGS, ok=ok)
    breaker = record(breaker, 200.0, SETTINGS, ok=False)  # the others left the 60 s window
    assert breaker.status == "closed" and len(breaker.outcomes) == 1


def test_uncounted_failures_change_nothing_and_disable_waits_for_a_reset() -> None:
    breaker = record(Breaker(), 100.0, SETTINGS, ok=False, counts=False)
    assert breaker == Breaker()
    breaker = record(breaker, 100.0, SETTINGS, ok=False, disable="InsufficientCreditsError: top up")
    breaker, admission = admit(breaker, 10_000.0, SETTINGS)
    assert not admission.allowed and admission.retry_at is None and "top up" in admission.reason


def test_a_straggler_failure_while_open_keeps_the_cool_down() -> None:
    breaker = _fail(Breaker(), 100.0, 3)
    later = record(breaker, 105.0, SETTINGS, ok=False)
    assert later.retry_at == breaker.retry_at


@pytest.mark.parametrize("field", ["failures", "minimum_calls"])
def test_breaker_settings_are_checked(field: str) -> None:
    with pytest.raises(ConfigurationError, match=f"BreakerSettings.{field}"):
        BreakerSettings(**{field: 0})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="failure_rate"):
        BreakerSettings(failure_rate=1.5)


def test_the_state_hands_the_probe_to_one_caller_among_many_threads() -> None:
    state = MemoryRouterState()
    for index in range(3):
        state.perform(Record("fal", 100.0 + index, SETTINGS, ok=False))
    admissions = []
    barrier = threading.Barrier(20)

    def ask() -> None:
        barrier.wait()
        admissions.append(state.perform(Admit("fal", 200.0, SETTINGS)))

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(admission.allowed for admission in admissions) == 1
    state.perform(Reset("fal"))
    assert state.breaker("fal") == Breaker()


def test_the_state_learns_medians_and_percentiles() -> None:
    state = MemoryRouterState()
    state.seed("fal", seconds=[1, 2, 3, 4, 100], queue_seconds=[0.1] * 19 + [5.0],
               unit_prices=["0.002", "0.001", "0.003"])
    numbers = state.numbers("fal")
    assert numbers.p50_seconds == 3 and numbers.p95_seconds == 100
    assert numbers.p95_queue_seconds == 0.1 and numbers.queue_samples == 20
    assert numbers.unit_price == Decimal("0.002") and numbers.samples == 5
    state.perform(Record("fal", 1.0, SETTINGS, ok=True, total_seconds=2.5, unit_price=Decimal("0.0001")))
    assert state.perform(ReadNumbers(("fal", "runware")))["runware"].samples == 0


def test_client_budget_reservations_are_atomic_and_settle_to_what_was_spent() -> None:
    state = MemoryRouterState()
    limit = Decimal("0.10")
    first = state.perform(ReserveSpend(Decimal("0.06"), limit))
    assert first is not None
    assert state.perform(ReserveSpend(Decimal("0.05"), limit)) is None  # 0.06 reserved + 0.05 > 0.10
    state.perform(SettleSpend(first, Decimal("0.02")))
    assert state.spent == Decimal("0.02")
    assert state.perform(ReserveSpend(Decimal("0.08"), limit)) is not None


def test_the_hedge_allowance_is_a_fraction_of_the_hedged_routes_spend() -> None:
    state = MemoryRouterState()
    ratio = Decimal("0.10")
    assert state.perform(ReserveHedge(Decimal("0.01"), ratio, Decimal("0.01"))) is None  # 0.01 > 10 % of 0.01
    state.perform(SettleHedge(None, Decimal(0), Decimal("0.19")))
    token = state.perform(ReserveHedge(Decimal("0.01"), ratio, Decimal("0.01")))  # 0.01 <= 10 % of 0.20
    assert token is not None
    second = state.perform(ReserveHedge(Decimal("0.01"), ratio, Decimal("0.01")))  # 0.02 <= 10 % of 0.21
    assert second is not None
    assert state.perform(ReserveHedge(Decimal("0.01"), ratio, Decimal("0.01"))) is None  # 0.03 > 10 % of 0.22
    state.perform(SettleHedge(token, Decimal(0), Decimal("0.01")))  # cancelled in the queue: nothing extra
    state.perform(SettleHedge(second, Decimal("0.01"), Decimal("0.01")))  # the loser ran: billed
    assert state.hedge_spend == (Decimal("0.01"), Decimal("0.21"))


def test_a_forked_child_keeps_what_was_learned_and_drops_the_parents_reservations() -> None:
    state = MemoryRouterState()
    state.seed("fal", seconds=[2.0])
    held = state.perform(ReserveSpend(Decimal("0.09"), Decimal("0.10")))
    assert held is not None and state.perform(ReserveSpend(Decimal("0.02"), Decimal("0.10"))) is None
    state.after_fork()  # what the client does in the child of os.fork()
    assert state.numbers("fal").samples == 1
    assert state.perform(ReserveSpend(Decimal("0.02"), Decimal("0.10"))) is not None


def test_a_busy_window_keeps_its_latest_outcomes_and_rates_them() -> None:
    # 500 successes then 100 alternating outcomes, all within the window: the share of failures is that of the
    # latest KEPT_OUTCOMES (50 %, which opens it), not of all 600 (8 %), and the breaker stays bounded.
    settings = BreakerSettings(failures=1000, failure_rate=0.5, minimum_calls=10, window=3600.0)
    breaker, now = Breaker(), 1000.0
    for _ in range(500):
        now += 0.01
        breaker = record(breaker, now, settings, ok=True)
    assert len(breaker.outcomes) == KEPT_OUTCOMES and breaker.status == "closed"
    for index in range(KEPT_OUTCOMES):
        now += 0.01
        breaker = record(breaker, now, settings, ok=index % 2 == 1)
        if breaker.status == "open":
            break
    assert breaker.status == "open" and "of the last 100 calls failed" in (breaker.reason or "")
    assert len(breaker.outcomes) <= KEPT_OUTCOMES


def test_minimum_calls_above_the_kept_outcomes_keeps_that_many() -> None:
    settings = BreakerSettings(failures=1000, minimum_calls=KEPT_OUTCOMES + 50, window=3600.0)
    breaker = Breaker()
    for index in range(400):
        breaker = record(breaker, 1000.0 + index, settings, ok=True)
    assert len(breaker.outcomes) == KEPT_OUTCOMES + 50
