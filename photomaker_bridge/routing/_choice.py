"""Which candidates can take a request, and in which order a route tries them. Pure: no I/O, no clock.

* :func:`plan_candidates` plans the request for every provider of the route (``Provider.plan`` is offline): one
  that refuses it as given — fal with a URL or WEBP reference, a Runware UUID on another provider, ``strict=True``
  with an adjustment, a provider without a key — drops out before anything is chosen, with its reason.
* :func:`order` ranks the rest: first the candidates tried least often in this call (so a fallback goes to a
  provider not tried yet, and only then round again), then by the strategy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

import attrs

from ..errors import ConfigurationError, InvalidRequestError
from ..plan import Plan
from ..providers.base import Provider
from ..request import PhotoMakerRequest
from ._numbers import estimated_cost, expected_seconds
from ._route import Route
from ._state import ProviderNumbers

__all__ = ["Candidate", "first_choice", "is_capability", "make_candidate", "order", "plan_candidates",
           "weighted_order"]


@attrs.frozen
class Candidate:
    """A provider of the route, with its plan and its numbers for this request."""

    provider: str
    plan: Plan | None
    """``None`` when the provider refused the request for a reason that is not a capability (``refusal``)."""
    estimate: Decimal | None
    """What the request should cost there (USD), or ``None`` when unknown."""
    seconds: float
    """How long it should take there."""
    open: bool = False
    """Whether its circuit breaker skips it now (open or disabled), as last known."""
    refusal: InvalidRequestError | None = None
    """Why the provider's plan refused the request when that is the request's fault, not a capability: choosing
    it ends the attempt at once with this error, which its policy then judges."""


def is_capability(error: BaseException) -> bool:
    """Whether a plan's refusal says the provider cannot take the request *as given* — its references (a URL or a
    WEBP for fal, a Runware UUID elsewhere) or an adjustment strict mode forbids — rather than that the request
    must change: a capability refusal drops the provider before choosing, any other follows its policy."""
    if isinstance(error, ConfigurationError):
        return True
    if not isinstance(error, InvalidRequestError):
        return False
    return error.field.startswith("images[") or (error.reason or "").startswith("strict mode")


def plan_candidates(route: Route, request: PhotoMakerRequest, strict: bool, adapters: Mapping[str, Provider], *,
                    webhook_url: str | None = None,
                    ) -> tuple[dict[str, Plan], list[tuple[str, ConfigurationError | InvalidRequestError]]]:
    """Each provider's plan (set to POST its outcome to ``webhook_url`` when given), and the providers that cannot
    take the request with the error that says why (a missing key, no webhook, a refusal of the request)."""
    plans: dict[str, Plan] = {}
    refused: list[tuple[str, ConfigurationError | InvalidRequestError]] = []
    for name in route.providers:
        adapter = adapters[name]
        try:
            adapter.require_key()
            plan = adapter.plan(request, strict=strict)
            plans[name] = plan if webhook_url is None else adapter.with_webhook(plan, webhook_url)
        except (ConfigurationError, InvalidRequestError) as error:
            refused.append((name, error))
    return plans, refused


def weighted_order(names: Sequence[str], weights: Sequence[float], random: Callable[[], float]) -> list[str]:
    """``names`` in a random order where each next one is drawn with probability proportional to its weight among
    those left (names of weight 0 come last, in their given order)."""
    left = list(zip(names, weights, strict=True))
    ordered: list[str] = []
    while left:
        total = sum(weight for _, weight in left)
        if total <= 0:
            ordered += [name for name, _ in left]
            break
        draw = random() * total
        index = 0
        for index, (_, weight) in enumerate(left):  # noqa: B007 - the index found is used below
            draw -= weight
            if draw < 0:
                break
        ordered.append(left.pop(index)[0])
    return ordered


def order(route: Route, candidates: Sequence[Candidate], tried: Mapping[str, int], random: Callable[[], float],
          prefer: str | None = None) -> list[Candidate]:
    """The candidates in the order this attempt should consider them (see the module docstring); ``prefer`` (the
    ``retry`` action's provider) goes first."""
    position = {name: index for index, name in enumerate(route.providers)}
    by_name = {candidate.provider: candidate for candidate in candidates}
    ordered: list[Candidate] = []
    for count in sorted({tried.get(candidate.provider, 0) for candidate in candidates}):
        group = [candidate for candidate in candidates if tried.get(candidate.provider, 0) == count]
        if route.strategy == "weighted":
            names = weighted_order([candidate.provider for candidate in group],
                                   [route.weight_of(candidate.provider) for candidate in group], random)
            ordered += [by_name[name] for name in names]
            continue
        if route.strategy == "cheapest":
            group.sort(key=lambda item: (item.estimate is None, item.estimate or 0, position[item.provider]))
        elif route.strategy == "fastest":
            group.sort(key=lambda item: (item.seconds, position[item.provider]))
        else:
            group.sort(key=lambda item: position[item.provider])
        ordered += group
    if prefer is not None and prefer in by_name:
        ordered.sort(key=lambda item: item.provider != prefer)
    return ordered


def make_candidate(name: str, plan: Plan | InvalidRequestError, numbers: ProviderNumbers | None,
                   adapter: Provider) -> Candidate:
    """``name`` with its plan (or the refusal of the request) and its numbers for this request."""
    if isinstance(plan, InvalidRequestError):
        return Candidate(name, None, None, expected_seconds(name, numbers), refusal=plan)
    return Candidate(name, plan, estimated_cost(plan, numbers, adapter), expected_seconds(name, numbers),
                     open=numbers is not None and numbers.breaker in ("open", "disabled"))


def first_choice(route: Route, request: PhotoMakerRequest, strict: bool, adapters: Mapping[str, Provider],
                 numbers: Mapping[str, ProviderNumbers], random: Callable[[], float], *,
                 webhook_url: str | None = None) -> Plan:
    """The plan of the provider ``route`` would try first now (``explain`` with a route): the first candidate, in
    the strategy's order, that is not dropped for a capability, not skipped by its breaker (``Candidate.open``) and
    fits the route's budget. When that candidate refuses the request, or none can take it, the refusal is raised."""
    plans, refused = plan_candidates(route, request, strict, adapters, webhook_url=webhook_url)
    options: dict[str, Plan | InvalidRequestError] = dict(plans)
    options.update({name: error for name, error in refused
                    if isinstance(error, InvalidRequestError) and not is_capability(error)})
    if not options:
        raise refused[0][1]
    ranked = order(route, [make_candidate(name, option, numbers.get(name), adapters[name])
                           for name, option in options.items()], {}, random)
    fitting = [candidate for candidate in ranked if not candidate.open and (
        route.budget is None or candidate.plan is None
        or (candidate.estimate is not None and candidate.estimate <= route.budget))]
    chosen = (fitting or ranked)[0]
    if chosen.refusal is not None:
        raise chosen.refusal
    assert chosen.plan is not None
    return chosen.plan
