"""What a batch will cost, before the first request: the price tables of :mod:`photomaker_bridge.pricing`, plus
the few assumptions a price table cannot give (how many seconds a per-second price bills, Runware's price),
replaced by what earlier runs in the same journal actually cost as soon as there is any.

The assumptions are deliberately on the high side, since the estimate guards a spending limit; each is listed,
with its source, in ``docs/compare-and-batch.md``. For the same reason a routed job is estimated at the most
expensive of the candidates that can take it: whichever the route ends on, the estimate is not passed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal

import attrs

from ..plan import Plan
from ..pricing import price_for
from ..providers.base import Provider

__all__ = ["ASSUMED_BILLED_SECONDS", "ASSUMED_PRICE_PER_IMAGE", "CostEstimate", "CostEstimator", "ProviderEstimate"]

ASSUMED_BILLED_SECONDS: Mapping[tuple[str, str], float] = {
    # fal bills inference seconds and publishes no PhotoMaker latency; SDXL at 1024², 50 steps takes 10–30 s
    # (docs/compare-and-batch.md): the upper end, since this guards a limit.
    ("fal", "fal-ai/photomaker"): 30.0,
    # Eachlabs' model pages: "Response time: ~21 seconds" (photomaker-style) and "Estimated Processing Time:
    # 73 seconds" (https://www.eachlabs.ai/tencent/photomaker/photomaker/llms.txt).
    ("eachlabs", "photomaker-style"): 21.0,
    ("eachlabs", "photomaker"): 73.0,
}
"""Seconds billed per call for the per-second prices of :data:`photomaker_bridge.pricing.PRICES`."""

ASSUMED_PRICE_PER_IMAGE: Mapping[str, Decimal] = {
    # Runware reports each job's cost but publishes no PhotoMaker price (https://runware.ai/docs/platform/pricing);
    # 0.004 USD is the highest figure in public sources (docs/compare-and-batch.md).
    "runware": Decimal("0.004"),
}
"""USD per image for providers whose price table has no entry."""

_QUANTUM = Decimal("0.000001")


def model_of(adapter: Provider) -> str:
    """The model or application an adapter sends to (``fal-ai/photomaker``, ``photomaker-style``), for prices."""
    for attribute in ("application", "model"):
        value = getattr(adapter, attribute, None)
        if isinstance(value, str):
            return value
    return adapter.name


def job_cost(adapter: Provider, plan: Plan) -> tuple[Decimal, str] | None:
    """The estimated cost of one planned job and how it was reached, or ``None`` when nothing tells."""
    images = sum(plan.images_per_payload) or len(plan.payloads)
    model = model_of(adapter)
    price = price_for(adapter.name, model)
    if price is not None and price.unit == "image":
        return price.amount * images, f"{price.amount} {price.currency}/image (pricing.py)"
    seconds = ASSUMED_BILLED_SECONDS.get((adapter.name, model))
    if price is not None and seconds is not None:
        calls = len(plan.payloads) or 1
        return (price.amount * Decimal(str(seconds)) * calls,
                f"{price.amount} {price.currency}/s (pricing.py) × {seconds:g} s per call (assumed)")
    assumed = ASSUMED_PRICE_PER_IMAGE.get(adapter.name)
    if assumed is not None:
        return assumed * images, f"{assumed} USD/image (assumed: no published price)"
    return None


@attrs.frozen
class ProviderEstimate:
    """One provider's share of an estimate."""

    jobs: int
    """Jobs to submit."""
    amount: Decimal
    """Their estimated cost (over the priced ones)."""
    unpriced: int
    """Jobs nothing could price (not in ``amount``)."""
    basis: str
    """How the figure was reached (the last job's basis; one provider prices all its jobs the same way)."""


@attrs.frozen
class CostEstimate:
    """The estimated cost of the jobs a run will submit, per provider and in all (USD)."""

    providers: Mapping[str, ProviderEstimate]

    @property
    def jobs(self) -> int:
        """Jobs to submit."""
        return sum(item.jobs for item in self.providers.values())

    @property
    def total(self) -> Decimal:
        """The estimated cost of the priced jobs."""
        return sum((item.amount for item in self.providers.values()), Decimal(0)).quantize(_QUANTUM,
                                                                                           ROUND_HALF_UP)

    @property
    def unpriced(self) -> int:
        """Jobs with no estimate at all."""
        return sum(item.unpriced for item in self.providers.values())


@attrs.define
class CostEstimator:
    """Adds up job estimates; ``learned`` (provider → cost per image seen in the journal) beats assumptions."""

    learned: Mapping[str, Decimal] = attrs.field(factory=dict)
    _jobs: dict[str, int] = attrs.field(factory=dict)
    _amounts: dict[str, Decimal] = attrs.field(factory=dict)
    _unpriced: dict[str, int] = attrs.field(factory=dict)
    _basis: dict[str, str] = attrs.field(factory=dict)

    def add(self, adapter: Provider, plan: Plan) -> None:
        """Count one job to submit to ``adapter``."""
        self.add_job(adapter.name, [(adapter, plan)])

    def add_job(self, label: str, planned: Sequence[tuple[Provider, Plan]]) -> None:
        """Count one job to submit under ``label``, at the most expensive of its ``planned`` candidates (one for a
        job sent to one provider; every candidate of a route that can take it)."""
        name = label
        self._jobs[name] = self._jobs.get(name, 0) + 1
        estimates = [(priced, adapter.name) for adapter, plan in planned
                     if (priced := self._estimate(adapter, plan)) is not None]
        estimate: tuple[Decimal, str] | None = None
        if estimates:
            (amount, basis), provider = max(estimates, key=lambda item: item[0][0])
            estimate = (amount, basis) if provider == label else (
                amount, f"the dearest candidate of the route that can take the job, {provider}: {basis}")
        if estimate is None:
            self._unpriced[name] = self._unpriced.get(name, 0) + 1
            return
        self._amounts[name] = self._amounts.get(name, Decimal(0)) + estimate[0]
        self._basis[name] = estimate[1]

    def _estimate(self, adapter: Provider, plan: Plan) -> tuple[Decimal, str] | None:
        name = adapter.name
        if name in self.learned:
            images = sum(plan.images_per_payload) or len(plan.payloads)
            return self.learned[name] * images, f"{self.learned[name]} USD/image (earlier runs of this journal)"
        return job_cost(adapter, plan)

    def result(self) -> CostEstimate:
        """The estimate so far."""
        return CostEstimate({name: ProviderEstimate(jobs, self._amounts.get(name, Decimal(0)).quantize(_QUANTUM),
                                                    self._unpriced.get(name, 0), self._basis.get(name, "no price"))
                             for name, jobs in self._jobs.items()})


def learned_prices(per_image: Iterable[tuple[str, Decimal | None]]) -> dict[str, Decimal]:
    """provider → cost per image, from ``(provider, per-image cost)`` pairs, skipping unknown ones."""
    return {provider: value for provider, value in per_image if value is not None}
