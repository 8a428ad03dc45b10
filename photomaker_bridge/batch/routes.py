"""Routed batch jobs: where a job may go (a provider name or a :class:`~photomaker_bridge.Route`), how a route is
written in a JSONL line and in the journal, and the label a routed job counts under until a provider takes it.

A route is built only by the routing package's own constructors — :class:`~photomaker_bridge.Route` for a JSONL
``"route": {...}`` object (its fields are the constructor's keywords, checked by it), ``as_route`` for a list of
names, ``parse_route`` for the CLI's ``--route`` — so a batch reads routes exactly as a call does
(docs/routing.md). What this module adds is the route's **canonical form**: a JSON object with every field
spelt one way, from which a routed job's default key is derived and which the journal records.

A batch submits each job and then collects it (docs/compare-and-batch.md), and a hedge is never sent for a
``submit`` (docs/routing.md, "Hedging"), so a route with ``hedge`` is refused here rather than silently run
without one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigurationError, InvalidRequestError
from ..request import PROVIDER_NAMES
from ..routing import Route, as_route

__all__ = ["ROUTE_FIELDS", "ROUTE_LABEL", "JobProvider", "canonical_route", "job_provider", "label_of",
           "route_from_line"]

JobProvider = str | Route
"""Where a batch job goes: a provider name (a direct call) or a route across providers."""

ROUTE_LABEL = "route"
"""What a routed job counts under before a provider accepts it, and after it failed on its route (the summary's
``route`` row: jobs no candidate finished)."""

ROUTE_FIELDS = ("providers", "strategy", "weights", "max_attempts", "budget", "policies")
"""The fields a JSONL ``"route"`` object may give: :class:`~photomaker_bridge.Route`'s keywords, ``hedge`` aside."""


def job_provider(value: Any) -> JobProvider:
    """``value`` as a job's provider: a name stays a name, a list of names becomes an ordered route (as for
    ``Bridge.submit``), a :class:`Route` stays itself. A route with a hedge is refused (see the module docstring);
    a wrong type or an invalid route is an :class:`InvalidRequestError` naming ``provider``."""
    try:
        route = as_route(value)
    except ConfigurationError as error:
        raise InvalidRequestError("provider", value, "a provider name, a list of names or a Route",
                                  reason=str(error)) from None
    if route is None:
        if value not in PROVIDER_NAMES:
            raise InvalidRequestError("provider", value, "one of " + ", ".join(PROVIDER_NAMES),
                                      reason="unknown provider")
        return str(value)
    if route.hedge is not None:
        raise InvalidRequestError("provider", value, "a route without hedge", reason=(
            "a batch submits each job and then collects it, and a hedge is never sent for a submit "
            "(docs/routing.md, Hedging)"))
    return route


def label_of(provider: JobProvider) -> str:
    """The provider's name, or :data:`ROUTE_LABEL` for a route."""
    return provider if isinstance(provider, str) else ROUTE_LABEL


def canonical_route(route: Route) -> dict[str, Any]:
    """The route as a JSON object with one spelling per value (providers in the route's order, which ``ordered``
    follows and the other strategies break ties by; amounts as exact decimal strings without trailing zeros;
    policies by name, sorted): equal routes give equal objects, in every process and every version that keeps
    these fields."""
    return {
        "providers": list(route.providers),
        "strategy": route.strategy,
        "weights": None if route.weights is None else list(route.weights),
        "max_attempts": route.max_attempts,
        "budget": None if route.budget is None else format(route.budget.normalize(), "f"),
        "policies": dict(sorted(route.policies.items())),
    }


def route_from_line(value: Any) -> Route:
    """A JSONL line's ``"route"`` object as a :class:`Route`: ``{"providers": ["runware", "fal"], "strategy":
    "cheapest", "max_attempts": 2, "budget": "0.05", "policies": {...}, "weights": [...]}`` (``providers`` may also be
    one string of names joined by commas). Errors name the field: ``route.max_attempts``, ``route.hedge``, ..."""
    if not isinstance(value, Mapping):
        raise InvalidRequestError("route", value, 'a JSON object such as {"providers": ["runware", "fal"]}')
    for field in value:
        if field not in ROUTE_FIELDS:
            reason = ("a batch submits each job and then collects it; a hedge is never sent for a submit"
                      if field == "hedge" else "unknown field")
            raise InvalidRequestError(f"route.{field}", value[field], "one of " + ", ".join(ROUTE_FIELDS),
                                      reason=reason)
    fields = dict(value)
    providers = fields.get("providers")
    if isinstance(providers, str):
        fields["providers"] = [name.strip() for name in providers.split(",") if name.strip()]
    if "providers" not in fields:
        raise InvalidRequestError("route.providers", None, "the candidate providers, e.g. [\"runware\", \"fal\"]")
    try:
        return Route(**fields)
    except ConfigurationError as error:
        text = str(error)
        field = text.split(" ", 1)[0].split(":", 1)[0].removeprefix("Route.").split("[", 1)[0]
        raise InvalidRequestError(f"route.{field}" if field in ROUTE_FIELDS else "route", value.get(field, value),
                                  "a valid route (docs/routing.md)", reason=text) from None
