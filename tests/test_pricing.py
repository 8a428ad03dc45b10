"""The price table: every price has a source and dates, estimates say so, and estimates round exactly."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from photomaker_bridge import Cost
from photomaker_bridge.pricing import PRICES, Price, estimate_cost, price_for


@pytest.mark.parametrize("price", PRICES, ids=lambda price: f"{price.provider}:{price.model}")
def test_every_price_is_sourced_and_dated(price: Price) -> None:
    assert price.source.strip()
    assert isinstance(price.recorded_on, datetime.date)
    assert price.amount > 0 and price.currency == "USD"
    assert price.source_date is None or price.source_date <= price.recorded_on
    # An estimate says so where people read it.
    assert price.estimate == price.source.startswith("ESTIMATE")


def test_one_line_per_provider_and_model() -> None:
    keys = [(price.provider, price.model) for price in PRICES]
    assert len(keys) == len(set(keys))


def test_fal_photomaker_is_a_per_second_estimate() -> None:
    price = price_for("fal", "fal-ai/photomaker")
    assert price is not None
    assert (price.amount, price.unit, price.estimate) == (Decimal("0.001"), "second", True)
    assert "fal.md §4.3" in price.source


def test_eachlabs_reference_prices() -> None:
    photomaker = price_for("eachlabs", "photomaker")
    style = price_for("eachlabs", "photomaker-style")
    assert photomaker is not None and style is not None
    assert photomaker.amount == style.amount == Decimal("0.00108")
    assert not photomaker.estimate and style.estimate
    assert photomaker.source_date == datetime.date(2026, 4, 6)
    assert "eachlabs.md §5" in photomaker.source


def test_unknown_price() -> None:
    assert price_for("fal", "fal-ai/flux") is None
    assert estimate_cost("runware", "photomaker", seconds=[1.0], images=1) is None


@pytest.mark.parametrize(("seconds", "amount"), [
    ([14.2], "0.014200"), ([0.1], "0.000100"), ([73.0], "0.073000"), ([1.2345678], "0.001235"),
    ([10, 4.5], "0.014500"), ([0.0], "0.000000"),
])
def test_fal_estimates_are_exact_decimals(seconds: list[float], amount: str) -> None:
    assert estimate_cost("fal", "fal-ai/photomaker", seconds=seconds) == Cost(Decimal(amount), "USD", "estimated")


def test_eachlabs_estimate_matches_its_reported_rounding() -> None:
    # eachlabs.md §6: metrics.cost = round(predict_time * 0.00108, 6).
    predict_time = 21.37
    cost = estimate_cost("eachlabs", "photomaker", seconds=[predict_time])
    assert cost is not None and cost.amount == Decimal(str(round(predict_time * 0.00108, 6)))


@pytest.mark.parametrize("seconds", [[], [None], [3.0, None], [-1.0]])
def test_no_estimate_without_every_duration(seconds: list[float | None]) -> None:
    assert estimate_cost("fal", "fal-ai/photomaker", seconds=seconds) is None
