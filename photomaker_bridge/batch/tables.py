"""The summary as text cells: one formatting for the report's table and the terminal's, so they never differ."""

from __future__ import annotations

from decimal import Decimal

from .summary import ProviderSummary, Summary

__all__ = ["COLUMNS", "COMPACT_COLUMNS", "summary_cells", "summary_rows"]

COLUMNS: tuple[tuple[str, str], ...] = (
    ("provider", "provider"), ("jobs", "jobs"), ("successes", "ok"), ("success_rate", "success"),
    ("errors", "errors"), ("queue_p50", "queue p50 s"), ("queue_p95", "queue p95 s"), ("run_p50", "run p50 s"),
    ("run_p95", "run p95 s"), ("total_p50", "total p50 s"), ("total_p95", "total p95 s"),
    ("images_per_second", "images/s"), ("cost_reported", "cost/image reported"),
    ("cost_estimated", "cost/image estimated"), ("warnings_per_job", "warnings/job"), ("unfinished", "unfinished"),
)
"""``(cell name, heading)`` of every column of the report's table."""

COMPACT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("provider", "provider"), ("jobs", "jobs"), ("success_rate", "success"), ("errors", "errors"),
    ("queue", "queue p50/p95 s"), ("run", "run p50/p95 s"), ("total", "total p50/p95 s"),
    ("images_per_second", "images/s"), ("cost_reported", "cost/image reported"),
    ("cost_estimated", "cost/image est."), ("warnings_per_job", "warn/job"),
)
"""The terminal's narrower table."""


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _money(value: Decimal | None, currency: str) -> str:
    return "–" if value is None else f"{value:f} {currency}"


def summary_cells(item: ProviderSummary) -> dict[str, str]:
    """Every cell of ``item``'s row, by cell name (both tables' names)."""
    rate = "–" if item.success_rate is None else f"{item.success_rate * 100:.1f} %"
    errors = ", ".join(f"{name} {count}" for name, count in sorted(item.errors.items())) or "–"
    cells = {
        "provider": item.provider, "jobs": str(item.jobs), "successes": str(item.successes), "success_rate": rate,
        "errors": errors,
        "images_per_second": "–" if item.images_per_second is None else f"{item.images_per_second:.2f}",
        "cost_reported": _money(item.reported.per_image, item.currency),
        "cost_estimated": _money(item.estimated.per_image, item.currency),
        "warnings_per_job": "–" if item.warnings_per_job is None else f"{item.warnings_per_job:.2f}",
        "unfinished": str(item.unfinished),
    }
    for phase in ("queue", "run", "total"):
        values = getattr(item, f"{phase}_seconds")
        cells[f"{phase}_p50"], cells[f"{phase}_p95"] = _seconds(values.p50), _seconds(values.p95)
        cells[phase] = f"{_seconds(values.p50)} / {_seconds(values.p95)}"
    return cells


def summary_rows(summary: Summary, columns: tuple[tuple[str, str], ...] = COLUMNS) -> list[list[str]]:
    """The table, heading row first."""
    rows = [[heading for _, heading in columns]]
    for item in summary.providers:
        cells = summary_cells(item)
        rows.append([cells[name] for name, _ in columns])
    return rows
