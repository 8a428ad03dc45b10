"""``report.html``: one self-contained page — summary table, latency chart per provider, cost-vs-latency
scatter, contact sheet, failures — written with Jinja2.

Self-contained means: the CSS is inline, the charts are inline SVG, images are linked relatively
(``images/...`` beside the page), nothing comes from a network or a CDN, and it opens from a ``file://`` URL.
A Content-Security-Policy in the page enforces that: no source but the page's own folder, and only the
stylesheet and script whose hashes it names. The page needs no JavaScript; its one small script only marks
an image whose file is missing (a report copied without its ``images/`` folder) and records each image's
decoded width in ``data-natural-width``, which the browser test reads.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any

import jinja2

from .charts import cost_scatter, latency_chart
from .sheet import build_sheet
from .summary import DEFINITIONS, Summary
from .tables import COLUMNS, summary_cells

__all__ = ["REPORT_SCRIPT", "content_security_policy", "render_report"]

REPORT_SCRIPT = (
    "for (const image of document.images) {"
    " const mark = () => { image.dataset.naturalWidth = String(image.naturalWidth);"
    " if (!image.naturalWidth) image.closest('figure')?.classList.add('missing'); };"
    " if (image.complete) mark(); else { image.addEventListener('load', mark); image.addEventListener('error', mark); }"
    " }"
)
"""The page's only script (optional: the report reads the same without it)."""

_MAX_FAILURES = 200
_KNOWN_SWATCHES = ("runware", "fal", "eachlabs")


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def content_security_policy(css: str, script: str) -> str:
    """The page's policy: images from its own folder only, and only this stylesheet and script."""
    return ("default-src 'none'; img-src 'self'; style-src " + _hash(css) + "; script-src " + _hash(script)
            + "; base-uri 'none'; form-action 'none'")


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("photomaker_bridge.batch", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True)


def _failures(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    failures = []
    for record in records:
        if record.get("outcome") == "success":
            continue
        error = record.get("error") or {}
        failures.append({"provider": record.get("provider"), "key": record.get("key"),
                         "error_class": error.get("class"), "status": error.get("status"),
                         "code": error.get("code"), "message": error.get("message") or "",
                         "resumable": bool(record.get("resumable"))})
    return failures


def render_report(summary: Summary, records: Iterable[Mapping[str, Any]], *, title: str, journal: str,
                  generated_at: str) -> str:
    """The report's HTML for ``summary`` and the ``finished`` journal lines it was made from (one per job)."""
    from .. import __version__

    jobs = list(records)
    providers = [item.provider for item in summary.providers]
    css = resources.files("photomaker_bridge.batch").joinpath("templates/report.css").read_text(encoding="utf-8")
    failures = _failures(jobs)
    rows = [{"provider": item.provider, "cells": summary_cells(item),
             "swatch": item.provider if item.provider in _KNOWN_SWATCHES else "other"} for item in summary.providers]
    template = _environment().get_template("report.html.j2")
    return template.render(
        title=title, version=__version__, generated_at=generated_at, journal=journal, summary=summary,
        columns=COLUMNS, rows=rows, latency=latency_chart(jobs, providers), scatter=cost_scatter(jobs, providers),
        sheet=build_sheet(jobs, providers=providers), failures=failures[:_MAX_FAILURES],
        failures_omitted=max(0, len(failures) - _MAX_FAILURES), definitions=DEFINITIONS, css=css,
        script=REPORT_SCRIPT, csp=content_security_policy(css, REPORT_SCRIPT),
    )
