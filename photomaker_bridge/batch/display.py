"""The live progress of ``compare`` and ``batch``: one bar per provider (done / failed / in flight of its jobs),
the spend so far (reported and estimated apart), elapsed and estimated time left.

It draws on the CLI's shared display (``photomaker_bridge._display``): the same console (terminal detection,
``NO_COLOR``, ``--no-progress``, ``--quiet``), the same notes above the live area, and on a stream that is not
a terminal the same kind of plain line, one per finished job, flushed at once::

    [    3.21s] fal 12/16: 11 ok, 1 failed, 4 in flight; fal-9ddd34788fe31997 success 0.63 s

The numbers come from :class:`~photomaker_bridge.batch.progress.BatchProgress`, fed the runner's events.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from types import TracebackType
from typing import TextIO

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .._display import REFRESH_PER_SECOND, JobBoard
from .progress import BatchEvent, BatchProgress, ProviderProgress

__all__ = ["BatchDisplay", "format_spend"]


def format_spend(tally: ProviderProgress) -> str:
    """``0.0208 USD reported, 0.0039 USD estimated`` (the parts that are not zero), or ``nothing yet``."""
    parts = [f"{amount.normalize():f} {tally.currency} {source}" for amount, source in
             ((tally.spend_reported, "reported"), (tally.spend_estimated, "estimated")) if amount != Decimal(0)]
    return ", ".join(parts) or "nothing yet"


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}:{rest:02d}" if minutes else f"{rest}s"


class _Bars:
    """The live area, rendered from the tally on every redraw."""

    def __init__(self, display: BatchDisplay) -> None:
        self._display = display

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        display = self._display
        table = Table.grid(padding=(0, 1))
        for column in ("provider", "bar", "count", "detail", "spend"):
            table.add_column(column, no_wrap=True, justify="right" if column == "count" else "left")
        with display.lock:
            now = time.monotonic()
            for name, tally in display.progress.providers.items():
                total = tally.total or max(1, tally.done + tally.skipped + tally.in_flight)
                finished = tally.done + tally.skipped
                bar = ProgressBar(total=total, completed=finished, width=24,
                                  complete_style="red" if tally.failed else "green", finished_style="green")
                detail = f"{tally.succeeded} ok, {tally.failed} failed, {tally.in_flight} in flight"
                if tally.skipped:
                    detail += f", {tally.skipped} done before"
                table.add_row(Text(name, style="bold"), bar, f"{finished}/{total}", detail,
                              Text(format_spend(tally), style="dim"))
            footer = (f"elapsed {_clock(display.progress.elapsed(now))} · "
                      f"left ≈ {_clock(display.progress.eta(now))}")
        yield table
        yield Text(footer, style="dim")


class BatchDisplay:
    """Shows a batch's progress on ``board``'s console (a context manager); pass :meth:`on_event` to the runner."""

    def __init__(self, board: JobBoard, progress: BatchProgress) -> None:
        self.board = board
        self.progress = progress
        self.lock = threading.RLock()
        self._live: Live | None = None
        self._stream: TextIO = board.stream

    def __enter__(self) -> BatchDisplay:
        if self.board.live_mode:
            self._live = Live(_Bars(self), console=self.board.console, refresh_per_second=REFRESH_PER_SECOND,
                              transient=False, redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Draw the bars one last time and stop redrawing (idempotent)."""
        live, self._live = self._live, None
        if live is not None:
            live.refresh()
            live.stop()
        self._stream.flush()

    def note(self, text: str) -> None:
        """A line above the bars (or a plain line)."""
        self.board.note(text)

    def on_event(self, event: BatchEvent) -> None:
        """Count ``event`` and show it at once."""
        if event.kind == "stopping":
            self.board.note(f"{event.message} (Ctrl-C again to stop at once)", always=True)
            return
        with self.lock:
            self.progress.update(event)
        if not self.board.enabled:
            return
        if self._live is not None:
            if event.kind in ("unknown", "error"):
                self.board.note(f"{event.provider} {event.key}: {event.kind}: {event.message}")
            self._live.refresh()
            return
        if event.kind in ("finished", "unknown", "error", "duplicate"):
            self._line(event)

    def _line(self, event: BatchEvent) -> None:
        tally = self.progress.providers[event.provider]
        total = "?" if tally.total is None else str(tally.total)
        what: str = event.kind
        if event.record is not None:
            record = event.record
            error = (record.get("error") or {}).get("class")
            seconds = record.get("total_seconds")
            what = f"{record.get('outcome')}" + (f" {error}" if error else "") + (
                f" {seconds:.2f} s" if isinstance(seconds, int | float) else "")
        elif event.message:
            what += f": {event.message}"
        elapsed = self.progress.elapsed(time.monotonic())
        self._stream.write(f"[{elapsed:8.2f}s] {event.provider} {tally.done + tally.skipped}/{total}: "
                           f"{tally.succeeded} ok, {tally.failed} failed, {tally.in_flight} in flight; "
                           f"{event.key} {what}\n")
        self._stream.flush()
