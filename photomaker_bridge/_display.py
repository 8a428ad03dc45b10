"""What the command line shows: a live status per job while jobs run, and summary tables when they are done.

One module for every command that runs jobs (``generate``, ``resume``, ``demo``, and ``compare``/``batch``),
built on `rich <https://rich.readthedocs.io>`_. Two parts:

**A set of jobs with live status** — :class:`JobBoard`::

    with JobBoard(sys.stderr, progress=True) as board:
        job = board.add("fal", label="fal #1")         # one row per job
        bridge.generate(request, "fal", on_event=job.on_event)
        job.set_state("downloading")                    # states the caller knows and the provider does not
        job.finish("completed", "2 images")             # or "failed", "cancelled", "still running" ...
        board.note("saved results/fal_1.png")           # a line above the rows (or a plain line)

Each row shows a spinner, the job's label, its state (``uploading``, ``submitted``, ``queued #N``, ``running``,
``downloading``, then how it ended), the seconds since the job was added, its request id and the provider's
latest log line. Every event is handed to the display the moment the flow yields it, and the live area is
redrawn at once (not at the next tick), so what is shown never lags an event by more than a redraw.

On a terminal the rows are redrawn in place; otherwise (stderr piped or redirected, or ``progress=False``
from ``--no-progress``) each event becomes one plain line as it happens, flushed at once:
``[  1.52s] fal 8c1e… running``. Colour follows rich's rules, so ``NO_COLOR`` (https://no-color.org) turns it
off, and it is never used when the stream is not a terminal. ``enabled=False`` shows nothing at all.

**Summary tables** — :func:`print_table` draws any header + rows as aligned columns (never wrapped, the same
in a terminal, a file or a pipe); :func:`print_results` draws the result table, whose rows :func:`result_rows`
makes (provider, images, seed, queue/run/total seconds, cost, warnings, request id), so that ``generate``,
``resume``, ``demo`` and ``compare`` print the same columns; :func:`print_trail` draws a routed call's decision
trail (each provider tried or skipped, its outcome, seconds, cost, ids and why); :func:`image_lines` lists where
each image is (saved path or URL).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, TextIO

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from ._http import Event
from .result import Attempt, Cost, PhotoMakerResult

__all__ = ["RESULT_HEADER", "TRAIL_HEADER", "Job", "JobBoard", "image_lines", "make_console", "print_results",
           "print_table", "print_trail", "result_rows", "trail_rows"]

REFRESH_PER_SECOND = 10
"""How often the live area is redrawn without an event (the spinner and the elapsed seconds move)."""

_PLAIN_WIDTH = 400
"""Columns for a stream that is not a terminal: tables and lines are never wrapped there."""

_FINAL_STYLES = {"completed": "green", "failed": "red", "timed out": "red", "cancelled": "yellow",
                 "cancel requested": "yellow", "still running": "yellow", "interrupted": "yellow",
                 "skipped": "dim", "lost the race": "yellow"}


def make_console(stream: TextIO, *, width: int | None = None) -> Console:
    """A rich console on ``stream``: terminal features only when it is a terminal; ``NO_COLOR`` honoured."""
    console = Console(file=stream, highlight=False, soft_wrap=False, emoji=False)
    if not console.is_terminal:
        console = Console(file=stream, highlight=False, soft_wrap=False, emoji=False, no_color=True,
                          width=width or _PLAIN_WIDTH, color_system=None)
    return console


_ROUTING_STATES = {"attempt": "starting", "hedge": "hedging", "fallback": "falling back"}
"""What a routed call's own events make of a row fed every event (the CLI gives each attempt its own row)."""


def _state_of(event: Event) -> str | None:
    """The row's state after ``event`` (``None``: the event changes no state, e.g. a log line or a skip)."""
    if event.kind == "queued":
        return "queued" if event.queue_position is None else f"queued #{event.queue_position}"
    if event.kind in ("log", "skipped"):
        return None
    return _ROUTING_STATES.get(event.kind, event.kind)


class Job:
    """One row of a :class:`JobBoard`. Feed it the flow's events with :meth:`on_event`."""

    def __init__(self, board: JobBoard, provider: str, label: str) -> None:
        self._board = board
        self.provider = provider
        """The provider the job runs on."""
        self.label = label
        """What the row is called (the provider by default)."""
        self.state = "starting"
        """The latest state (see the module docstring)."""
        self.request_ids: list[str] = []
        """The provider's ids seen so far, in order."""
        self.log_line = ""
        """The provider's latest log line."""
        self.detail = ""
        """A short note on how the job ended."""
        self.started = time.monotonic()
        self.ended: float | None = None

    @property
    def elapsed(self) -> float:
        """Seconds since the job was added (frozen once it finished)."""
        return (self.ended if self.ended is not None else time.monotonic()) - self.started

    @property
    def finished(self) -> bool:
        """Whether :meth:`finish` was called."""
        return self.ended is not None

    def on_event(self, event: Event) -> None:
        """Show ``event`` now: the handler to pass as ``on_event=``."""
        self._board.apply(self, event)

    def set_state(self, state: str, detail: str = "") -> None:
        """A state the caller knows about (``downloading``, ``saving``, ``cancelling``)."""
        self._board.update(self, state=state, detail=detail)

    def finish(self, state: str, detail: str = "") -> None:
        """The job ended as ``state`` (``completed``, ``failed``, ``cancelled``, ``still running`` ...)."""
        self._board.update(self, state=state, detail=detail, final=True)


