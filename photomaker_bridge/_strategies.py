"""The names of the routing strategies, in a module of their own so that the CLI can offer them in ``--help``
without importing the routing package (docs/architecture.md, "Imports")."""

from __future__ import annotations

from typing import Final, Literal, get_args

__all__ = ["STRATEGIES", "Strategy"]

Strategy = Literal["ordered", "cheapest", "fastest", "weighted"]
"""How a route orders its candidates (docs/routing.md, "Strategies")."""

STRATEGIES: Final[tuple[str, ...]] = get_args(Strategy)
"""Every strategy's name, in the order the docs list them."""
