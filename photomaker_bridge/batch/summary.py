"""Per-provider summary of a journal: counts, error classes, latency percentiles, throughput, cost per image.

Definitions (also written into ``summary.json``):

* a **job** is a key with a ``finished`` line; the latest line of a key counts (a job collected after an
  earlier run's deadline replaces that timeout);
* **p50 / p95** of queue, run and total seconds are over the successful jobs that report the phase, by linear
  interpolation between the closest ranks (numpy's default, R's type 7); total seconds are measured by the
  runner from submission to collection, so jobs collected by a later run have none;
* **images per second** is images divided by the provider's *busy* wall time: the length of the union of its
  jobs' [started, finished] intervals, so several runs of one journal add up without the pauses between them;
* **cost per image** is kept apart by source: reported costs over the images of jobs with a reported cost,
  estimated costs over the images of jobs with an estimated one. They are never added together;
* **unfinished** jobs were accepted (or may have been) and have no outcome yet; they are not in ``jobs``.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from .journal import iter_records, now_iso, scan_journal

__all__ = ["DEFINITIONS", "CostTotals", "Percentiles", "ProviderSummary", "Summary", "latest_finished",
           "percentile", "provider_dict", "summarize", "summarize_journal", "summary_csv", "summary_json",
           "unfinished_by_provider"]

DEFINITIONS: dict[str, str] = {
    "jobs": "keys with a finished line in the journal (the latest line of a key counts)",
    "success_rate": "successes / jobs",
    "percentiles": "p50 and p95 over successful jobs reporting the phase; linear interpolation between closest "
                   "ranks (numpy default, R type 7)",
    "total_seconds": "submission to collection as measured by the runner; none for jobs collected by a later run",
    "images_per_second": "images / busy seconds; busy seconds = length of the union of the provider's jobs' "
                         "[started_at, finished_at] intervals",
    "cost_per_image": "reported and estimated kept apart: the sum of each over the images of the jobs carrying it",
    "unfinished": "accepted (or possibly accepted) jobs with no outcome yet; not counted in jobs",
}
"""What every summary figure means, as written into ``summary.json``."""

_MONEY = Decimal("0.000001")


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The ``fraction`` quantile (0–1) of ``values`` by linear interpolation between closest ranks; ``None``
    for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


@attrs.frozen
class Percentiles:
    """p50 and p95 of one phase, and how many jobs they are over."""

    p50: float | None
    p95: float | None
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Percentiles:
        """The percentiles of ``values``."""
        return cls(percentile(values, 0.5), percentile(values, 0.95), len(values))


@attrs.frozen
class CostTotals:
    """Costs of one source (reported or estimated): their sum and the images of the jobs carrying them."""

    total: Decimal
    images: int
    jobs: int

    @property
    def per_image(self) -> Decimal | None:
        """``total / images`` to a millionth, or ``None`` without images."""
        return (self.total / self.images).quantize(_MONEY) if self.images else None


@attrs.frozen
class ProviderSummary:
    """One provider's figures (see the module docstring for each definition)."""

    provider: str
    jobs: int
    successes: int
    errors: Mapping[str, int]
    """Error class name → jobs that ended with it."""
    images: int
    queue_seconds: Percentiles
    run_seconds: Percentiles
    total_seconds: Percentiles
    busy_seconds: float
    reported: CostTotals
    estimated: CostTotals
    currency: str
    warnings: int
    unfinished: int

    @property
    def success_rate(self) -> float | None:
        """Successes over jobs, ``None`` without jobs."""
        return self.successes / self.jobs if self.jobs else None

    @property
    def images_per_second(self) -> float | None:
        """Images over busy seconds."""
        return self.images / self.busy_seconds if self.busy_seconds > 0 else None

    @property
    def warnings_per_job(self) -> float | None:
        """Warnings over jobs."""
        return self.warnings / self.jobs if self.jobs else None


@attrs.frozen
class Summary:
    """Every provider's summary, in name order."""

    providers: tuple[ProviderSummary, ...]
    generated_at: str

    @property
    def jobs(self) -> int:
        """Jobs over all providers."""
        return sum(item.jobs for item in self.providers)

    @property
    def unfinished(self) -> int:
        """Unfinished jobs over all providers."""
        return sum(item.unfinished for item in self.providers)


