"""What a PhotoMaker generation costs where the provider does not say so in its answer.

Runware (``cost`` with ``includeCost``) and Eachlabs (``metrics.cost``) report what each job cost; fal does
not (its queue reports only ``metrics.inference_time``, fal.md §4.3). For fal the bridge therefore
*estimates* the cost from the inference time and the per-second price below, and marks the result's
:class:`~photomaker_bridge.Cost` as ``source="estimated"``.

Every price carries where it comes from and when it was read, and says plainly when it is an estimate:
prices change, so check the source before relying on a figure for billing.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

import attrs

from .result import Cost

__all__ = ["DEFAULT_MAX_COST", "PRICES", "Price", "estimate_cost", "price_for"]

DEFAULT_MAX_COST = Decimal("1")
"""USD: ``compare`` and ``batch`` refuse to start when the jobs left are estimated above this, unless told another
cap (docs/compare-and-batch.md)."""

_AMOUNT_QUANTUM = Decimal("0.000001")
"""Estimated amounts are rounded to a millionth of a dollar, as Eachlabs rounds its ``metrics.cost``."""


@attrs.frozen
class Price:
    """One provider's price for one PhotoMaker model, with its source."""

    provider: str
    """``"fal"``, ``"eachlabs"`` or ``"runware"``."""
    model: str
    """The provider's model or application id (``"fal-ai/photomaker"``, ``"photomaker-style"``)."""
    amount: Decimal
    """Price of one ``unit``, in ``currency``."""
    unit: Literal["second", "image"]
    """What is billed: a second of compute (inference) time, or one image."""
    source: str
    """Where the figure comes from, precise enough to check it again."""
    recorded_on: datetime.date
    """When the figure was read from ``source`` for this table."""
    estimate: bool
    """``True`` when the provider publishes no firm price for this model and the figure is an assumption."""
    source_date: datetime.date | None = None
    """The date the source itself carries ("last updated"), or ``None`` when it is undated."""
    currency: str = "USD"
    """ISO 4217 currency code."""
    note: str = ""
    """Caveats: what the figure assumes."""


PRICES: tuple[Price, ...] = (
    Price(
        provider="fal",
        model="fal-ai/photomaker",
        amount=Decimal("0.001"),
        unit="second",
        source=(
            "ESTIMATE. docs/protocols/fal.md §4.3: a third-party model catalog lists fal-ai/photomaker at "
            "'$0.001 / compute-second, roughly 1–3 US cents per image' [UNVERIFIED]; fal's own llms.txt "
            "(https://fal.ai/models/fal-ai/photomaker/llms.txt) shows the placeholder '$0 per compute seconds', "
            "and https://docs.fal.ai/documentation/model-apis/pricing says models without a per-output price "
            "are billed per GPU-second"
        ),
        recorded_on=datetime.date(2026, 11, 21),
        estimate=True,
        note=("fal publishes no firm PhotoMaker price; billed per second of inference (metrics.inference_time), "
              "never for queue time or server errors. Check GET https://api.fal.ai/v1/models/pricing"
              "?endpoint_id=fal-ai/photomaker for the live figure."),
    ),
    Price(
        provider="eachlabs",
        model="photomaker",
        amount=Decimal("0.00108"),
        unit="second",
        source=("docs/protocols/eachlabs.md §5, quoting https://www.eachlabs.ai/tencent/photomaker/photomaker/"
                "llms.txt: 'Per-second pricing based on provider predict_time. Rate: $0.00108/sec'"),
        recorded_on=datetime.date(2026, 11, 21),
        estimate=False,
        source_date=datetime.date(2026, 4, 6),
        note="For reference: Eachlabs reports the actual charge per prediction in metrics.cost.",
    ),
    Price(
        provider="eachlabs",
        model="photomaker-style",
        amount=Decimal("0.00108"),
        unit="second",
        source=("ESTIMATE. docs/protocols/eachlabs.md §5: no price page found for photomaker-style; assumed to "
                "be the photomaker GPU tier, $0.00108/sec [UNVERIFIED]"),
        recorded_on=datetime.date(2026, 11, 21),
        estimate=True,
        note="For reference: Eachlabs reports the actual charge per prediction in metrics.cost.",
    ),
    Price(
        provider="runware",
        model="photoMaker",
        amount=Decimal("0.0013"),
        unit="image",
        source=("ESTIMATE. Runware publishes no PhotoMaker price: it bills hosted open models by compute time "
                "(https://runware.ai/docs/platform/pricing, docs/protocols/runware.md D-PRICE); its API reference's "
                "PhotoMaker answer shows "
                "'cost': 0.0013 per image, used here for a 1024×1024 image at its default 20 steps"),
        recorded_on=datetime.date(2026, 11, 21),
        estimate=True,
        note=("Runware reports the actual charge per image when asked (includeCost, which the bridge always sends); "
              "this figure only ranks providers before any Runware result has been seen."),
    ),
)
"""Every known price, one line per provider and model."""


def price_for(provider: str, model: str) -> Price | None:
    """The price of ``model`` on ``provider``, or ``None`` when the table has none."""
    for price in PRICES:
        if price.provider == provider and price.model == model:
            return price
    return None


def _to_decimal(value: float | int) -> Decimal:
    # Through str() so that 14.2 stays 14.2 instead of 14.199999999999999289457264239899814128875732421875.
    return Decimal(str(value))


def estimate_cost(provider: str, model: str, *, seconds: Iterable[float | None] = (),
                  images: int | None = None) -> Cost | None:
    """An estimated :class:`~photomaker_bridge.Cost` from the price table, or ``None`` when it cannot be told.

    ``seconds`` are the billed compute seconds of each call (fal's ``metrics.inference_time``), used by
    per-second prices; ``images`` the number of images, used by per-image prices. ``None`` is returned when
    the table has no price, or when any call's seconds are unknown (a partial sum would understate the cost).
    """
    price = price_for(provider, model)
    if price is None:
        return None
    if price.unit == "second":
        durations = list(seconds)
        if not durations or any(duration is None or duration < 0 for duration in durations):
            return None
        quantity = sum((_to_decimal(duration) for duration in durations if duration is not None), Decimal(0))
    else:
        if images is None or images < 0:
            return None
        quantity = Decimal(images)
    amount = (quantity * price.amount).quantize(_AMOUNT_QUANTUM, rounding=ROUND_HALF_UP)
    return Cost(amount=amount, currency=price.currency, source="estimated")
