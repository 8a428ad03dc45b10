"""``generate`` and ``resume``: run one job with a live display, and never lose what was paid for.

``generate`` submits the job, then collects it (``Bridge.submit`` + ``Bridge.result``) rather than calling
``Bridge.generate``: the CLI holds the job's handle from the moment the provider accepted it, so whatever ends
the wait — the deadline, Ctrl-C, a failed save — it can say exactly what became of the job and print the
``photomaker-bridge resume ...`` line that collects it from another shell.

Ctrl-C (see :class:`Interrupts`): while the job is being submitted, the first Ctrl-C is held until the
provider has answered (an interrupted submit could leave a billed job nobody knows the id of); while waiting,
it stops the wait. Either way ``generate`` then cancels the job where the provider allows it, as on a deadline,
and prints each id's fate (``_cli_cancel``); ``resume`` leaves the job running. A second Ctrl-C exits at once.
"""

from __future__ import annotations

import argparse
import json
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TextIO

from ._cli_cancel import cancel_and_report, resume_lines
from ._cli_options import EXIT_INTERRUPTED, EXIT_NOT_SAVED, base_url_for, configured_providers
from ._console import check_out_folder, result_summary, save_result
from ._display import Job, JobBoard, image_lines, print_results, print_trail
from .client import Bridge
from .errors import GenerationTimeoutError
from .jobs import JobHandle
from .request import PhotoMakerRequest
from .result import PhotoMakerResult

__all__ = ["EXIT_INTERRUPTED", "EXIT_NOT_SAVED", "HELD_SUBMIT", "Interrupts", "abandoned_submit", "command_resume",
           "deliver", "generate_direct", "marks_failure", "remaining", "run_job", "stop_job"]

EXIT_TIMEOUT = 5


class Interrupts:
    """SIGINT while a job runs: held during a submit, a stop while waiting, an immediate exit the second time.

    Installed only in the main thread (elsewhere Python delivers no signals); restores the previous handler.
    """

    def __init__(self, board: JobBoard, arguments: argparse.Namespace) -> None:
        self._board = board
        self._arguments = arguments
        self._holding = False
        self._hold_message: str | None = None
        self.requested = False
        """Whether Ctrl-C was pressed (once)."""
        self.forced = False
        """Whether Ctrl-C was pressed a second time: exit at once, without waiting for anything."""
        self._previous: object = None
        self._installed = False

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]
            self._installed = False

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self.requested:
            self.forced = True
            self._arguments.forced_exit = True  # main() then exits without waiting for worker threads
            raise KeyboardInterrupt
        self.requested = True
        if self._holding:
            if self._hold_message:
                self._board.note(self._hold_message, always=True)
            return
        raise KeyboardInterrupt

    @contextmanager
    def held(self, message: str | None = None) -> Iterator[None]:
        """Inside, a first Ctrl-C only sets :attr:`requested` (and shows ``message``, which says why it waits);
        the caller checks it afterwards."""
        self._holding, self._hold_message = True, message
        try:
            yield
        finally:
            self._holding, self._hold_message = False, None


HELD_SUBMIT = ("Ctrl-C: stopping once the provider has answered the submit, so that the job can be cancelled "
                "(Ctrl-C again to exit at once)")


def remaining(timeout: float | None, started: float) -> float | None:
    if timeout is None:
        return None
    return max(0.001, timeout - (time.monotonic() - started))


def _collect(bridge: Bridge, handle: JobHandle, job: Job, timeout: float | None, started: float,
             download: bool) -> PhotoMakerResult:
    result = bridge.result(handle, timeout=remaining(timeout, started), on_event=job.on_event)
    if download:
        job.set_state("downloading")
        result = bridge.download(result, timeout=remaining(timeout, started) or 60.0)
    return result


def _report_unfinished(handle: JobHandle, why: str, base_url: str | None, board: JobBoard, job: Job,
                       err: TextIO) -> None:
    """The job was left running: say so, with the line that collects it."""
    job.finish("still running", why)
    board.close()
    err.write(f"{why}: {handle.provider} job {', '.join(handle.request_ids)} is still running at the provider "
              "(and billed); collect it with:\n")
    for line in resume_lines(handle, base_url):
        err.write(f"  {line}\n")


def deliver(result: PhotoMakerResult, folder: Path | None, arguments: argparse.Namespace, board: JobBoard,
             job: Job, out: TextIO, err: TextIO) -> int:
    """Save (when ``--out``, or when images came as bytes only) and print; never lose the result."""
    target = folder
    if target is None and any(image.url is None and image.data is not None for image in result.images):
        # Nothing to link to: the bytes go to a new folder here, and the summary says where.
        target = Path(tempfile.mkdtemp(prefix=f"photomaker-{result.provider}-", dir="."))
    paths: list[Path] = []
    if target is not None:
        job.set_state("saving")
        try:
            paths = save_result(result, target)
        except OSError as error:
            job.finish("completed", "not saved")
            board.close()
            err.write(f"error: the images were generated but could not be saved in {target}: "
                      f"{error.strerror or error}\nthe result follows on stdout (URLs, request ids, cost)\n")
            for line in image_lines(result):
                out.write(line + "\n")
            out.write(json.dumps(result_summary(result), indent=2, default=str) + "\n")
            return EXIT_NOT_SAVED
    job.finish("completed", f"{len(result.images)} image{'s' if len(result.images) != 1 else ''}")
    board.close()  # the live rows stop before the summary is printed below them
    if arguments.json:
        out.write(json.dumps(result_summary(result, paths), indent=2, default=str) + "\n")
    else:
        print_results(out, [result])
        out.write("\n")
        if getattr(arguments, "routed", False):
            print_trail(out, result.attempts)
            out.write("\n")
        for line in image_lines(result, [str(path) for path in paths]):
            out.write(line + "\n")
    for warning in result.warnings:
        err.write(f"warning: {warning}\n")
    return 0