class _Rows:
    """The live area: rendered by rich on every redraw from the board's current state."""

    def __init__(self, board: JobBoard) -> None:
        self._board = board

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True, width=1)  # spinner or final mark
        with self._board.lock:
            jobs = list(self._board.jobs)
            label_width = max([len(job.label) for job in jobs] + [4])
            table.add_column(no_wrap=True, min_width=label_width)
            table.add_column(no_wrap=True, min_width=16)  # state
            table.add_column(no_wrap=True, justify="right", min_width=7)  # elapsed
            table.add_column(no_wrap=True, min_width=_SHORT_ID + 1)  # request id, shortened
            table.add_column(no_wrap=True, overflow="ellipsis", ratio=1)  # the provider's latest log line
            for job in jobs:
                style = _FINAL_STYLES.get(job.state, "cyan" if job.finished else "")
                mark: Any = Text("✓" if job.state == "completed" else "•", style=style) if job.finished \
                    else self._board.spinner(job)
                state = job.state + (f": {job.detail}" if job.detail else "")
                table.add_row(mark, Text(job.label, style="bold"), Text(state, style=style),
                              f"{job.elapsed:.1f}s", _short_id(job.request_ids), Text(job.log_line, style="dim"))
        yield table


_SHORT_ID = 8


def _short_id(request_ids: Sequence[str]) -> str:
    """The first request id cut to its first characters (the summary prints them in full)."""
    if not request_ids:
        return "-"
    first = request_ids[0]
    more = f"+{len(request_ids) - 1}" if len(request_ids) > 1 else ""
    return (first[:_SHORT_ID] + "…" if len(first) > _SHORT_ID else first) + more


