"""The acceptance compare against the emulators: 48 jobs with injected faults → a 48-line journal, a summary
that an independent computation over the journal agrees with, a report and a contact sheet; running it again
over the same folder redoes nothing."""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
from collections import Counter
from decimal import Decimal
from typing import Any

from helpers_batch import PROVIDERS, AcceptanceRun, finished_by_key, journal_lines, open_intents, submitted_per_provider
from PIL import Image


def _quantile(values: list[float], rank: int) -> float | None:
    """p50 / p95 the way the docs define them, computed with the standard library (type 7 = "inclusive")."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[rank - 1]


def _expected(lines: list[dict[str, Any]], provider: str) -> dict[str, Any]:
    jobs = [line for line in finished_by_key(lines).values() if line["provider"] == provider]
    successes = [line for line in jobs if line["outcome"] == "success"]
    expected: dict[str, Any] = {
        "jobs": len(jobs), "successes": len(successes),
        "errors": dict(Counter(line["error"]["class"] for line in jobs if line["outcome"] != "success")),
        "images": sum(len(line["images"]) for line in successes),
        "warnings": sum(len(line["warnings"]) for line in jobs),
    }
    for phase in ("queue", "run", "total"):
        values = [line[f"{phase}_seconds"] for line in successes if line[f"{phase}_seconds"] is not None]
        expected[phase] = (_quantile(values, 50), _quantile(values, 95), len(values))
    for source in ("reported", "estimated"):
        carrying = [line for line in successes if line["cost"] and line["cost"]["source"] == source]
        total = sum((Decimal(line["cost"]["amount"]) for line in carrying), Decimal(0))
        images = sum(len(line["images"]) for line in carrying)
        expected[source] = (total, images)
    return expected


def test_the_journal_has_one_finished_line_per_job(acceptance_run: AcceptanceRun) -> None:
    lines = journal_lines(acceptance_run.out)
    finished = [line for line in lines if line["type"] == "finished"]
    assert len(finished) == 48
    assert len({line["key"] for line in finished}) == 48
    assert not open_intents(lines)
    outcomes = Counter((line["provider"], line["outcome"]) for line in finished)
    # One injected failure per provider; everything else succeeded.
    assert outcomes == {(name, "success"): 15 for name in PROVIDERS} | {(name, "failed"): 1 for name in PROVIDERS}
    errors = {line["provider"]: line["error"] for line in finished if line["outcome"] == "failed"}
    assert errors["eachlabs"]["class"] == "InsufficientCreditsError" and errors["eachlabs"]["status"] == 402
    assert errors["fal"]["class"] == "GenerationFailedError"
    assert errors["runware"]["class"] == "GenerationFailedError"
    for line in finished:
        if line["outcome"] == "success":
            (image,) = line["images"]
            assert (acceptance_run.out / image["path"]).is_file()
            assert line["request_ids"] and line["cost"]["source"] in ("reported", "estimated")
            assert line["labels"]["faces"] in ("faces 1", "faces 2") and line["labels"]["seed"] in (42, 43)


def test_each_accepted_job_was_created_once(acceptance_run: AcceptanceRun) -> None:
    lines = journal_lines(acceptance_run.out)
    assert acceptance_run.created_after_first == submitted_per_provider(lines)
    # The refused Eachlabs create made no job; the failed Runware and fal jobs were accepted first.
    assert acceptance_run.created_after_first == {"runware": 16, "fal": 16, "eachlabs": 15}


def test_the_summary_agrees_with_an_independent_reading_of_the_journal(acceptance_run: AcceptanceRun) -> None:
    lines = journal_lines(acceptance_run.out)
    summary = json.loads((acceptance_run.out / "summary.json").read_text())
    assert summary["jobs"] == 48 and summary["unfinished"] == 0
    by_provider = {item["provider"]: item for item in summary["providers"]}
    assert sorted(by_provider) == sorted(PROVIDERS)
    for provider in PROVIDERS:
        expected, actual = _expected(lines, provider), by_provider[provider]
        assert (actual["jobs"], actual["successes"], actual["errors"]) == (
            expected["jobs"], expected["successes"], expected["errors"])
        assert actual["success_rate"] == round(expected["successes"] / expected["jobs"], 6)
        assert actual["images"] == expected["images"]
        assert actual["warnings_per_job"] == round(expected["warnings"] / expected["jobs"], 6)
        for phase in ("queue", "run", "total"):
            p50, p95, count = expected[phase]
            figures = actual[f"{phase}_seconds"]
            assert figures["count"] == count
            for name, value in (("p50", p50), ("p95", p95)):
                assert (figures[name] is None) == (value is None), (provider, phase, name)
                if value is not None:
                    assert abs(figures[name] - value) < 1e-6, (provider, phase, name, figures[name], value)
        for source in ("reported", "estimated"):
            total, images = expected[source]
            figures = actual[f"cost_{source}"]
            assert Decimal(figures["total"]) == total.quantize(Decimal("0.000001"))
            assert figures["images"] == images
            if images:
                assert Decimal(figures["per_image"]) == (total / images).quantize(Decimal("0.000001"))
            else:
                assert figures["per_image"] is None
    # fal's cost is estimated, the others report theirs: never mixed.
    assert by_provider["fal"]["cost_reported"]["images"] == 0 and by_provider["fal"]["cost_estimated"]["images"] == 15
    assert by_provider["runware"]["cost_estimated"]["images"] == 0


def test_the_csv_holds_the_same_figures(acceptance_run: AcceptanceRun) -> None:
    summary = json.loads((acceptance_run.out / "summary.json").read_text())
    rows = list(csv.DictReader(io.StringIO((acceptance_run.out / "summary.csv").read_text())))
    assert [row["provider"] for row in rows] == [item["provider"] for item in summary["providers"]]
    for row, item in zip(rows, summary["providers"], strict=True):
        assert int(row["jobs"]) == item["jobs"] and int(row["successes"]) == item["successes"]
        assert float(row["total_p95"]) == item["total_seconds"]["p95"]
        for name, count in item["errors"].items():
            assert int(row[f"errors:{name}"]) == count


def test_the_report_and_contact_sheet_are_written(acceptance_run: AcceptanceRun) -> None:
    files = acceptance_run.first.files
    assert files.report == acceptance_run.out / "report.html"
    html = files.report.read_text()
    assert "<script src" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html
    assert files.contact_sheet is not None
    with Image.open(files.contact_sheet) as picture:
        # 4 rows (2 prompts × 2 styles) of 2×2 tiles, 3 provider columns: wider than tall is not required, but
        # it must hold every tile: at least 2 tiles per cell side by side, per column.
        assert picture.format == "PNG" and picture.width > 3 * 2 * 150 and picture.height > 4 * 2 * 150


def test_running_it_again_redoes_nothing(acceptance_run: AcceptanceRun) -> None:
    second = acceptance_run.second
    assert (second.run.skipped, second.run.finished, second.run.resumed) == (48, 0, 0)
    assert acceptance_run.created_after_second == acceptance_run.created_after_first
    assert acceptance_run.requests_after_second == acceptance_run.requests_after_first
    assert second.preflight.estimate.jobs == 0 and second.preflight.finished == 48
    lines = journal_lines(acceptance_run.out)
    second_run = max(index for index, line in enumerate(lines) if line["type"] == "run")
    assert [line["type"] for line in lines[second_run:]] == ["run"]


def test_no_key_reaches_any_file(acceptance_run: AcceptanceRun) -> None:
    """The journal holds handles and the providers' answers, never the emulator keys the adapters sent."""
    key = re.compile(r"emulator-[0-9a-f]{24}")
    for name in ("journal.jsonl", "summary.json", "summary.csv", "report.html"):
        assert not key.search((acceptance_run.out / name).read_text()), name
