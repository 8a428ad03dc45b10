"""Everything a batch leaves beside its journal: ``summary.json``, ``summary.csv``, ``report.html`` and
``contact_sheet.png``. Each file is written under a temporary name and renamed into place, so a reader never
sees half a file."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import attrs

from .contact_sheet import write_contact_sheet
from .journal import JOURNAL_NAME, now_iso
from .report import render_report
from .sheet import build_sheet
from .summary import Summary, latest_finished, summarize_journal, summary_csv, summary_json

__all__ = ["OutputFiles", "write_outputs"]


@attrs.frozen
class OutputFiles:
    """Where a batch's files are."""

    folder: Path
    journal: Path
    summary_json: Path
    summary_csv: Path
    report: Path
    contact_sheet: Path
    summary: Summary


def _partial(path: Path) -> Path:
    """A temporary name beside ``path`` that is this writer's alone: the shards of a batch (processes, machines on a
    shared folder) may write its summary files at the same moment (each rename then replaces the file whole)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")


def _write_text(path: Path, text: str) -> Path:
    partial = _partial(path)
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return path


def write_outputs(folder: Path, *, title: str = "PhotoMaker batch") -> OutputFiles:
    """Summarise the journal in ``folder`` and write the summary files, the report and the contact sheet."""
    journal = folder / JOURNAL_NAME
    summary = summarize_journal(journal)
    records = list(latest_finished(journal))
    json_path = _write_text(folder / "summary.json", summary_json(summary))
    csv_path = _write_text(folder / "summary.csv", summary_csv(summary))
    html = render_report(summary, records, title=title, journal=JOURNAL_NAME, generated_at=now_iso())
    report = _write_text(folder / "report.html", html)
    sheet = build_sheet(records, providers=[item.provider for item in summary.providers])
    sheet_path = folder / "contact_sheet.png"
    partial = _partial(sheet_path)
    write_contact_sheet(sheet, folder, partial)
    os.replace(partial, sheet_path)
    return OutputFiles(folder, journal, json_path, csv_path, report, sheet_path, summary)
