"""``Route`` and ``Hedge``: the candidate providers of a call, how to choose among them, and how far to go.

Frozen values, checked when built: an invalid route is a :class:`~photomaker_bridge.ConfigurationError` naming the
field, before anything is planned or sent. :func:`parse_route` builds one from command-line text (the CLI's
``--provider runware,fal --strategy cheapest ...``, the batch runner's ``--route``), so both read routes the same
way.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import attrs

from .._strategies import STRATEGIES, Strategy
from ..errors import ConfigurationError, InvalidRequestError
from ..request import PROVIDER_NAMES
from ._policy import ACTIONS, POLICY_KEYS, Action

__all__ = ["STRATEGIES", "Hedge", "Route", "Strategy", "as_route", "parse_route"]

HedgeDelay = float | Literal["p95"]


def _amount(value: Any, field: str, *, allow_zero: bool) -> Decimal:
    """A money amount as an exact Decimal (a float by its shortest repr), or a ConfigurationError naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise ConfigurationError(f"{field} must be a number of US dollars (a Decimal, int, float or numeric "
                                 f"string), got {type(value).__name__} {value!r}")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise ConfigurationError(f"{field} must be a number of US dollars, got {value!r}") from None
    if not amount.is_finite() or amount < 0 or (amount == 0 and not allow_zero):
        allowed = "at least 0" if allow_zero else "more than 0"
        raise ConfigurationError(f"{field} must be a finite amount {allowed}, got {value!r}")
    return amount


def _extra_spend(value: Any) -> Decimal:
    return _amount(value, "Hedge.max_extra_spend", allow_zero=True)


def _budget(value: Any) -> Decimal | None:
    return None if value is None else _amount(value, "Route.budget", allow_zero=False)


def _check_delay(instance: Hedge, attribute: attrs.Attribute[HedgeDelay], value: HedgeDelay) -> None:
    if value == "p95":
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"Hedge.after must be 'p95' (the learned 95th percentile of the primary's queue "
                                 f"wait) or a finite number of seconds above 0, got {value!r}")


@attrs.frozen
class Hedge:
    """Tied hedging (docs/routing.md, "Hedging"): while the first provider's job is still queued ``after`` its
    submission, the same request goes to the next candidate; the first success wins and the other job is cancelled
    (free while it is still queued) or, when it already runs, collected and booked as hedge spend.

    ``Hedge(after="p95")`` waits for the 95th percentile of the primary provider's queue wait learned from past
    results; ``Hedge(after=2.5)`` waits 2.5 s. No hedge is sent when what it may cost would take the hedge spend of
    this client's hedged routes past ``max_extra_spend`` × what those routes spent on their results.
    """

    after: HedgeDelay = attrs.field(default="p95", validator=_check_delay)
    """``"p95"`` or seconds after the primary's job was accepted while it is still queued."""
    max_extra_spend: Decimal = attrs.field(default=Decimal("0.10"), converter=_extra_spend)
    """The cap on hedge spend, as a fraction of the spend of the results of hedged routes (0.10: 10 %)."""


def _providers(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Sequence) or isinstance(value, bytes):
        raise ConfigurationError(f"Route.providers must be a list of provider names, got {type(value).__name__}")
    return tuple(value)


def _policies(value: Any) -> Mapping[str, Action]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"Route.policies must map an error class (or its name) to an action, got "
                                 f"{type(value).__name__}")
    policies: dict[str, Action] = {}
    for key, action in value.items():
        name = key.__name__ if isinstance(key, type) else key
        if name not in POLICY_KEYS:
            raise ConfigurationError(f"Route.policies: {name!r} is not an error class a route decides on; allowed: "
                                     f"{', '.join(sorted(POLICY_KEYS))}")
        if action not in ACTIONS:
            raise ConfigurationError(f"Route.policies[{name!r}]: {action!r} is not an action; allowed: "
                                     f"{', '.join(ACTIONS)}")
        policies[name] = action
    return policies


