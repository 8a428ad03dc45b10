"""The numbers strategies rank by, in image-native units: what *this* request would cost on each provider, and
how long each provider takes (docs/routing.md, "Strategies").

**Work.** A PhotoMaker job's compute grows with its images, its denoising steps and its pixels, so the unit of work
is one image × one step × one megapixel, read from the provider's own plan (the steps and size it will send, or
its default when it sends none). A 1024×1024 image at 20 steps is 20.97 units.

**Price of this request** = work × the provider's price per unit: learned (the median over past results of their
cost ÷ their work, reported costs where the provider reports them — Runware, Eachlabs — and fal's inference-time
estimate otherwise), or before any result the seed from ``pricing.py``: a per-image price spread over the work of
the image it was quoted for, or a per-second price times the seconds a unit takes at the provider's typical speed.

**Time** = the learned median total time of the provider's successful attempts, seeded from its typical time.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from ..plan import Plan
from ..pricing import price_for
from ._state import ProviderNumbers

__all__ = ["SEED_SECONDS", "estimated_cost", "expected_seconds", "seed_unit_price", "unit_price_of", "work_of"]

DEFAULT_STEPS: Final[Mapping[str, int]] = {"runware": 20, "fal": 50, "eachlabs": 20}
"""Steps each provider runs when the request sends none (docs/providers.md, the capability matrix)."""

DEFAULT_SIDE: Final = 1024
"""Pixels per side when the provider sends no size: fal and Eachlabs always make 1024×1024 (docs/providers.md)."""

SEED_SECONDS: Final[Mapping[str, float]] = {
    # Runware publishes no PhotoMaker latency; its SDXL tasks take seconds (https://runware.ai/docs). [ESTIMATE]
    "runware": 6.0,
    # fal: SDXL at 1024², 50 steps, ~10-30 s (docs/protocols/fal.md; the fal adapter's TYPICAL_SECONDS).
    "fal": 15.0,
    # Eachlabs' photomaker-style model page: "Response time: ~21 seconds" (docs/protocols/eachlabs.md).
    "eachlabs": 21.0,
}
"""Typical total seconds of a default request (one 1024² image at the provider's default steps): the seed of
``fastest`` and of per-second prices, replaced by learned numbers as results come in."""

_PRICE_MODEL: Final[Mapping[str, str]] = {"runware": "photoMaker", "fal": "fal-ai/photomaker",
                                          "eachlabs": "photomaker-style"}
"""The ``pricing.py`` line a provider's seed price comes from, unless its adapter names its own model."""

_QUANTUM = Decimal("0.000001")


def work_of(plan: Plan) -> Decimal:
    """Units of work of ``plan``: images × steps × megapixels, as the provider will run them."""
    sent = {line.unified_field: line.value for line in plan.mapping if line.provider_field is not None}
    steps = sent.get("steps")
    if not isinstance(steps, int | float) or isinstance(steps, bool):
        steps = DEFAULT_STEPS.get(plan.provider, 20)
    width, height = (sent.get(side) for side in ("width", "height"))
    width = width if isinstance(width, int) and not isinstance(width, bool) else DEFAULT_SIDE
    height = height if isinstance(height, int) and not isinstance(height, bool) else DEFAULT_SIDE
    images = sum(plan.images_per_payload) or 1
    return Decimal(images) * Decimal(str(steps)) * Decimal(width * height) / Decimal(1024 * 1024)


def _reference_work(provider: str) -> Decimal:
    """The work of the request a seed figure was quoted for: one 1024² image at the provider's default steps."""
    return Decimal(DEFAULT_STEPS.get(provider, 20))


def seed_unit_price(provider: str, adapter: Any = None) -> Decimal | None:
    """The price per unit of work before anything was learned, from ``pricing.py`` (``None`` when it has none)."""
    model = _PRICE_MODEL.get(provider, "")
    if provider == "fal":
        model = str(getattr(adapter, "application", model))
    elif provider == "eachlabs":
        model = str(getattr(adapter, "model", model))
    price = price_for(provider, model)
    if price is None:
        return None
    if price.unit == "image":
        return price.amount / _reference_work(provider)
    seconds = Decimal(str(SEED_SECONDS.get(provider, 15.0)))
    return price.amount * seconds / _reference_work(provider)


def unit_price_of(cost: Decimal, plan: Plan) -> Decimal | None:
    """What one unit of work cost, from a result's ``cost`` for ``plan`` (``None`` for no work)."""
    work = work_of(plan)
    return None if work <= 0 else cost / work


def estimated_cost(plan: Plan, numbers: ProviderNumbers | None, adapter: Any = None) -> Decimal | None:
    """What ``plan`` should cost: work × the learned price per unit, or the seed price; ``None`` when unknown."""
    unit = numbers.unit_price if numbers is not None and numbers.unit_price is not None else None
    if unit is None:
        unit = seed_unit_price(plan.provider, adapter)
    if unit is None:
        return None
    return (work_of(plan) * unit).quantize(_QUANTUM, rounding=ROUND_HALF_UP)


def expected_seconds(provider: str, numbers: ProviderNumbers | None) -> float:
    """The learned median total time, or the seed."""
    if numbers is not None and numbers.p50_seconds is not None:
        return numbers.p50_seconds
    return SEED_SECONDS.get(provider, 15.0)
