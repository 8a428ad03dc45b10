"""What the CLI prints: a progress display, a side-by-side summary table, and saved files."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TextIO

from ._http import Event
from .result import PhotoMakerResult

__all__ = ["Progress", "print_summary", "save_result", "summary_rows"]

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


class Progress:
    """Prints one line per progress event on ``stream`` (stderr), with the time since the start."""

    def __init__(self, stream: TextIO, *, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        self.started = time.monotonic()
        self._last: tuple[str, str, str | None] | None = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stream.flush()

    def on_event(self, event: Event) -> None:
        """Print ``event`` (repeated identical states are printed once)."""
        if not self.enabled:
            return
        detail = event.message or (f"position {event.queue_position}" if event.queue_position is not None else "")
        key = (event.provider, event.kind, detail)
        if key == self._last and event.kind != "log":
            return
        self._last = key
        elapsed = time.monotonic() - self.started
        request = f" {event.request_id}" if event.request_id else ""
        suffix = f": {detail}" if detail else ""
        self.stream.write(f"[{elapsed:6.2f}s] {event.provider}{request} {event.kind}{suffix}\n")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def summary_rows(results: Sequence[PhotoMakerResult]) -> list[list[str]]:
    """The summary table, header first: provider, images, seed, queue s, run s, total s, cost, warnings."""
    rows = [["provider", "images", "seed", "queue s", "run s", "total s", "cost", "warnings", "request id"]]
    for result in results:
        cost = "-" if result.cost is None else f"{result.cost.amount} {result.cost.currency} ({result.cost.source})"
        asked = f"/{result.requested_images}" if result.requested_images else ""
        rows.append([
            result.provider, f"{len(result.images)}{asked}", "-" if result.seed is None else str(result.seed),
            _seconds(result.timings.queue_seconds), _seconds(result.timings.run_seconds),
            _seconds(result.timings.total_seconds), cost, str(len(result.warnings)), result.request_id or "-",
        ])
    return rows


def print_summary(results: Sequence[PhotoMakerResult], out: TextIO) -> None:
    """Print :func:`summary_rows` as an aligned table."""
    rows = summary_rows(results)
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for index, row in enumerate(rows):
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n")
        if index == 0:
            out.write("  ".join("-" * width for width in widths) + "\n")


def save_result(result: PhotoMakerResult, folder: Path) -> list[Path]:
    """Write the images (bytes already fetched) as ``<provider>_<n>.<ext>`` and ``<provider>.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for index, image in enumerate(result.images, start=1):
        data = image.data if image.data is not None else image.fetch()
        extension = _EXTENSIONS.get(image.content_type or "", "png")
        path = folder / f"{result.provider}_{index}.{extension}"
        path.write_bytes(data)
        paths.append(path)
    summary = result.to_dict()
    for image in summary["images"]:
        image["data"] = None
    (folder / f"{result.provider}.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return paths