def _hedge(value: Any) -> Hedge | None:
    if value is None or isinstance(value, Hedge):
        return value
    if value == "p95":
        return Hedge(after="p95")
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return Hedge(after=_seconds(value))
    raise ConfigurationError(f"Route.hedge must be a Hedge, 'p95' or a number of seconds, got {value!r}")


def _seconds(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"Route.hedge: {value!r} is neither 'p95' nor a number of seconds") from None


@attrs.frozen
class Route:
    """The candidate providers of a call and how to choose among them (docs/routing.md).

    ``bridge.generate(request, provider=Route(["runware", "fal", "eachlabs"], strategy="cheapest"))``; a plain list
    of names is shorthand for an ordered route. Each attempt goes to the candidate tried least often so far in the
    call, ties broken by the strategy: ``ordered`` keeps the list's order, ``cheapest`` ranks by the estimated price
    of *this* request, ``fastest`` by the learned median total time, ``weighted`` draws at random by ``weights``.
    What each error does next (try again, fall back, cool the provider down, stop) is the policy table of
    ``photomaker_bridge.routing``, overridable per route with ``policies``.
    """

    providers: tuple[str, ...] = attrs.field(converter=_providers)
    """The candidates, each a configured provider name, each at most once."""
    strategy: Strategy = "ordered"
    """``ordered``, ``cheapest``, ``fastest`` or ``weighted``."""
    weights: tuple[float, ...] | None = attrs.field(default=None, eq=False)
    """For ``weighted``: one weight per provider (a list in the same order, or a mapping of name to weight); equal
    weights when ``None``."""
    max_attempts: int = 3
    """Attempts across all providers together (hedges included); a skipped provider is not an attempt."""
    budget: Decimal | None = attrs.field(default=None, converter=_budget)
    """The most this call may spend (USD): an attempt whose estimated cost would take the call's spend past it is
    not sent, and when none can be sent the call raises :class:`~photomaker_bridge.BudgetExceededError`."""
    hedge: Hedge | None = attrs.field(default=None, converter=_hedge)
    """Tied hedging (:class:`Hedge`), or ``None`` for none."""
    policies: Mapping[str, Action] = attrs.field(factory=dict, converter=_policies, hash=False)
    """Overrides of the policy table: ``{ContentPolicyError: "fallback"}`` (keys: error classes or their names,
    and ``"may_have_accepted"``; actions: ``retry``, ``fallback``, ``cooldown``, ``stop``)."""

    def __attrs_post_init__(self) -> None:
        if not self.providers:
            raise ConfigurationError("Route.providers must name at least one provider")
        for name in self.providers:
            if name not in PROVIDER_NAMES:
                raise ConfigurationError(f"Route.providers: {name!r} is not a provider; known providers: "
                                         f"{', '.join(PROVIDER_NAMES)}")
        if len(set(self.providers)) != len(self.providers):
            raise ConfigurationError(f"Route.providers names a provider twice: {list(self.providers)!r} (use "
                                     "max_attempts, or the 'retry' policy, to try one again)")
        if self.strategy not in STRATEGIES:
            raise ConfigurationError(f"Route.strategy: {self.strategy!r} is not a strategy; allowed: "
                                     f"{', '.join(STRATEGIES)}")
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ConfigurationError(f"Route.max_attempts must be an integer of at least 1, got {self.max_attempts!r}")
        object.__setattr__(self, "weights", self._checked_weights())

    def _checked_weights(self) -> tuple[float, ...] | None:
        if self.weights is None:
            return None
        if self.strategy != "weighted":
            raise ConfigurationError(f"Route.weights are only used by strategy='weighted', not {self.strategy!r}")
        given: Any = self.weights
        if isinstance(given, Mapping):
            unknown = sorted(set(given) - set(self.providers))
            missing = [name for name in self.providers if name not in given]
            if unknown or missing:
                raise ConfigurationError(f"Route.weights must give a weight to each provider of the route and no "
                                         f"other: unknown {unknown}, missing {missing}")
            values = [given[name] for name in self.providers]
        elif isinstance(given, Sequence) and not isinstance(given, str):
            values = list(given)
            if len(values) != len(self.providers):
                raise ConfigurationError(f"Route.weights has {len(values)} weights for {len(self.providers)} providers "
                                         f"{list(self.providers)!r}: give one per provider, in the same order")
        else:
            raise ConfigurationError(f"Route.weights must be a list or a mapping of weights, got {given!r}")
        for value in values:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ConfigurationError(f"Route.weights must be finite numbers of at least 0, got {value!r}")
        if not sum(values) > 0:
            raise ConfigurationError("Route.weights must not all be 0")
        return tuple(float(value) for value in values)

    def weight_of(self, provider: str) -> float:
        """The weight of ``provider`` (1 when no weights were given)."""
        if self.weights is None:
            return 1.0
        return self.weights[self.providers.index(provider)]


