"""The report's charts as geometry (pure): the template turns it into inline SVG, so the report needs no
JavaScript and no charting library.

* :func:`latency_chart` — one panel per provider, a row per phase (queue, run, total): every job a dot, p50 and
  p95 as marks; all panels share one axis so providers compare at a glance.
* :func:`cost_scatter` — cost per image against total seconds, one colour per provider, reported costs filled
  and estimated ones hollow.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from .summary import percentile

__all__ = ["Axis", "CostScatter", "LatencyChart", "LatencyPanel", "PhaseRow", "ScatterPoint", "cost_scatter",
           "latency_chart", "nice_ticks", "provider_colour"]

_PALETTE = {"runware": "#0072B2", "fal": "#D55E00", "eachlabs": "#009E73"}
"""Okabe–Ito colours, told apart with every common colour-vision deficiency."""
_SPARE = ("#CC79A7", "#E69F00", "#56B4E9", "#000000")
PHASES = ("queue", "run", "total")
_PANEL_HEADER = 20


def provider_colour(name: str, order: Sequence[str] = ()) -> str:
    """The provider's colour in every chart."""
    if name in _PALETTE:
        return _PALETTE[name]
    index = list(order).index(name) if name in order else 0
    return _SPARE[index % len(_SPARE)]


def nice_ticks(high: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``high`` (about ``count`` intervals: steps of 1, 2, 2.5 or 5 × 10^n)."""
    if not high > 0 or not math.isfinite(high):
        high = 1.0
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(factor * magnitude for factor in (1, 2, 2.5, 5, 10) if factor * magnitude >= raw)
    intervals = math.ceil(high / step - 1e-9)
    return [round(index * step, 12) for index in range(intervals + 1)]


@attrs.frozen
class Axis:
    """A linear axis from 0 to ``ticks[-1]`` over ``length`` pixels starting at ``start``."""

    ticks: tuple[float, ...]
    start: float
    length: float
    reverse: bool = False
    """``True`` for a vertical axis (SVG's y grows downwards)."""

    def at(self, value: float) -> float:
        """The pixel position of ``value``."""
        fraction = value / self.ticks[-1] if self.ticks[-1] else 0.0
        offset = fraction * self.length
        return round(self.start + self.length - offset if self.reverse else self.start + offset, 2)

    def label(self, value: float) -> str:
        """A tick's text, with as few decimals as the ticks need."""
        return f"{value:g}"


@attrs.frozen
class PhaseRow:
    """One phase of one provider: a dot per job at ``points`` (x, y with a little fixed jitter so that equal
    values stay visible), and the p50 / p95 marks' x (``None`` without data)."""

    phase: str
    y: float
    points: tuple[tuple[float, float], ...]
    p50: float | None
    p95: float | None
    p50_value: float | None
    p95_value: float | None


@attrs.frozen
class LatencyPanel:
    """One provider's panel."""

    provider: str
    colour: str
    rows: tuple[PhaseRow, ...]
    jobs: int


@attrs.frozen
class LatencyChart:
    """Every provider's panel over one shared seconds axis."""

    axis: Axis
    panels: tuple[LatencyPanel, ...]
    width: int
    panel_height: int
    axis_y: float
    """Where the axis line is drawn in each panel."""


def _seconds(record: Mapping[str, Any], phase: str) -> float | None:
    value = record.get(f"{phase}_seconds")
    return float(value) if isinstance(value, int | float) else None


def latency_chart(records: Iterable[Mapping[str, Any]], providers: Sequence[str], *, width: int = 720,
                  row_height: int = 26, left: int = 64, right: int = 24) -> LatencyChart:
    """The latency distribution of successful jobs (``finished`` journal lines), one panel per provider."""
    values: dict[str, dict[str, list[float]]] = {name: {phase: [] for phase in PHASES} for name in providers}
    for record in records:
        if record.get("outcome") != "success" or record.get("provider") not in values:
            continue
        for phase in PHASES:
            seconds = _seconds(record, phase)
            if seconds is not None:
                values[str(record["provider"])][phase].append(seconds)
    highest = max((value for phases in values.values() for items in phases.values() for value in items),
                  default=1.0)
    axis = Axis(tuple(nice_ticks(highest)), left, width - left - right)
    panels = []
    for name in providers:
        rows = []
        for index, phase in enumerate(PHASES):
            items = values[name][phase]
            y = round(_PANEL_HEADER + (index + 0.5) * row_height, 2)
            points = tuple((axis.at(value), y + _jitter(number, row_height)) for number, value in enumerate(items))
            p50, p95 = percentile(items, 0.5), percentile(items, 0.95)
            rows.append(PhaseRow(phase, y, points, None if p50 is None else axis.at(p50),
                                 None if p95 is None else axis.at(p95), p50, p95))
        panels.append(LatencyPanel(name, provider_colour(name, providers), tuple(rows),
                                   len(values[name]["total"]) or len(values[name]["run"])))
    axis_y = _PANEL_HEADER + row_height * len(PHASES) + 4
    return LatencyChart(axis, tuple(panels), width, axis_y + 24, axis_y)


def _jitter(number: int, row_height: int) -> float:
    """A fixed vertical offset for the ``number``-th dot of a row, within a third of the row."""
    spread = row_height / 3
    return round(((number * 7) % 9 - 4) / 4 * spread / 2, 2)


@attrs.frozen
class ScatterPoint:
    """One job: where it is drawn and what it stands for."""

    x: float
    y: float
    provider: str
    colour: str
    estimated: bool
    title: str


@attrs.frozen
class CostScatter:
    """Cost per image (y) against total seconds (x)."""

    x_axis: Axis
    y_axis: Axis
    points: tuple[ScatterPoint, ...]
    providers: tuple[tuple[str, str], ...]
    """``(name, colour)`` for the legend."""
    width: int
    height: int
    left: int
    bottom: int
    left_out: int
    """Successful jobs without a cost or a total time (not drawn)."""


def cost_scatter(records: Iterable[Mapping[str, Any]], providers: Sequence[str], *, width: int = 720,
                 height: int = 320, left: int = 80, right: int = 24, top: int = 16,
                 bottom: int = 44) -> CostScatter:
    """Each successful job with a cost and a total time, as one point."""
    raw: list[tuple[float, float, str, bool, str]] = []
    left_out = 0
    for record in records:
        if record.get("outcome") != "success":
            continue
        cost, seconds, images = record.get("cost"), _seconds(record, "total"), len(record.get("images") or ())
        if not isinstance(cost, Mapping) or seconds is None or images == 0:
            left_out += 1
            continue
        per_image = float(Decimal(str(cost.get("amount", "0"))) / images)
        estimated = cost.get("source") == "estimated"
        title = (f"{record.get('provider')} {record.get('key')}: {seconds:.2f} s, {per_image:.6f} "
                 f"{cost.get('currency', 'USD')} per image ({'estimated' if estimated else 'reported'})")
        raw.append((seconds, per_image, str(record.get("provider")), estimated, title))
    x_axis = Axis(tuple(nice_ticks(max((item[0] for item in raw), default=1.0))), left, width - left - right)
    y_axis = Axis(tuple(nice_ticks(max((item[1] for item in raw), default=0.01))), top, height - top - bottom,
                  reverse=True)
    points = tuple(ScatterPoint(x_axis.at(seconds), y_axis.at(per_image), name, provider_colour(name, providers),
                                estimated, title) for seconds, per_image, name, estimated, title in raw)
    return CostScatter(x_axis, y_axis, points, tuple((name, provider_colour(name, providers)) for name in providers),
                       width, height, left, bottom, left_out)
