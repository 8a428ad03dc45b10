"""Routing across providers (docs/routing.md): a :class:`Route` of candidates, what each failure does next
(:data:`POLICIES`), circuit breakers, strategies on image-native numbers, tied hedging, spend caps, and a decision
trail on every result and routing error.

Sits between the clients and the providers: a client turns ``provider=`` (a name, a list of names, a
:class:`Route`) into one routed call (``_flow``), which its driver (``_drivers``) runs with the client's one
provider path, and whose shared numbers live behind :class:`RouterState` (in memory by default:
:class:`MemoryRouterState`).
"""

from ._breaker import Breaker, BreakerSettings, BreakerStatus
from ._choice import is_capability, weighted_order
from ._drivers import adrive_route, drive_route, join_background, wait_background
from ._flow import RouteCall, route_flow
from ._numbers import SEED_SECONDS, estimated_cost, work_of
from ._policy import POLICIES, Action, Policy, policy_for
from ._route import STRATEGIES, Hedge, Route, Strategy, as_route, parse_route
from ._state import MemoryRouterState, ProviderNumbers, RouterState, StateOperation

__all__ = [
    "POLICIES",
    "SEED_SECONDS",
    "STRATEGIES",
    "Action",
    "Breaker",
    "BreakerSettings",
    "BreakerStatus",
    "Hedge",
    "MemoryRouterState",
    "Policy",
    "ProviderNumbers",
    "Route",
    "RouteCall",
    "RouterState",
    "StateOperation",
    "Strategy",
    "adrive_route",
    "as_route",
    "drive_route",
    "estimated_cost",
    "is_capability",
    "join_background",
    "parse_route",
    "policy_for",
    "route_flow",
    "wait_background",
    "weighted_order",
    "work_of",
]