def stop_job(bridge: Bridge, handle: JobHandle, why: str, *, cancel: bool, arguments: argparse.Namespace,
          board: JobBoard, job: Job, err: TextIO) -> None:
    """The wait ended early: ``generate`` cancels (nobody else would collect the job), ``resume`` leaves it."""
    base_url = base_url_for(arguments, handle.provider)
    if cancel:
        cancel_and_report(bridge, handle, why, base_url, board, err)
    else:
        _report_unfinished(handle, why, base_url, board, job, err)


def run_job(bridge: Bridge, handle: JobHandle, board: JobBoard, job: Job, arguments: argparse.Namespace,
         folder: Path | None, started: float, interrupts: Interrupts, out: TextIO, err: TextIO, *,
         cancel: bool) -> int:
    """Collect a submitted job and deliver it. A deadline or Ctrl-C ends the wait: the job is cancelled when
    ``cancel`` (else left running) and its fate printed, with the resume line where it can still be collected."""
    if interrupts.requested:  # Ctrl-C came while the submit was held
        stop_job(bridge, handle, "interrupted", cancel=cancel, arguments=arguments, board=board, job=job, err=err)
        return EXIT_INTERRUPTED
    try:
        result = _collect(bridge, handle, job, arguments.timeout, started, download=folder is not None)
    except GenerationTimeoutError:
        stop_job(bridge, handle, f"timed out after {arguments.timeout:g} s", cancel=cancel, arguments=arguments,
              board=board, job=job, err=err)
        return EXIT_TIMEOUT
    except KeyboardInterrupt:
        if interrupts.forced:
            raise
        stop_job(bridge, handle, "interrupted", cancel=cancel, arguments=arguments, board=board, job=job, err=err)
        return EXIT_INTERRUPTED
    return deliver(result, folder, arguments, board, job, out, err)


def generate_direct(arguments: argparse.Namespace, request: PhotoMakerRequest, folder: Path | None,
                    board: JobBoard, out: TextIO, err: TextIO) -> int:
    """``photomaker-bridge generate`` on one provider (``arguments.provider``); the request and ``--out`` are
    checked (``_cli_route.command_generate``)."""
    started = time.monotonic()
    with Bridge(providers=configured_providers(arguments)) as bridge, Interrupts(board, arguments) as interrupts:
        job = board.add(arguments.provider)
        with marks_failure(job):
            try:
                with interrupts.held(HELD_SUBMIT):
                    handle = bridge.submit(request, arguments.provider, strict=arguments.strict,
                                           timeout=arguments.timeout, on_event=job.on_event)
            except GenerationTimeoutError as error:
                if error.handle is None:
                    raise
                stop_job(bridge, error.handle, f"timed out after {arguments.timeout:g} s", cancel=True,
                      arguments=arguments, board=board, job=job, err=err)
                return EXIT_TIMEOUT
            except KeyboardInterrupt:  # the second Ctrl-C, during the submit
                abandoned_submit(bridge, arguments.provider, arguments, board, job, err)
                raise
            return run_job(bridge, handle, board, job, arguments, folder, started, interrupts, out, err, cancel=True)


def abandoned_submit(bridge: Bridge, provider: str, arguments: argparse.Namespace, board: JobBoard, job: Job,
                      err: TextIO) -> None:
    """Exiting at once in the middle of a submit: say what may have happened, with what is known."""
    job.finish("interrupted", "during the submit")
    board.close()
    err.write(f"exiting at once, during the submit: {provider} may have accepted the job (and will bill it)")
    if not job.request_ids:
        err.write("; its id is not known yet: check the provider's dashboard\n")
        return
    handle = bridge.provider(provider).handle_for(",".join(job.request_ids))
    err.write("; if it did, collect it with:\n")
    for line in resume_lines(handle, base_url_for(arguments, handle.provider)):
        err.write(f"  {line}\n")


@contextmanager
def marks_failure(job: Job) -> Iterator[None]:
    """A row still running when an exception leaves is marked failed (or interrupted) before it goes on."""
    try:
        yield
    except BaseException as error:
        if not job.finished:
            interrupted = isinstance(error, KeyboardInterrupt)
            job.finish("interrupted" if interrupted else "failed", "" if interrupted else type(error).__name__)
        raise


def command_resume(arguments: argparse.Namespace, board: JobBoard, out: TextIO, err: TextIO) -> int:
    """``photomaker-bridge resume``: collect a job submitted earlier, by its provider and request id."""
    folder = check_out_folder(arguments.out) if arguments.out else None
    started = time.monotonic()
    with Bridge(providers=configured_providers(arguments)) as bridge, Interrupts(board, arguments) as interrupts:
        with interrupts.held():  # a Ctrl-C from here on is answered with the resume line (checked in run_job)
            handle = bridge.provider(arguments.provider).handle_for(arguments.request_id)
            job = board.add(arguments.provider)
        with marks_failure(job):
            return run_job(bridge, handle, board, job, arguments, folder, started, interrupts, out, err, cancel=False)