@functools.cache
def direct_route(name: str) -> Route:
    """The one-attempt route of a direct call to ``name`` (made once per name: a Route is immutable)."""
    return Route([name], max_attempts=1)


def as_route(provider: Any) -> Route | None:
    """``None`` for a plain provider name (a direct call), a :class:`Route` for a route or a list of names."""
    if isinstance(provider, str):
        return None
    if isinstance(provider, Route):
        return provider
    if isinstance(provider, Sequence) and not isinstance(provider, bytes):
        return Route(providers=list(provider))
    raise ConfigurationError(f"provider must be a provider name, a list of names or a Route, got "
                             f"{type(provider).__name__} {provider!r}")


def parse_route(providers: str, *, strategy: str | None = None, max_attempts: int | None = None,
                budget: str | None = None, hedge: str | None = None) -> str | Route:
    """The route that command-line text describes: ``"runware,fal"`` with the optional strategy, attempts, budget
    (USD) and hedge (``p95`` or seconds, optionally ``:FRACTION``, the hedge spend cap: ``p95:0.5``). One name and
    no other option stays a plain name (a direct call).

    Bad text is an :class:`~photomaker_bridge.InvalidRequestError` naming the route field (``providers``,
    ``strategy``, ``max_attempts``, ``budget``, ``hedge``), which the CLI turns into its own flag's name.
    """
    names = [name.strip() for name in providers.split(",") if name.strip()]
    if len(names) == 1 and strategy is None and max_attempts is None and budget is None and hedge is None:
        if names[0] not in PROVIDER_NAMES:
            raise InvalidRequestError("providers", providers, _allowed("providers"), reason="unknown provider")
        return names[0]
    fields: dict[str, Any] = {"providers": names}
    checks: tuple[tuple[str, Any, Callable[[Any], Any]], ...] = (
        ("strategy", strategy, lambda value: Route(["fal"], strategy=value).strategy),
        ("max_attempts", max_attempts, lambda value: Route(["fal"], max_attempts=value).max_attempts),
        ("budget", budget, lambda value: _amount(value, "budget", allow_zero=False)),
        ("hedge", hedge, _hedge_text),
    )
    for field, value, check in checks:
        if value is None:
            continue
        try:
            fields[field] = check(value)
        except ConfigurationError:
            raise InvalidRequestError(field, value, _allowed(field)) from None
    try:
        return Route(**fields)
    except ConfigurationError as error:
        reason = "a provider is named twice" if "twice" in str(error) else str(error).split(": ", 1)[-1]
        raise InvalidRequestError("providers", providers, _allowed("providers"), reason=reason) from None


def _hedge_text(text: str) -> Hedge:
    after, separator, cap = text.strip().partition(":")
    delay: HedgeDelay = "p95" if after.strip() == "p95" else _seconds(after)
    if not separator:
        return Hedge(after=delay)
    return Hedge(after=delay, max_extra_spend=cap.strip())


def _allowed(field: str) -> str:
    return {
        "providers": "one provider name or several joined with commas, each once: " + ", ".join(PROVIDER_NAMES),
        "strategy": "one of " + ", ".join(STRATEGIES),
        "max_attempts": "an integer of at least 1",
        "budget": "an amount in US dollars above 0, e.g. 0.05",
        "hedge": "p95 or a number of seconds above 0, optionally followed by :FRACTION (the hedge spend cap, e.g. "
                 "p95:0.5)",
    }[field]
