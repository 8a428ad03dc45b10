"""``Route`` and ``Hedge`` refuse what cannot work, naming the field; ``parse_route`` reads CLI text; the policy
table says what each error does."""

from __future__ import annotations

from decimal import Decimal

import pytest

from photomaker_bridge import (
    AuthenticationError,
    ConfigurationError,
    ContentPolicyError,
    GenerationFailedError,
    GenerationTimeoutError,
    Hedge,
    InsufficientCreditsError,
    InvalidRequestError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitedError,
    Route,
)
from photomaker_bridge.routing import POLICIES, as_route, parse_route, policy_for


def test_a_route_keeps_its_providers_and_defaults() -> None:
    route = Route(["runware", "fal", "eachlabs"])
    assert route.providers == ("runware", "fal", "eachlabs")
    assert (route.strategy, route.max_attempts, route.budget, route.hedge, route.weights) == (
        "ordered", 3, None, None, None)
    assert as_route(["fal", "runware"]) == Route(["fal", "runware"])
    assert as_route("fal") is None


@pytest.mark.parametrize(("fields", "names"), [
    ({"providers": []}, "Route.providers"),
    ({"providers": ["runware", "midjourney"]}, "'midjourney' is not a provider"),
    ({"providers": ["fal", "fal"]}, "names a provider twice"),
    ({"providers": ["fal"], "strategy": "random"}, "Route.strategy"),
    ({"providers": ["fal"], "max_attempts": 0}, "Route.max_attempts"),
    ({"providers": ["fal"], "max_attempts": True}, "Route.max_attempts"),
    ({"providers": ["fal", "runware"], "strategy": "weighted", "weights": [1.0]}, "Route.weights has 1 weights"),
    ({"providers": ["fal", "runware"], "strategy": "weighted", "weights": {"fal": 1, "eachlabs": 2}},
     "Route.weights must give a weight to each provider"),
    ({"providers": ["fal", "runware"], "strategy": "weighted", "weights": [0, 0]}, "must not all be 0"),
    ({"providers": ["fal", "runware"], "strategy": "weighted", "weights": [1, -1]}, "finite numbers of at least 0"),
    ({"providers": ["fal", "runware"], "weights": [1, 2]}, "only used by strategy='weighted'"),
    ({"providers": ["fal"], "budget": 0}, "Route.budget"),
    ({"providers": ["fal"], "budget": "cheap"}, "Route.budget"),
    ({"providers": ["fal"], "budget": float("nan")}, "Route.budget"),
    ({"providers": ["fal"], "hedge": "p99"}, "Route.hedge"),
    ({"providers": ["fal"], "policies": {"KeyError": "stop"}}, "Route.policies"),
    ({"providers": ["fal"], "policies": {ContentPolicyError: "ignore"}}, "Route.policies['ContentPolicyError']"),
])
def test_an_invalid_route_is_a_configuration_error_naming_the_field(fields: dict[str, object], names: str) -> None:
    with pytest.raises(ConfigurationError, match=names.replace("[", r"\[").replace("(", r"\(")):
        Route(**fields)  # type: ignore[arg-type]


def test_weights_may_be_a_mapping_and_budgets_are_exact() -> None:
    route = Route(["fal", "runware"], strategy="weighted", weights={"runware": 3, "fal": 1}, budget=0.05)
    assert route.weights == (1.0, 3.0)
    assert route.weight_of("runware") == 3.0
    assert route.budget == Decimal("0.05")
    assert Route(["fal"], hedge=2.5).hedge == Hedge(after=2.5)
    assert Route(["fal"], hedge="p95").hedge == Hedge()


@pytest.mark.parametrize("after", [0, -1, float("inf"), True, "p50"])
def test_a_hedge_delay_is_p95_or_positive_seconds(after: object) -> None:
    with pytest.raises(ConfigurationError, match=r"Hedge\.after"):
        Hedge(after=after)  # type: ignore[arg-type]


def test_a_hedge_spend_cap_is_a_fraction_of_at_least_zero() -> None:
    assert Hedge(max_extra_spend="0.05").max_extra_spend == Decimal("0.05")
    with pytest.raises(ConfigurationError, match=r"Hedge\.max_extra_spend"):
        Hedge(max_extra_spend=-0.1)


def test_policies_accept_classes_or_names() -> None:
    route = Route(["fal", "runware"], policies={ContentPolicyError: "fallback", "may_have_accepted": "fallback"})
    assert route.policies == {"ContentPolicyError": "fallback", "may_have_accepted": "fallback"}


def test_parse_route_reads_cli_text() -> None:
    assert parse_route("fal") == "fal"
    assert parse_route(" runware , fal ") == Route(["runware", "fal"])
    route = parse_route("runware,fal,eachlabs", strategy="cheapest", max_attempts=2, budget="0.05", hedge="p95")
    assert route == Route(["runware", "fal", "eachlabs"], strategy="cheapest", max_attempts=2,
                          budget=Decimal("0.05"), hedge=Hedge())
    assert parse_route("fal", hedge="1.5") == Route(["fal"], hedge=Hedge(after=1.5))


@pytest.mark.parametrize(("arguments", "field"), [
    ({"providers": "fal,dalle"}, "providers"),
    ({"providers": "fal,fal"}, "providers"),
    ({"providers": ""}, "providers"),
    ({"providers": "fal", "strategy": "slowest"}, "strategy"),
    ({"providers": "fal", "max_attempts": 0}, "max_attempts"),
    ({"providers": "fal", "budget": "-1"}, "budget"),
    ({"providers": "fal", "budget": "ten"}, "budget"),
    ({"providers": "fal", "hedge": "soon"}, "hedge"),
])
def test_parse_route_names_the_field_it_refuses(arguments: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_route(**arguments)  # type: ignore[arg-type]
    assert caught.value.field == field


@pytest.mark.parametrize(("error", "action", "counts"), [
    (ContentPolicyError("unsafe", provider="fal"), "stop", False),
    (ProviderRejectedError("bad input", provider="fal", status=422), "stop", False),
    (InvalidRequestError("prompt", "x", "shorter"), "stop", False),
    (AuthenticationError("bad key", provider="fal", status=401), "cooldown", False),
    (InsufficientCreditsError("no money", provider="fal", status=402), "cooldown", False),
    (RateLimitedError("slow down", provider="fal", status=429), "fallback", True),
    (ProviderUnavailableError("down", provider="fal", status=503), "fallback", True),
    (GenerationFailedError("failed", provider="fal"), "fallback", True),
    (GenerationTimeoutError("late", provider="fal"), "stop", False),
])
def test_the_default_policy_of_each_error(error: BaseException, action: str, counts: bool) -> None:
    policy = policy_for(error)
    assert (policy.action, policy.breaker) == (action, counts)


def test_an_answer_lost_after_a_job_may_have_been_accepted_stops_unless_the_route_opts_in() -> None:
    error = ProviderUnavailableError("no answer", provider="fal", code="timeout")
    assert policy_for(error).action == "fallback"
    error.may_have_accepted = True
    assert policy_for(error).action == "stop"
    assert policy_for(error, {"may_have_accepted": "fallback"}).action == "fallback"


def test_a_route_overrides_one_class_only() -> None:
    overrides = {"ContentPolicyError": "fallback"}
    assert policy_for(ContentPolicyError("x", provider="fal"), overrides).action == "fallback"  # type: ignore[arg-type]
    assert policy_for(ProviderRejectedError("x", provider="fal"), overrides).action == "stop"  # type: ignore[arg-type]
    assert set(POLICIES) >= {"InvalidRequestError", "ContentPolicyError", "ProviderRejectedError"}
