"""Pure parts: percentiles, busy time, the summary of hand-made journal lines, the journal reader's edge cases,
chart geometry, the contact sheet's layout, the progress tally."""

from __future__ import annotations

import json
import math
import statistics
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from photomaker_bridge.batch import BatchEvent, BatchProgress, scan_journal, summarize_journal
from photomaker_bridge.batch.charts import Axis, cost_scatter, latency_chart, nice_ticks
from photomaker_bridge.batch.sheet import build_sheet, format_cost
from photomaker_bridge.batch.summary import percentile, summarize, summary_csv
from photomaker_bridge.batch.tables import COMPACT_COLUMNS, summary_rows


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=2, max_size=60))
def test_percentiles_match_the_standard_library(values: list[float]) -> None:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    for rank in (50, 95):
        assert math.isclose(percentile(values, rank / 100) or 0.0, cuts[rank - 1], rel_tol=1e-9, abs_tol=1e-9)


def test_percentile_edge_cases() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.95) == 3.0


def line(key: str, provider: str, outcome: str = "success", *, start: str = "00", end: str = "10",
         **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "type": "finished", "key": key, "provider": provider, "outcome": outcome, "resumable": False,
        "handle": None, "labels": {"prompt": "p", "style": "Cinematic", "faces": "faces 1", "seed": 1},
        "started_at": f"2026-01-01T00:00:{start}+00:00", "finished_at": f"2026-01-01T00:00:{end}+00:00",
        "images": [{"path": f"images/{key}-1.png", "url": None, "seed": 1}] if outcome == "success" else [],
        "cost": None, "queue_seconds": None, "run_seconds": None, "total_seconds": None, "warnings": [],
        "error": None if outcome == "success" else {"class": "RateLimitedError", "status": 429},
    }
    values.update(fields)
    return values


def test_the_summary_keeps_reported_and_estimated_costs_apart_and_counts_busy_time() -> None:
    summary = summarize([
        line("a", "fal", start="00", end="10", cost={"amount": "0.010", "currency": "USD", "source": "estimated"},
             total_seconds=10.0, warnings=["w"]),
        line("b", "fal", start="05", end="15", cost={"amount": "0.020", "currency": "USD", "source": "reported"},
             total_seconds=10.0),
        line("c", "fal", "failed", start="30", end="31"),
        line("d", "runware", total_seconds=2.0),
    ], unfinished={"eachlabs": 2})
    by_name = {item.provider: item for item in summary.providers}
    fal = by_name["fal"]
    assert [item.provider for item in summary.providers] == ["eachlabs", "fal", "runware"]
    assert (fal.jobs, fal.successes, dict(fal.errors), fal.images) == (3, 2, {"RateLimitedError": 1}, 2)
    assert fal.busy_seconds == 16.0  # [0, 15] ∪ [30, 31]
    assert fal.images_per_second == 2 / 16
    assert fal.reported.per_image == Decimal("0.020000") and fal.estimated.per_image == Decimal("0.010000")
    assert fal.warnings_per_job == 1 / 3
    assert by_name["eachlabs"].unfinished == 2 and by_name["eachlabs"].jobs == 0
    assert by_name["runware"].reported.per_image is None
    csv_text = summary_csv(summary)
    assert csv_text.splitlines()[0].endswith("errors:RateLimitedError")
    rows = summary_rows(summary, COMPACT_COLUMNS)
    assert rows[2][:3] == ["fal", "3", "66.7 %"] and rows[1][2] == "–"