def latest_finished(journal: Path) -> Iterator[dict[str, Any]]:
    """The latest ``finished`` line of every key, in journal order, read as two streams over the file."""
    last: dict[str, int] = {}
    for number, record in iter_records(journal):
        if record.get("type") == "finished" and isinstance(record.get("key"), str):
            last[record["key"]] = number
    for number, record in iter_records(journal):
        if record.get("type") == "finished" and last.get(record.get("key", "")) == number:
            yield record


def _busy_seconds(intervals: list[tuple[float, float]]) -> float:
    busy, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        busy += end - max(start, reach)
        reach = end
    return busy


def _timestamp(text: Any) -> float | None:
    try:
        return datetime.datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


@attrs.define
class _Accumulator:
    provider: str
    jobs: int = 0
    successes: int = 0
    errors: Counter[str] = attrs.field(factory=Counter)
    images: int = 0
    phases: dict[str, list[float]] = attrs.field(factory=lambda: {"queue": [], "run": [], "total": []})
    intervals: list[tuple[float, float]] = attrs.field(factory=list)
    costs: dict[str, list[Decimal | int]] = attrs.field(
        factory=lambda: {"reported": [Decimal(0), 0, 0], "estimated": [Decimal(0), 0, 0]})
    currency: str | None = None
    warnings: int = 0

    def add(self, record: Mapping[str, Any]) -> None:
        self.jobs += 1
        self.warnings += len(record.get("warnings") or ())
        start, end = _timestamp(record.get("started_at")), _timestamp(record.get("finished_at"))
        if start is not None and end is not None and end >= start:
            self.intervals.append((start, end))
        if record.get("outcome") != "success":
            self.errors[str((record.get("error") or {}).get("class", "UnknownError"))] += 1
            return
        self.successes += 1
        images = len(record.get("images") or ())
        self.images += images
        for phase in self.phases:
            value = record.get(f"{phase}_seconds")
            if isinstance(value, int | float):
                self.phases[phase].append(float(value))
        cost = record.get("cost")
        if isinstance(cost, Mapping):
            totals = self.costs["estimated" if cost.get("source") == "estimated" else "reported"]
            totals[0] = Decimal(totals[0]) + Decimal(str(cost.get("amount", "0")))
            totals[1] = int(totals[1]) + images
            totals[2] = int(totals[2]) + 1
            self.currency = self.currency or str(cost.get("currency", "USD"))

    def summary(self, unfinished: int) -> ProviderSummary:
        def totals(source: str) -> CostTotals:
            total, images, jobs = self.costs[source]
            return CostTotals(Decimal(total), int(images), int(jobs))

        return ProviderSummary(
            provider=self.provider, jobs=self.jobs, successes=self.successes, errors=dict(self.errors),
            images=self.images, queue_seconds=Percentiles.of(self.phases["queue"]),
            run_seconds=Percentiles.of(self.phases["run"]), total_seconds=Percentiles.of(self.phases["total"]),
            busy_seconds=round(_busy_seconds(self.intervals), 6), reported=totals("reported"),
            estimated=totals("estimated"), currency=self.currency or "USD", warnings=self.warnings,
            unfinished=unfinished)


def summarize(records: Iterable[Mapping[str, Any]], *, unfinished: Mapping[str, int] | None = None) -> Summary:
    """The summary of ``finished`` journal lines (one per key); ``unfinished`` counts jobs per provider that
    have no outcome yet."""
    accumulators: dict[str, _Accumulator] = {}
    for record in records:
        provider = str(record.get("provider"))
        accumulators.setdefault(provider, _Accumulator(provider)).add(record)
    unfinished = dict(unfinished or {})
    for provider in unfinished:
        accumulators.setdefault(provider, _Accumulator(provider))
    # Providers in name order: a comparison should not rank them by which answered first.
    return Summary(tuple(item.summary(unfinished.get(name, 0)) for name, item in sorted(accumulators.items())),
                   generated_at=now_iso())


