"""How candidates are ranked (pure): least tried first, then the strategy; weighted draws follow their weights;
the price of *this* request comes from its images, steps and size."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal

import pytest

from photomaker_bridge import InvalidRequestError, MemoryRouterState, PhotoMakerRequest, Route, explain
from photomaker_bridge.providers.eachlabs import EachlabsProvider
from photomaker_bridge.providers.fal import FalProvider
from photomaker_bridge.providers.runware import RunwareProvider
from photomaker_bridge.routing import estimated_cost, weighted_order, work_of
from photomaker_bridge.routing._choice import Candidate, first_choice, is_capability, order
from photomaker_bridge.routing._state import ProviderNumbers
from photomaker_bridge.samples import sample_faces

FACE = str(sample_faces()[0])
ADAPTERS = {"runware": RunwareProvider(api_key="k"), "fal": FalProvider(key="k"),
            "eachlabs": EachlabsProvider(api_key="k")}


def _request(**fields: object) -> PhotoMakerRequest:
    values: dict[str, object] = {"prompt": "a photo of a man img", "images": [FACE]}
    values.update(fields)
    return PhotoMakerRequest(**values)  # type: ignore[arg-type]


def _candidate(name: str, estimate: str | None, seconds: float) -> Candidate:
    plan = explain(_request(), name)
    return Candidate(name, plan, None if estimate is None else Decimal(estimate), seconds)


CANDIDATES = [_candidate("runware", "0.03", 9.0), _candidate("fal", "0.01", 20.0), _candidate("eachlabs", "0.02", 4.0)]


@pytest.mark.parametrize(("strategy", "expected"), [
    ("ordered", ["runware", "fal", "eachlabs"]),
    ("cheapest", ["fal", "eachlabs", "runware"]),
    ("fastest", ["eachlabs", "runware", "fal"]),
])
def test_each_strategy_ranks_by_its_number(strategy: str, expected: list[str]) -> None:
    route = Route(["runware", "fal", "eachlabs"], strategy=strategy)  # type: ignore[arg-type]
    assert [item.provider for item in order(route, CANDIDATES, {}, random.random)] == expected


def test_the_least_tried_go_first_and_a_retry_goes_first_of_all() -> None:
    route = Route(["runware", "fal", "eachlabs"], strategy="cheapest")
    ranked = order(route, CANDIDATES, {"fal": 1}, random.random)
    assert [item.provider for item in ranked] == ["eachlabs", "runware", "fal"]
    ranked = order(route, CANDIDATES, {"fal": 1}, random.random, prefer="fal")
    assert ranked[0].provider == "fal"


def test_an_unknown_price_ranks_last_for_cheapest() -> None:
    route = Route(["runware", "fal"], strategy="cheapest")
    ranked = order(route, [_candidate("runware", None, 1.0), _candidate("fal", "0.5", 1.0)], {}, random.random)
    assert ranked[0].provider == "fal"


def test_weighted_first_picks_follow_the_weights_within_5_percent_over_2000_draws() -> None:
    weights = {"runware": 0.6, "fal": 0.3, "eachlabs": 0.1}
    route = Route(list(weights), strategy="weighted", weights=weights)
    generator = random.Random(20261121)
    picks = Counter(order(route, CANDIDATES, {}, generator.random)[0].provider for _ in range(2000))
    for name, weight in weights.items():
        assert abs(picks[name] / 2000 - weight) <= 0.05, (name, picks)


def test_weighted_order_puts_weightless_names_last() -> None:
    assert weighted_order(["a", "b", "c"], [0.0, 1.0, 0.0], random.Random(1).random) == ["b", "a", "c"]


def test_work_is_images_times_steps_times_megapixels_as_the_provider_runs_them() -> None:
    assert work_of(explain(_request(), "runware")) == Decimal(20)  # Runware's default steps, 1024x1024, 1 image
    assert work_of(explain(_request(), "fal")) == Decimal(50)  # fal's default 50 steps
    assert work_of(explain(_request(num_images=2, steps=30, width=512, height=512), "runware")) == Decimal(15)
    assert work_of(explain(_request(steps=10), "fal")) == Decimal(20)  # fal clamps steps to 20 at least


def test_the_price_of_this_request_grows_with_its_work_and_learned_prices_replace_the_seed() -> None:
    small = explain(_request(), "runware")
    large = explain(_request(num_images=4, steps=40), "runware")
    seeded_small = estimated_cost(small, None, ADAPTERS["runware"])
    seeded_large = estimated_cost(large, None, ADAPTERS["runware"])
    assert seeded_small == Decimal("0.001300")  # the price table's per-image figure, at its default steps
    assert seeded_large == seeded_small * 8  # type: ignore[operator]
    learned = ProviderNumbers(unit_price=Decimal("0.0001"))
    assert estimated_cost(small, learned, ADAPTERS["runware"]) == Decimal("0.002000")


def test_every_provider_has_a_seed_price() -> None:
    for name, adapter in ADAPTERS.items():
        cost = estimated_cost(explain(_request(), name), None, adapter)
        assert cost is not None and cost > 0, name


def test_capability_refusals_are_told_apart_from_a_request_that_must_change() -> None:
    with pytest.raises(InvalidRequestError) as url:
        explain(_request(images=["https://example.com/face.jpg"]), "fal")
    with pytest.raises(InvalidRequestError) as strict:
        explain(_request(steps=150), "fal", strict=True)
    with pytest.raises(InvalidRequestError) as long_prompt:
        explain(_request(prompt="a photo of a man img " + "very " * 80), "runware")
    assert is_capability(url.value) and is_capability(strict.value)
    assert not is_capability(long_prompt.value)


def test_explain_with_a_route_shows_the_first_choice() -> None:
    state = MemoryRouterState()
    state.seed("runware", unit_prices=["0.01"])
    state.seed("fal", unit_prices=["0.0001"])
    numbers = {name: state.numbers(name) for name in ADAPTERS}
    route = Route(["runware", "fal"], strategy="cheapest")
    assert first_choice(route, _request(), False, ADAPTERS, numbers, random.random).provider == "fal"
    # fal cannot take a URL reference: the first choice is the next candidate.
    url = _request(images=["https://example.com/face.jpg"])
    assert first_choice(route, url, False, ADAPTERS, numbers, random.random).provider == "runware"
    with pytest.raises(InvalidRequestError, match="300"):
        first_choice(Route(["runware", "fal"]), _request(prompt="a man img " + "x" * 400), False, ADAPTERS, numbers,
                     random.random)
