"""``generate``: one provider goes to ``_cli_jobs``; a route (``--provider runware,fal,eachlabs`` or any routing
option) gets one row per attempt, the decision trail in the summary, and Ctrl-C or ``--timeout`` still cancelling
the job that was accepted.

Without ``--hedge`` the CLI keeps its submit-then-collect shape (``_cli_jobs``): ``Bridge.submit`` with the route
returns the handle of the provider that accepted the job — falling back past refusals, breakers, budgets as the
route says — and ``Bridge.result`` collects it, so the first Ctrl-C waits for the submit's answer and then cancels
that job, as for one provider. When the job fails after it was accepted, ``submit(..., after=error)`` lets the route
go on (its attempts count, its policy decides). With ``--hedge`` two jobs may run at once, so the library runs the
race (``Bridge.generate``): Ctrl-C or the deadline stops both (each cancels its job where its provider allows it)
and the ids seen are printed with their resume lines.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import TextIO

from ._cli_cancel import resume_lines
from ._cli_jobs import (
    EXIT_INTERRUPTED,
    EXIT_TIMEOUT,
    HELD_SUBMIT,
    Interrupts,
    abandoned_submit,
    deliver,
    generate_direct,
    marks_failure,
    remaining,
    run_job,
    stop_job,
)
from ._cli_options import base_url_for, base_urls, configured_providers, provider_from, request_from
from ._console import check_out_folder
from ._display import Job, JobBoard, print_trail
from ._http import Event
from .client import Bridge
from .errors import GenerationTimeoutError, ProviderError
from .request import PhotoMakerRequest
from .routing import Route

__all__ = ["AttemptRows", "command_generate", "generate_routed"]


def command_generate(arguments: argparse.Namespace, board: JobBoard, out: TextIO, err: TextIO) -> int:
    """``photomaker-bridge generate``: on one provider (``_cli_jobs``) or over a route."""
    request = request_from(arguments)
    provider = provider_from(arguments)
    base_urls(arguments)  # a --base-url that names no provider of the route is refused before anything is sent
    folder = check_out_folder(arguments.out) if arguments.out else None  # before anything is paid for
    if isinstance(provider, str):
        arguments.provider = provider
        return generate_direct(arguments, request, folder, board, out, err)
    return generate_routed(arguments, provider, request, folder, board, out, err)


class AttemptRows:
    """One row of the board per attempt of a routed call: ``attempt``/``hedge`` events open a row, ``skipped`` adds a
    finished one, ``fallback`` closes the failed one, and each provider's own events go to its attempt's row."""

    def __init__(self, board: JobBoard) -> None:
        self._board = board
        self._lock = threading.Lock()
        self._rows: dict[str, Job] = {}
        self.last: Job | None = None
        """The row of the attempt that started last."""

    def on_event(self, event: Event) -> None:
        """The handler to pass as ``on_event=``."""
        if event.kind in ("attempt", "hedge"):
            label = event.provider if event.kind == "attempt" else f"{event.provider} (hedge)"
            job = self._board.add(event.provider, label=label)
            with self._lock:
                self._rows[event.provider] = self.last = job
            job.set_state("starting", event.message or "")
        elif event.kind == "skipped":
            self._board.add(event.provider).finish("skipped", event.message or "")
        elif event.kind == "fallback":
            failed = self.row(event.provider)
            if not failed.finished:
                failed.finish("failed", event.message or "")
        else:
            self.row(event.provider).on_event(event)

    def row(self, provider: str) -> Job:
        """The row of ``provider``'s latest attempt (a new one if it has none)."""
        with self._lock:
            if provider not in self._rows:
                self._rows[provider] = self.last = self._board.add(provider)
            return self._rows[provider]

    def unfinished(self) -> list[Job]:
        """Rows of attempts still running."""
        with self._lock:
            return [job for job in self._rows.values() if not job.finished]


def generate_routed(arguments: argparse.Namespace, route: Route, request: PhotoMakerRequest, folder: Path | None,
                    board: JobBoard, out: TextIO, err: TextIO) -> int:
    """``photomaker-bridge generate`` over a route."""
    arguments.routed = True
    started = time.monotonic()
    with Bridge(providers=configured_providers(arguments)) as bridge, Interrupts(board, arguments) as interrupts:
        rows = AttemptRows(board)
        if route.hedge is not None:
            return _race(bridge, route, request, folder, arguments, rows, interrupts, board, out, err)
        previous: ProviderError | None = None
        while True:
            try:
                with interrupts.held(HELD_SUBMIT):
                    handle = bridge.submit(request, route, strict=arguments.strict, on_event=rows.on_event,
                                           timeout=remaining(arguments.timeout, started), after=previous)
            except GenerationTimeoutError as error:
                if error.handle is None:
                    raise
                stop_job(bridge, error.handle, f"timed out after {arguments.timeout:g} s", cancel=True,
                         arguments=arguments, board=board, job=rows.row(error.handle.provider), err=err)
                return EXIT_TIMEOUT
            except KeyboardInterrupt:  # the second Ctrl-C, during a submit
                last = rows.last
                if last is not None:
                    abandoned_submit(bridge, last.provider, arguments, board, last, err)
                raise
            job = rows.row(handle.provider)
            try:
                with marks_failure(job):
                    return run_job(bridge, handle, board, job, arguments, folder, started, interrupts, out, err,
                                   cancel=True)
            except GenerationTimeoutError:
                raise
            except ProviderError as error:  # the job failed after it was accepted: the route decides what next
                previous = error


def _race(bridge: Bridge, route: Route, request: PhotoMakerRequest, folder: Path | None,
          arguments: argparse.Namespace, rows: AttemptRows, interrupts: Interrupts, board: JobBoard, out: TextIO,
          err: TextIO) -> int:
    """A hedged route: the library runs the race; the CLI shows it and reports what it could not finish."""
    try:
        result = bridge.generate(request, route, strict=arguments.strict, timeout=arguments.timeout,
                                 on_event=rows.on_event)
        if folder is not None:
            rows.row(result.provider).set_state("downloading")
            result = bridge.download(result)
    except GenerationTimeoutError as error:
        _left(rows, board, "timed out")
        err.write(f"timed out after {arguments.timeout:g} s: {error}\n")
        for handle in error.handles:
            for line in resume_lines(handle, base_url_for(arguments, handle.provider)):
                err.write(f"  {line}\n")
        err.write("\n")
        print_trail(err, error.attempts)
        return EXIT_TIMEOUT
    except KeyboardInterrupt:
        if interrupts.forced:
            raise
        running = rows.unfinished()
        _left(rows, board, "interrupted")
        err.write("interrupted: every job of this call was asked to stop and is cancelled where its provider allows "
                  "it; one that may still finish (and be billed) can be collected with:\n")
        for job in running:
            if job.request_ids:
                handle = bridge.provider(job.provider).handle_for(",".join(job.request_ids))
                for line in resume_lines(handle, base_url_for(arguments, job.provider)):
                    err.write(f"  {line}\n")
        return EXIT_INTERRUPTED
    for job in rows.unfinished():
        if job.provider != result.provider:
            job.finish("lost the race")
    return deliver(result, folder, arguments, board, rows.row(result.provider), out, err)


def _left(rows: AttemptRows, board: JobBoard, state: str) -> None:
    for job in rows.unfinished():
        job.finish(state)
    board.close()