class JobBoard:
    """A set of jobs with a live status each (see the module docstring). A context manager.

    ``stream`` is where it draws (stderr; ``console``, when given, is a rich console on it that the caller also
    prints on — log records, say). ``progress=False`` (``--no-progress``) forces plain lines even on a
    terminal; ``enabled=False`` (``--json``, ``--quiet``) shows nothing. :attr:`console` is the console to
    print anything else on while the board is live (log records, notes), so that it lands above the rows.
    """

    def __init__(self, stream: TextIO, *, progress: bool = True, enabled: bool = True,
                 refresh_per_second: float = REFRESH_PER_SECOND, console: Console | None = None) -> None:
        self.console = console or make_console(stream)
        self.stream = stream
        self.enabled = enabled
        self.live_mode = enabled and progress and self.console.is_terminal
        """Whether rows are redrawn in place (a terminal) rather than printed as plain lines."""
        self.jobs: list[Job] = []
        self.lock = threading.RLock()
        self._spinners: dict[int, Spinner] = {}
        self._started = time.monotonic()
        self._live: Live | None = None
        self._closed = False
        self._refresh = refresh_per_second

    def __enter__(self) -> JobBoard:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Draw the rows one last time and stop redrawing (idempotent; rows added later print plain lines)."""
        live, self._live = self._live, None
        self._closed = True
        if live is not None:
            live.refresh()
            live.stop()
        self.stream.flush()

    def add(self, provider: str, *, label: str | None = None) -> Job:
        """A new row for a job on ``provider``; its clock starts now."""
        job = Job(self, provider, label or provider)
        with self.lock:
            self.jobs.append(job)
        if self.live_mode and self._live is None and not self._closed:
            # Started with the first job, so that commands without jobs never touch the terminal.
            self._live = Live(_Rows(self), console=self.console, refresh_per_second=self._refresh,
                              transient=False, redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        self._redraw()
        return job

    def spinner(self, job: Job) -> Spinner:
        """The row's spinner (one per job, so each turns on its own)."""
        return self._spinners.setdefault(id(job), Spinner("dots", style="cyan"))

    def note(self, text: str, *, always: bool = False) -> None:
        """A line of its own: above the rows on a terminal, else a plain line. Not shown when the board is not
        ``enabled``, unless ``always`` (a message the user must see, such as what Ctrl-C will do)."""
        if not self.enabled and not always:
            return
        if self._live is not None:
            self.console.print(text, markup=False, highlight=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def apply(self, job: Job, event: Event) -> None:
        """Record ``event`` on ``job`` and show it at once."""
        with self.lock:
            if event.request_id and event.request_id not in job.request_ids:
                job.request_ids.append(event.request_id)
            state = _state_of(event)
            if state is not None:
                job.state = state
            if event.kind == "log" and event.message:
                job.log_line = event.message
        self._show(job, event.kind, _event_detail(event), event.request_id)

    def update(self, job: Job, *, state: str, detail: str = "", final: bool = False) -> None:
        """Set ``job``'s state (and mark it finished when ``final``), shown at once."""
        with self.lock:
            job.state, job.detail = state, detail
            if final and job.ended is None:
                job.ended = time.monotonic()
        self._show(job, state, detail, None)

    def _show(self, job: Job, kind: str, detail: str, request_id: str | None) -> None:
        if not self.enabled:
            return
        if self._live is not None:
            self._redraw()
            return
        request = f" {request_id}" if request_id else ""
        suffix = f": {detail}" if detail else ""
        self.stream.write(f"[{job.elapsed:7.2f}s] {job.label}{request} {kind}{suffix}\n")
        self.stream.flush()

    def _redraw(self) -> None:
        if self._live is not None:
            self._live.refresh()


def _event_detail(event: Event) -> str:
    if event.kind == "queued" and event.queue_position is not None:
        return f"position {event.queue_position}"
    return event.message or ""


# -- summary tables -------------------------------------------------------------------------------------------


def print_table(stream: TextIO, header: Sequence[str], rows: Sequence[Sequence[str]], *,
                title: str | None = None) -> None:
    """Draw a table as aligned columns: a header, a rule, the rows; never wrapped, so that it reads the same
    in a terminal, a file or a pipe (``cut``/``awk`` work on it). The header is bold on a colour terminal."""
    console = make_console(stream)
    lines = [list(header), *[list(row) for row in rows]]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    if title:
        stream.write(title + "\n")
    for index, line in enumerate(lines):
        text = "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        if index == 0 and console.is_terminal and not console.no_color:
            console.print(Text(text, style="bold"), soft_wrap=True)
        else:
            stream.write(text + "\n")
        if index == 0:
            stream.write("  ".join("-" * width for width in widths) + "\n")
    stream.flush()


RESULT_HEADER = ("provider", "images", "seed", "queue s", "run s", "total s", "cost", "warnings", "request id")
"""The columns of :func:`result_rows`."""


def _cost(cost: Cost | None) -> str:
    return "-" if cost is None else f"{cost.amount} {cost.currency} ({cost.source})"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def result_rows(results: Sequence[PhotoMakerResult]) -> list[list[str]]:
    """One row per result under :data:`RESULT_HEADER`."""
    rows: list[list[str]] = []
    for result in results:
        cost = _cost(result.cost)
        asked = f"/{result.requested_images}" if result.requested_images else ""
        rows.append([
            result.provider, f"{len(result.images)}{asked}", "-" if result.seed is None else str(result.seed),
            _seconds(result.timings.queue_seconds), _seconds(result.timings.run_seconds),
            _seconds(result.timings.total_seconds), cost, str(len(result.warnings)),
            ",".join(result.request_ids) or "-",
        ])
    return rows


def print_results(stream: TextIO, results: Sequence[PhotoMakerResult], *, title: str | None = None) -> None:
    """The result table of ``generate``, ``resume`` and ``demo``."""
    print_table(stream, RESULT_HEADER, result_rows(results), title=title)


TRAIL_HEADER = ("#", "provider", "outcome", "seconds", "cost", "request id", "why")
"""The columns of :func:`trail_rows`."""

_WHY_LIMIT = 110


def trail_rows(attempts: Sequence[Attempt]) -> list[list[str]]:
    """One row per line of a decision trail under :data:`TRAIL_HEADER`: what each provider did and why."""
    rows: list[list[str]] = []
    for number, entry in enumerate(attempts, start=1):
        cost = _cost(entry.cost)
        why = "; ".join(part for part in (f"{entry.error_type}: {entry.message}" if entry.error_type else "",
                                          entry.reason or "") if part)
        if len(why) > _WHY_LIMIT:
            why = why[: _WHY_LIMIT - 1] + "…"
        rows.append([str(number), entry.provider, entry.outcome, _seconds(entry.seconds), cost,
                     ",".join(entry.request_ids) or "-", why or "-"])
    return rows


def print_trail(stream: TextIO, attempts: Sequence[Attempt]) -> None:
    """The decision trail of a routed call: every provider tried or skipped, in order, and why."""
    print_table(stream, TRAIL_HEADER, trail_rows(attempts), title="decision trail:")


def image_lines(result: PhotoMakerResult, saved: Sequence[str | None] = ()) -> list[str]:
    """Where each image of ``result`` is: ``<provider> image <n>: <saved path or URL>``."""
    lines: list[str] = []
    for index, image in enumerate(result.images):
        where = saved[index] if index < len(saved) and saved[index] else None
        if where is None:
            where = image.url if image.url and not image.url.startswith("data:") else "(inline bytes, not saved)"
        lines.append(f"{result.provider} image {index + 1}: {where}")
    return lines