def test_the_journal_reader_tolerates_a_torn_last_line_and_reports_damage(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    complete = [
        {"type": "run", "format": 1},
        {"type": "intent", "key": "k", "provider": "fal", "labels": {}},
        line("k", "fal"),
        {"type": "intent", "key": "t", "provider": "fal", "labels": {}},
        line("t", "fal", "timeout", resumable=True, handle={"provider": "fal", "request_ids": ["r"]}),
    ]
    path.write_text("\n".join(json.dumps(item) for item in complete) + "\nnot json\n" + '{"type": "fini')
    state = scan_journal(path)
    assert state.finished == {"k"} and set(state.pending) == {"t"} and state.damaged == [6]
    assert summarize_journal(path).jobs == 2  # the timeout counts until a later run collects it
    path.write_text(json.dumps({"type": "run", "format": 99}) + "\n")
    with pytest.raises(ValueError, match="newer"):
        scan_journal(path)


def test_nice_ticks_cover_the_range_with_round_steps() -> None:
    assert nice_ticks(0.42) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert nice_ticks(7) == [0, 2, 4, 6, 8]
    assert nice_ticks(0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    axis = Axis((0.0, 1.0, 2.0), start=10, length=100, reverse=True)
    assert (axis.at(0), axis.at(2), axis.at(1)) == (110, 10, 60)


def test_charts_place_each_job_and_leave_out_what_they_cannot_draw() -> None:
    records = [
        line("a", "fal", total_seconds=1.0, run_seconds=0.5, cost={"amount": "0.01", "source": "estimated"}),
        line("b", "fal", total_seconds=3.0, cost={"amount": "0.03", "source": "reported"}),
        line("c", "runware", total_seconds=2.0),  # no cost: not in the scatter
        line("d", "runware", "failed"),
    ]
    chart = latency_chart(records, ["fal", "runware"])
    fal_total = chart.panels[0].rows[2]
    assert fal_total.p50_value == 2.0 and len(fal_total.points) == 2
    assert chart.panels[1].rows[1].points == () and chart.panels[1].rows[1].p50 is None
    scatter = cost_scatter(records, ["fal", "runware"])
    assert [point.estimated for point in scatter.points] == [True, False] and scatter.left_out == 1
    assert scatter.points[0].y > scatter.points[1].y  # lower cost is drawn lower (SVG y grows downwards)


def test_the_sheet_groups_prompt_and_style_rows_by_provider_columns() -> None:
    other = {"prompt": "q", "style": "Comic book", "faces": "faces 2", "seed": 2}
    records = [
        line("a", "fal", cost={"amount": "0.0100", "currency": "USD", "source": "estimated"}, total_seconds=1.5),
        line("b", "runware", "failed"),
        line("c", "fal", labels=other),
    ]
    sheet = build_sheet(records, providers=["runware", "fal", "eachlabs"])
    assert sheet.providers == ("runware", "fal", "eachlabs")
    assert [(row.prompt, row.style) for row in sheet.rows] == [("p", "Cinematic"), ("q", "Comic book")]
    runware_cell, fal_cell, eachlabs_cell = sheet.rows[0].cells
    assert runware_cell[0].failed and runware_cell[0].error_class == "RateLimitedError"
    assert "HTTP 429" in runware_cell[0].caption
    assert fal_cell[0].caption == "faces 1 · seed 1 · 0.01 USD est. · 1.50 s" and eachlabs_cell == ()
    assert build_sheet(records, max_tiles=1).omitted == 2
    assert format_cost(None) == "no cost"


def test_the_progress_tally_counts_per_provider() -> None:
    progress = BatchProgress(started=100.0)
    progress.expect("fal", 4)
    progress.update(BatchEvent("skipped", "a", "fal"))
    progress.update(BatchEvent("submitting", "b", "fal"))
    progress.update(BatchEvent("submitting", "c", "fal"))
    assert progress.eta(101.0) is None  # nothing finished yet
    progress.update(BatchEvent("finished", "b", "fal", record=line("b", "fal", cost={
        "amount": "0.5", "currency": "USD", "source": "reported"})))
    progress.update(BatchEvent("finished", "c", "fal", record=line("c", "fal", "failed")))
    tally = progress.providers["fal"]
    assert (tally.succeeded, tally.failed, tally.in_flight, tally.skipped, tally.remaining) == (1, 1, 0, 1, 1)
    assert tally.spend_reported == Decimal("0.5") and tally.spend_estimated == 0
    assert progress.eta(104.0) == 2.0  # 2 finished in 4 s, 1 left
