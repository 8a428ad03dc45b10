"""Everything checked before the first request of a batch: each job planned for its provider — or for every
candidate of its route — offline, keys given twice, every provider's key present, what earlier runs already did,
and what the rest will cost (a routed job at its most expensive candidate).

Bad jobs become :class:`~photomaker_bridge.batch.jsonl.LineProblem` entries (reported, then skipped); a missing
key is a :class:`~photomaker_bridge.ConfigurationError`; a cost above the limit an
:class:`~photomaker_bridge.InvalidRequestError` naming the limit. Nothing is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from pathlib import Path

import attrs

from ..client import AsyncBridge, Bridge
from ..errors import BridgeError, ConfigurationError, InvalidRequestError
from ..plan import Plan
from ..providers.base import Provider
from ..routing import is_capability
from .estimate import CostEstimate, CostEstimator, learned_prices
from .jobs import BatchJob
from .journal import JOURNAL_NAME, scan_journal
from .jsonl import LineProblem
from .summary import summarize_journal

__all__ = ["Preflight", "check_cost", "preflight"]


@attrs.frozen
class Preflight:
    """What a run will do, known before it sends anything."""

    to_submit: Mapping[str, int]
    """Jobs to submit per provider (routed jobs under ``"route"``)."""
    to_resume: int
    """Jobs an earlier run left accepted, to collect by handle."""
    finished: int
    """Jobs an earlier run finished (skipped)."""
    problems: tuple[LineProblem, ...]
    """Jobs that cannot run, with where they are and why (skipped)."""
    estimate: CostEstimate
    """What the jobs to submit will cost."""
    per_provider: Mapping[str, int] = attrs.field(factory=dict)
    """Every runnable job per provider (to submit, to resume, finished before): what progress counts towards. A
    routed job counts under the provider that accepted it, or under ``"route"`` while none has."""

    @property
    def jobs(self) -> int:
        """Every runnable job: to submit, to resume, or finished before."""
        return sum(self.to_submit.values()) + self.to_resume + self.finished


def preflight(items: Iterable[tuple[str, BatchJob | LineProblem]], bridge: Bridge | AsyncBridge, out: Path, *,
              strict: bool = False, owns: Callable[[str], bool] | None = None) -> Preflight:
    """Check every job of ``items`` (``(where, job or problem)`` pairs) against ``bridge``'s providers and the
    journal in ``out``, without sending anything. Raises :class:`ConfigurationError` when a provider with jobs
    to run has no key. ``owns``: the keys this run answers for (a shard's, whose journal other shards share), of
    which the accepted jobs are to collect; ``None``: every key."""
    journal = out / JOURNAL_NAME
    state = scan_journal(journal)
    if owns is not None:
        state.pending = {key: pending for key, pending in state.pending.items() if owns(key)}
    learned = {}
    if state.finished:
        summary = summarize_journal(journal)
        learned = learned_prices((item.provider, item.reported.per_image or item.estimated.per_image)
                                 for item in summary.providers)
    estimator = CostEstimator(learned)
    problems: list[LineProblem] = []
    first_seen: dict[str, str] = {}
    to_submit: dict[str, int] = {}
    per_provider: dict[str, int] = {}
    needs_key: set[str] = set()
    finished = resumed = 0
    for where, item in items:
        if isinstance(item, LineProblem):
            problems.append(item)
            continue
        if item.key in first_seen:
            problems.append(LineProblem(where, f"key {item.key!r} is already used by {first_seen[item.key]}"))
            continue
        first_seen[item.key] = where
        if item.key in state.finished:
            _count(per_provider, state.ran_by.get(item.key, item.label))
            finished += 1
            continue
        if item.key in state.pending:  # counted below, under the provider that accepted it
            continue
        try:
            planned = plan_job(bridge, item, strict=strict)
        except BridgeError as error:
            problems.append(LineProblem(where, str(error)))
            continue
        _count(to_submit, item.label)
        _count(per_provider, item.label)
        needs_key.update(item.candidates)
        estimator.add_job(item.label, planned)
    for pending in state.pending.values():  # accepted in an earlier run (in the input or not): collected
        resumed += 1
        _count(per_provider, pending.provider)
    for name in sorted(needs_key):
        bridge.provider(name).require_key()
    for name in sorted({pending.provider for pending in state.pending.values()}):
        try:
            bridge.provider(name).require_key()
        except ConfigurationError as error:
            raise ConfigurationError(f"jobs accepted by {name} in an earlier run wait to be collected: {error}") \
                from None
    return Preflight(to_submit, resumed, finished, tuple(problems), estimator.result(), per_provider)


def _count(counts: dict[str, int], name: str) -> None:
    counts[name] = counts.get(name, 0) + 1


def plan_job(bridge: Bridge | AsyncBridge, job: BatchJob, *, strict: bool = False) -> list[tuple[Provider, Plan]]:
    """Plan ``job`` offline for its provider, or for every candidate of its route: the ``(adapter, plan)`` of each
    provider that can take it. A candidate that cannot take the request *as given* (fal with an image URL, a Runware
    UUID elsewhere, an adjustment under ``strict``) drops out, as the route would skip it; a request one candidate
    refuses for any other reason is refused (the route would stop there), naming that provider; so is one that no
    candidate can take. Raises :class:`InvalidRequestError`."""
    if job.route is None:
        adapter = bridge.provider(job.label)
        return [(adapter, adapter.plan(job.request, strict=strict))]
    planned: list[tuple[Provider, Plan]] = []
    refused: list[str] = []
    for name in job.candidates:
        adapter = bridge.provider(name)
        try:
            planned.append((adapter, adapter.plan(job.request, strict=strict)))
        except InvalidRequestError as error:
            if not is_capability(error):
                raise InvalidRequestError(error.field, error.value, error.allowed,
                                          reason=f"{name}, a provider of the route: {error.reason or 'refused'}") \
                    from None
            refused.append(f"{name}: {error}")
    if not planned:
        raise InvalidRequestError("provider", list(job.candidates), "a route with a provider that can take this "
                                  "request", reason="no provider of the route can: " + "; ".join(refused))
    return planned


def check_cost(estimate: CostEstimate, max_cost: Decimal | None, *, field: str = "max_cost") -> None:
    """Refuse a run whose estimate is above ``max_cost`` (USD; ``None``: no limit), naming ``field``."""
    if max_cost is None or estimate.total <= max_cost:
        return
    parts = ", ".join(f"{name} {item.jobs} jobs ≈ {item.amount} USD" for name, item in estimate.providers.items())
    raise InvalidRequestError(field, str(max_cost), f"at least {estimate.total} (USD) to run these jobs",
                              reason=f"the {estimate.jobs} jobs to submit are estimated at {estimate.total} USD: "
                                     f"{parts}")