def unfinished_by_provider(journal: Path, owns: Callable[[str], bool] | None = None) -> dict[str, int]:
    """Jobs per provider that were accepted (or may have been) and have no outcome yet (of the keys ``owns``
    accepts: a shard's own, say; ``None``: every key)."""
    state = scan_journal(journal)
    counts: Counter[str] = Counter(pending.provider for key, pending in state.pending.items()
                                   if not pending.timed_out and (owns is None or owns(key)))
    counts.update(provider for key, (provider, _labels) in state.unknown.items() if owns is None or owns(key))
    return dict(counts)


def summarize_journal(journal: Path, owns: Callable[[str], bool] | None = None) -> Summary:
    """The summary of the journal at ``journal``, read as a stream; of the keys ``owns`` accepts (``None``: all)."""
    finished = latest_finished(journal)
    if owns is not None:
        finished = (record for record in finished if owns(str(record.get("key"))))
    return summarize(finished, unfinished=unfinished_by_provider(journal, owns))


def _number(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def provider_dict(item: ProviderSummary) -> dict[str, Any]:
    """One provider's figures as JSON-ready data (amounts as exact decimal strings)."""
    def phase(values: Percentiles) -> dict[str, Any]:
        return {"p50": _number(values.p50), "p95": _number(values.p95), "count": values.count}

    def cost(totals: CostTotals) -> dict[str, Any]:
        return {"total": _money(totals.total.quantize(_MONEY)), "images": totals.images, "jobs": totals.jobs,
                "per_image": _money(totals.per_image)}

    return {
        "provider": item.provider, "jobs": item.jobs, "successes": item.successes,
        "success_rate": _number(item.success_rate), "errors": dict(sorted(item.errors.items())),
        "images": item.images, "queue_seconds": phase(item.queue_seconds), "run_seconds": phase(item.run_seconds),
        "total_seconds": phase(item.total_seconds), "busy_seconds": item.busy_seconds,
        "images_per_second": _number(item.images_per_second), "currency": item.currency,
        "cost_reported": cost(item.reported), "cost_estimated": cost(item.estimated), "warnings": item.warnings,
        "warnings_per_job": _number(item.warnings_per_job), "unfinished": item.unfinished,
    }


def summary_json(summary: Summary) -> str:
    """``summary.json``'s text."""
    document = {"generated_at": summary.generated_at, "jobs": summary.jobs, "unfinished": summary.unfinished,
                "providers": [provider_dict(item) for item in summary.providers], "definitions": DEFINITIONS}
    return json.dumps(document, indent=2) + "\n"


_CSV_COLUMNS = ("provider", "jobs", "successes", "success_rate", "images", "queue_p50", "queue_p95", "run_p50",
                "run_p95", "total_p50", "total_p95", "busy_seconds", "images_per_second", "currency",
                "cost_per_image_reported", "cost_reported", "cost_per_image_estimated", "cost_estimated",
                "warnings", "warnings_per_job", "unfinished")


def summary_csv(summary: Summary) -> str:
    """``summary.csv``'s text: one row per provider, then one ``errors:<class>`` column per error class seen."""
    classes = sorted({name for item in summary.providers for name in item.errors})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*_CSV_COLUMNS, *(f"errors:{name}" for name in classes)])
    for item in summary.providers:
        data = provider_dict(item)
        values = {
            **{key: data[key] for key in ("provider", "jobs", "successes", "success_rate", "images", "busy_seconds",
                                         "images_per_second", "currency", "warnings", "warnings_per_job",
                                         "unfinished")},
            **{f"{phase}_{rank}": data[f"{phase}_seconds"][rank] for phase in ("queue", "run", "total")
               for rank in ("p50", "p95")},
            "cost_per_image_reported": data["cost_reported"]["per_image"],
            "cost_reported": data["cost_reported"]["total"],
            "cost_per_image_estimated": data["cost_estimated"]["per_image"],
            "cost_estimated": data["cost_estimated"]["total"],
        }
        writer.writerow([*("" if values[column] is None else values[column] for column in _CSV_COLUMNS),
                         *(item.errors.get(name, 0) for name in classes)])
    return buffer.getvalue()
